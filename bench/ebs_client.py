"""Client CPU per 512 KiB block on the EBS direct API path: boto3 against Snapkeep's lean client.

    .venv/bin/python bench/ebs_client.py [--blocks 2048] [--threads 8] [--transport pycurl|urllib3]

A small HTTPS endpoint (a self-signed certificate made at start) runs in a separate process and answers
ListSnapshotBlocks, GetSnapshotBlock (one fixed random block with its x-amz-Checksum), StartSnapshot,
PutSnapshotBlock and CompleteSnapshot from prebuilt bytes, so it costs little next to the client. Each client
reads (or writes) every block with the checksum checked (or computed), and the CPU time of this process
(resource.getrusage: user + system, all threads) is divided by the blocks moved. Wall time is shown but is not
the measure: the endpoint shares the two cores. boto3 runs in a thread pool (`--threads`); Snapkeep's client keeps
`--concurrency` requests in flight while `--workers` threads take the blocks, as the repository's workers do.
glibc's malloc is tuned as the CLI tunes it (snapkeep.imagestore.malloc) for both clients; run with
MALLOC_MMAP_THRESHOLD_=131072 to see glibc's defaults (boto3 then costs about 2.4 ms per Get here).

Target: at most 1.5 ms of client CPU per block, checksum included, so two cores drive >= 400 MB/s per volume.
Not part of the test run.
"""

from __future__ import annotations

import argparse
import base64
import datetime
import hashlib
import ipaddress
import json
import os
import random
import resource
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

BLOCK_SIZE = 512 * 1024
SNAPSHOT_ID = "snap-0be0cbe0cbe0cbe0c"
PAGE_MAX = 10000


# --- the endpoint (runs in its own process) -------------------------------------------------------------------


def make_certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and localhost, and its key."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "snapkeep-bench")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                    x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                       critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "bench-cert.pem", directory / "bench-key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def _response(status: str, headers: dict[str, str], body: bytes) -> bytes:
    lines = [f"HTTP/1.1 {status}", f"Content-Length: {len(body)}", "x-amzn-RequestId: bench"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


class Endpoint:
    """Answers the six EBS direct API calls the clients make, for one snapshot of `blocks` written blocks."""

    def __init__(self, blocks: int) -> None:
        self.blocks = blocks
        self.block = random.Random(7).randbytes(BLOCK_SIZE)
        checksum = base64.b64encode(hashlib.sha256(self.block).digest()).decode()
        self.get_response = _response("200 OK", {
            "Content-Type": "application/octet-stream", "x-amz-Data-Length": str(BLOCK_SIZE),
            "x-amz-Checksum": checksum, "x-amz-Checksum-Algorithm": "SHA256"}, self.block)
        self.volume_size = max(1, -(-blocks * BLOCK_SIZE // 1024**3))

    def answer(self, method: str, target: str, headers: dict[str, str]) -> bytes:
        parts = urlsplit(target)
        path = parts.path.strip("/").split("/")
        query = {key: values[0] for key, values in parse_qs(parts.query).items()}
        if method == "GET" and len(path) == 4 and path[2] == "blocks":
            return self.get_response
        if method == "GET" and len(path) == 3 and path[2] == "blocks":
            return self._list(query)
        if method == "PUT" and len(path) == 4 and path[2] == "blocks":
            return _response("201 Created", {"x-amz-Checksum": headers.get("x-amz-checksum", ""),
                                             "x-amz-Checksum-Algorithm": "SHA256"}, b"")
        if method == "POST" and path == ["snapshots"]:
            body = json.dumps({"SnapshotId": "snap-0be0cbe0cbe0cbe0d", "Status": "pending", "BlockSize": BLOCK_SIZE,
                               "VolumeSize": self.volume_size, "OwnerId": "123456789012"}).encode()
            return _response("201 Created", {"Content-Type": "application/json"}, body)
        if method == "POST" and path[:2] == ["snapshots", "completion"]:
            return _response("202 Accepted", {"Content-Type": "application/json"}, b'{"Status": "pending"}')
        body = json.dumps({"message": f"no route for {method} {parts.path}"}).encode()
        return _response("404 Not Found", {"Content-Type": "application/json",
                                           "x-amzn-ErrorType": "ResourceNotFoundException"}, body)

    def _list(self, query: dict[str, str]) -> bytes:
        start = int(query.get("pageToken") or query.get("startingBlockIndex") or 0)
        limit = min(PAGE_MAX, max(100, int(query.get("maxResults") or PAGE_MAX)))
        indexes = range(start, min(self.blocks, start + limit))
        answer: dict[str, Any] = {
            "Blocks": [{"BlockIndex": i, "BlockToken": f"AAAB{i:012d}bench+token/="} for i in indexes],
            "ExpiryTime": time.time() + 3600, "VolumeSize": self.volume_size, "BlockSize": BLOCK_SIZE}
        if indexes.stop < self.blocks:
            answer["NextToken"] = str(indexes.stop)
        return _response("200 OK", {"Content-Type": "application/json"}, json.dumps(answer).encode())

    def handle(self, conn: ssl.SSLSocket) -> None:
        buffer = bytearray(2 * BLOCK_SIZE)
        view = memoryview(buffer)
        have = 0
        try:
            while True:
                end = buffer.find(b"\r\n\r\n", 0, have)
                while end < 0:
                    count = conn.recv_into(view[have:])
                    if not count:
                        return
                    have += count
                    end = buffer.find(b"\r\n\r\n", 0, have)
                lines = bytes(buffer[:end]).decode("latin-1").split("\r\n")
                method, target, _ = lines[0].split(" ", 2)
                headers = {}
                for line in lines[1:]:
                    name, _, value = line.partition(":")
                    headers[name.strip().lower()] = value.strip()
                total = end + 4 + int(headers.get("content-length", "0"))
                while have < total:
                    count = conn.recv_into(view[have:])
                    if not count:
                        return
                    have += count
                conn.sendall(self.answer(method, target, headers))
                rest = have - total
                buffer[:rest] = buffer[total:have]
                have = rest
        except (OSError, ValueError):
            return
        finally:
            conn.close()


def serve(port_file: Path, cert: Path, key: Path, blocks: int) -> None:
    endpoint = Endpoint(blocks)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    listener = socket.create_server(("127.0.0.1", 0), backlog=256)
    port_file.write_text(str(listener.getsockname()[1]))
    while True:
        raw, _ = listener.accept()
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            conn = context.wrap_socket(raw, server_side=True)
        except (OSError, ssl.SSLError):
            raw.close()
            continue
        threading.Thread(target=endpoint.handle, args=(conn,), daemon=True).start()


class EndpointProcess:
    def __init__(self, directory: Path, blocks: int) -> None:
        self.cert, key = make_certificate(directory)
        port_file = directory / "port"
        self.process = subprocess.Popen([sys.executable, __file__, "--serve", str(port_file), str(self.cert),
                                         str(key), str(blocks)])
        deadline = time.monotonic() + 30
        while not port_file.exists() or not port_file.read_text():
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise RuntimeError("the bench endpoint did not start")
            time.sleep(0.05)
        self.url = f"https://127.0.0.1:{port_file.read_text()}"

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


# --- the clients ------------------------------------------------------------------------------------------------

CREDENTIALS = {"aws_access_key_id": "AKIDBENCHMARK0000000", "aws_secret_access_key": "bench/secret+key"}
TARGET_MS = 1.5


@dataclass
class Row:
    client: str
    call: str
    blocks: int
    cpu_seconds: float
    wall_seconds: float

    @property
    def ms_per_block(self) -> float:
        return self.cpu_seconds / self.blocks * 1000.0

    @property
    def mb_per_second_on_two_cores(self) -> float:
        """What two cores could move if they did nothing but this client's work."""
        return 2 * (1000.0 / self.ms_per_block) * BLOCK_SIZE / 1e6


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def measure(client: str, call: str, blocks: int, work: Callable[[], None]) -> Row:
    cpu, wall = cpu_seconds(), time.perf_counter()
    work()
    return Row(client, call, blocks, cpu_seconds() - cpu, time.perf_counter() - wall)


def boto3_client(url: str, cert: Path, threads: int) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client("ebs", endpoint_url=url, region_name="us-east-1", verify=str(cert),
                        config=Config(max_pool_connections=threads, retries={"max_attempts": 1}), **CREDENTIALS)


def boto3_get(ebs: Any, threads: int, indexes: range) -> None:
    def get(index: int) -> None:
        answer = ebs.get_snapshot_block(SnapshotId=SNAPSHOT_ID, BlockIndex=index,
                                        BlockToken=f"AAAB{index:012d}bench+token/=")
        data = answer["BlockData"].read()
        if hashlib.sha256(data).digest() != base64.b64decode(answer["Checksum"]):
            raise AssertionError(f"block {index}: checksum mismatch")

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(get, indexes))


def boto3_put(ebs: Any, threads: int, indexes: range, data: bytes) -> None:
    def put(index: int) -> None:
        checksum = base64.b64encode(hashlib.sha256(data).digest()).decode()
        ebs.put_snapshot_block(SnapshotId=SNAPSHOT_ID, BlockIndex=index, BlockData=data, DataLength=len(data),
                               Checksum=checksum, ChecksumAlgorithm="SHA256")

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(put, indexes))


def snapkeep_get(sessions: Any, workers: int, concurrency: int, transport: str | None, count: int) -> str:
    """A full read through EbsBlockSource by `workers` threads, as the repository's backup workers read."""
    from snapkeep.aws.ebs_blocks import EbsBlockSource

    local = threading.local()
    with EbsBlockSource(sessions, "us-east-1", SNAPSHOT_ID, concurrency=concurrency, transport=transport) as source:
        blocks = list(source.allocated_blocks())[:count]

        def read(index: int) -> None:
            buffer = getattr(local, "buffer", None)
            if buffer is None:
                buffer = local.buffer = bytearray(BLOCK_SIZE)
            source.read_into(index, memoryview(buffer))

        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(read, blocks))
        return source.transport_name


def snapkeep_put(sessions: Any, workers: int, concurrency: int, transport: str | None, count: int,
                 data: bytes) -> None:
    """Blocks written through EbsBlockSink by `workers` threads (checksums computed), then CompleteSnapshot."""
    from snapkeep.aws.ebs_blocks import EbsBlockSink

    with EbsBlockSink(sessions, "us-east-1", count * BLOCK_SIZE, concurrency=concurrency,
                      transport=transport) as sink, ThreadPoolExecutor(workers) as pool:
        list(pool.map(lambda index: sink.write_block(index, data), range(count)))
        sink.complete(wait=False)


def run(blocks: int = 2048, threads: int = 8, workers: int = 2, concurrency: int = 64,
        transport: str | None = None, clients: tuple[str, ...] = ("boto3", "snapkeep")) -> list[Row]:
    """Start the endpoint, measure each client's Get and Put over `blocks` blocks (after a warm-up), stop."""
    from snapkeep.aws.sessions import SessionProvider
    from snapkeep.imagestore.malloc import tune_malloc

    tune_malloc()
    rows: list[Row] = []
    data = random.Random(11).randbytes(BLOCK_SIZE)
    warm = min(blocks, 2 * concurrency)
    with tempfile.TemporaryDirectory(prefix="snapkeep-bench-") as directory:
        endpoint = EndpointProcess(Path(directory), blocks)
        previous = os.environ.get("AWS_CA_BUNDLE")
        os.environ["AWS_CA_BUNDLE"] = str(endpoint.cert)  # boto3 (the listings) and the lean client trust it
        try:
            if "boto3" in clients:
                ebs = boto3_client(endpoint.url, endpoint.cert, threads)
                boto3_get(ebs, threads, range(warm))
                rows.append(measure(f"boto3, {threads} threads", "GetSnapshotBlock + verify", blocks,
                                    lambda: boto3_get(ebs, threads, range(blocks))))
                boto3_put(ebs, threads, range(warm), data)
                rows.append(measure(f"boto3, {threads} threads", "PutSnapshotBlock + checksum", blocks,
                                    lambda: boto3_put(ebs, threads, range(blocks), data)))
            if "snapkeep" in clients:
                sessions = SessionProvider(endpoint_url=endpoint.url, access_key_id=CREDENTIALS["aws_access_key_id"],
                                           secret_access_key=CREDENTIALS["aws_secret_access_key"])
                used = snapkeep_get(sessions, workers, concurrency, transport, warm)
                label = f"snapkeep ({used}), {concurrency} in flight"

                def read_all() -> None:
                    snapkeep_get(sessions, workers, concurrency, transport, blocks)

                rows.append(measure(label, "GetSnapshotBlock + verify", blocks, read_all))
                snapkeep_put(sessions, workers, concurrency, transport, warm, data)
                rows.append(measure(label, "PutSnapshotBlock + checksum", blocks,
                                    lambda: snapkeep_put(sessions, workers, concurrency, transport, blocks, data)))
        finally:
            if previous is None:
                os.environ.pop("AWS_CA_BUNDLE", None)
            else:
                os.environ["AWS_CA_BUNDLE"] = previous
            endpoint.stop()
    return rows


def report(rows: list[Row]) -> str:
    lines = [f"{'client':<34} {'call':<28} {'blocks':>6} {'ms CPU/block':>12} {'MB/s on 2 cores':>15} {'wall s':>7}"]
    for row in rows:
        lines.append(f"{row.client:<34} {row.call:<28} {row.blocks:>6} {row.ms_per_block:>12.2f} "
                     f"{row.mb_per_second_on_two_cores:>15.0f} {row.wall_seconds:>7.2f}")
    ours = [row for row in rows if row.client.startswith("snapkeep")]
    if ours:
        worst = max(row.ms_per_block for row in ours)
        verdict = "met" if worst <= TARGET_MS else "NOT met"
        lines.append(f"target <= {TARGET_MS} ms client CPU per block (checksum included): {verdict} "
                     f"(worst Snapkeep row {worst:.2f} ms)")
    return "\n".join(lines)


def main(argv: list[str]) -> None:
    if argv[:1] == ["--serve"]:
        serve(Path(argv[1]), Path(argv[2]), Path(argv[3]), int(argv[4]))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--blocks", type=int, default=2048, help="blocks per measurement (default 2048 = 1 GiB)")
    parser.add_argument("--threads", type=int, default=8, help="boto3 threads (default 8)")
    parser.add_argument("--workers", type=int, default=2, help="threads taking blocks from Snapkeep's client")
    parser.add_argument("--concurrency", type=int, default=64, help="Snapkeep's requests in flight (default 64)")
    parser.add_argument("--transport", choices=["pycurl", "urllib3"], default=None)
    parser.add_argument("--clients", default="boto3,snapkeep", help="comma-separated: boto3,snapkeep")
    args = parser.parse_args(argv)
    rows = run(args.blocks, args.threads, args.workers, args.concurrency, args.transport,
               tuple(args.clients.split(",")))
    print(report(rows))


if __name__ == "__main__":
    main(sys.argv[1:])
