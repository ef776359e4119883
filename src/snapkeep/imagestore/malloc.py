"""glibc malloc settings for the block pipelines.

Measured on the project's 2-core machines (shared/notes/performance-baseline.md): with glibc's default
thresholds, every 512 KiB buffer that compression or decryption returns is an mmap/munmap pair, page faults
dominate and a restore does not scale past one thread; raising the mmap and trim thresholds made it scale 1.94x.
The environment variables MALLOC_MMAP_THRESHOLD_ / MALLOC_TRIM_THRESHOLD_ do the same but must be set before
the process starts; this does it from inside, once, before a backup or restore (the CLI calls it).
"""

from __future__ import annotations

import ctypes
import os

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 8 * 1024 * 1024
TRIM_THRESHOLD = 1024 * 1024 * 1024


def tune_malloc(mmap_threshold: int = MMAP_THRESHOLD, trim_threshold: int = TRIM_THRESHOLD) -> bool:
    """Raise glibc's thresholds unless the environment already chose them; False where there is no glibc."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    done = True
    if "MALLOC_MMAP_THRESHOLD_" not in os.environ:
        done = bool(mallopt(M_MMAP_THRESHOLD, mmap_threshold)) and done
    if "MALLOC_TRIM_THRESHOLD_" not in os.environ:
        done = bool(mallopt(M_TRIM_THRESHOLD, trim_threshold)) and done
    return done
