"""The deduplicated, compressed, encrypted image repository (format: docs/repository-format.md).

Fixed 512 KiB chunks aligned to EBS blocks, keyed chunk ids, zstd + AES-256-GCM envelopes, packs with headers,
per-session index files, one manifest per image backup, locks; it talks to a BlobStore only.
"""
