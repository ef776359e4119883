"""One test suite that every blob store passes: a local directory, S3 on the lab, and S3 with Object Lock.

The S3 stores talk to the lab's real S3 over HTTP (moto in server mode). Retention is real there: an object
under Object Lock cannot be deleted until its retain-until has passed.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from snapkeep.blobstores.base import BlobNotFound, BlobStore, Retention, RetentionActive
from snapkeep.blobstores.local import LocalBlobStore
from snapkeep.blobstores.s3 import S3BlobStore
from snapkeep.domain.errors import InvalidParameterValue, InvalidRequest, InvalidResourceState
from tests.integration.conftest import LabClients

MIB = 1024 * 1024
BACKENDS = ["local", "s3", "s3-object-lock"]


class Backend:
    def __init__(self, kind: str, store: BlobStore, make: Callable[..., BlobStore], s3: Any = None,
                 bucket: str = "") -> None:
        self.kind = kind
        self.store = store
        self.make = make
        self.s3 = s3
        self.bucket = bucket


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if request.param == "local":
        def make_local(prefix: str = "repo", **_: Any) -> BlobStore:
            return LocalBlobStore(tmp_path / prefix)
        return Backend("local", make_local(), make_local)
    clients: LabClients = request.getfixturevalue("lab_clients")
    s3 = clients("s3")
    bucket = f"sk-{request.param}-{os.urandom(3).hex()}"
    if request.param == "s3-object-lock":
        s3.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
    else:
        s3.create_bucket(Bucket=bucket)

    def make_s3(prefix: str = "repo", **options: Any) -> BlobStore:
        options.setdefault("multipart_threshold", 5 * MIB)
        options.setdefault("part_size", 5 * MIB)
        return S3BlobStore(s3, bucket, prefix, **options)

    return Backend(request.param, make_s3(), make_s3, s3, bucket)


def test_put_get_stat_overwrite(backend: Backend) -> None:
    store = backend.store
    store.put("config", b"first")
    assert store.get("config") == b"first"
    assert store.stat("config").size == 5
    assert abs(store.stat("config").modified - datetime.now(UTC)) < timedelta(minutes=5)
    store.put("config", bytearray(b"second version"))
    assert store.get("config") == b"second version"
    store.put("keys/abc", memoryview(b"key"))
    assert store.get("keys/abc") == b"key"


def test_missing_objects(backend: Backend) -> None:
    store = backend.store
    for call in (lambda: store.get("nope"), lambda: store.stat("nope"), lambda: store.delete("nope"),
                 lambda: store.get_range("nope", 0, 4)):
        with pytest.raises(BlobNotFound):
            call()


def test_list_by_prefix(backend: Backend) -> None:
    store = backend.store
    names = ["data/aa/1", "data/ab/2", "index/3", "images/4", "config"]
    for name in names:
        store.put(name, name.encode())
    assert sorted(i.name for i in store.list()) == sorted(names)
    assert sorted(i.name for i in store.list("data/")) == ["data/aa/1", "data/ab/2"]
    assert [i.name for i in store.list("data/ab")] == ["data/ab/2"]
    assert [(i.name, i.size) for i in store.list("index/")] == [("index/3", 7)]
    assert list(store.list("locks/")) == []


def test_prefixes_isolate_stores(backend: Backend) -> None:
    other = backend.make("another")
    backend.store.put("config", b"mine")
    other.put("config", b"theirs")
    assert backend.store.get("config") == b"mine"
    assert [i.name for i in other.list()] == ["config"]


def test_get_range(backend: Backend) -> None:
    store = backend.store
    store.put("data/aa/x", bytes(range(256)) * 4)
    assert store.get_range("data/aa/x", 10, 5) == bytes(range(10, 15))
    assert store.get_range("data/aa/x", 1020, 100) == bytes(range(252, 256))
    assert store.get_range("data/aa/x", 1024, 10) == b""
    assert store.get_range("data/aa/x", 5, 0) == b""
    with pytest.raises(InvalidParameterValue):
        store.get_range("data/aa/x", -1, 5)


def test_delete(backend: Backend) -> None:
    store = backend.store
    store.put("locks/l1", b"x")
    store.put("locks/l2", b"y")
    store.delete("locks/l1")
    with pytest.raises(BlobNotFound):
        store.get("locks/l1")
    with pytest.raises(BlobNotFound):
        store.delete("locks/l1")
    assert [i.name for i in store.list("locks/")] == ["locks/l2"]
    if backend.s3 is not None:  # no version or delete marker is left behind in the bucket
        versions = backend.s3.list_object_versions(Bucket=backend.bucket, Prefix="repo/locks/l1")
        assert versions.get("Versions", []) == [] and versions.get("DeleteMarkers", []) == []


@pytest.mark.parametrize("name", ["../escape", "/absolute", "a//b", "a/./b", "a/../b", "", "with space", "x" * 513])
def test_bad_names_are_refused_and_nothing_is_written(backend: Backend, name: str) -> None:
    with pytest.raises(InvalidParameterValue, match="name"):
        backend.store.put(name, b"x")
    assert list(backend.store.list()) == []


def test_large_objects_round_trip(backend: Backend) -> None:
    # Above the S3 stores' 5 MiB multipart threshold: three parts on S3.
    data = os.urandom(11 * MIB + 123)
    backend.store.put("data/bb/large", data)
    assert backend.store.get("data/bb/large") == data
    assert backend.store.stat("data/bb/large").size == len(data)
    assert backend.store.get_range("data/bb/large", 6 * MIB, 10) == data[6 * MIB:6 * MIB + 10]
    if backend.s3 is not None:
        etag = backend.s3.head_object(Bucket=backend.bucket, Key="repo/data/bb/large")["ETag"]
        assert etag.strip('"').endswith("-3")  # a multipart upload of three parts


def test_retention(backend: Backend) -> None:
    store = backend.store
    until = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=3)
    if not store.supports_retention:
        with pytest.raises(InvalidRequest, match="retention"):
            store.put("data/cc/locked", b"x", retention=Retention("COMPLIANCE", until))
        assert list(store.list()) == []
        store.put("data/cc/plain", b"x")
        assert store.retention("data/cc/plain") is None
        with pytest.raises(InvalidRequest):
            store.extend_retention("data/cc/plain", until)
        return
    store.put("data/cc/locked", b"x", retention=Retention("COMPLIANCE", until))
    assert store.retention("data/cc/locked") == Retention("COMPLIANCE", until)
    with pytest.raises(RetentionActive):
        store.delete("data/cc/locked")
    assert store.get("data/cc/locked") == b"x"
    # Extending never shortens.
    assert store.extend_retention("data/cc/locked", until - timedelta(seconds=2)).until == until
    later = until + timedelta(seconds=1)
    assert store.extend_retention("data/cc/locked", later) == Retention("COMPLIANCE", later)
    assert store.retention("data/cc/locked") == Retention("COMPLIANCE", later)
    time.sleep(max(0.0, (later - datetime.now(UTC)).total_seconds()) + 0.5)
    store.delete("data/cc/locked")
    with pytest.raises(BlobNotFound):
        store.get("data/cc/locked")


def test_retention_on_a_multipart_object(backend: Backend) -> None:
    if not backend.store.supports_retention:
        pytest.skip("this backend refuses retention (covered by test_retention)")
    until = datetime.now(UTC).replace(microsecond=0) + timedelta(days=1)
    backend.store.put("data/dd/large", os.urandom(6 * MIB), retention=Retention("GOVERNANCE", until))
    assert backend.store.retention("data/dd/large") == Retention("GOVERNANCE", until)
    with pytest.raises(RetentionActive):
        backend.store.delete("data/dd/large")


def test_s3_storage_class_applies_to_packs_only(lab_clients: LabClients) -> None:
    s3 = lab_clients("s3")
    s3.create_bucket(Bucket="sk-classes")
    store = S3BlobStore(s3, "sk-classes", "r", storage_class="STANDARD_IA", multipart_threshold=5 * MIB,
                        part_size=5 * MIB)
    store.put("data/aa/pack", b"p")
    store.put("data/aa/big", os.urandom(5 * MIB + 1))
    store.put("index/i", b"i")
    classes = {item["Key"]: item.get("StorageClass", "STANDARD") for item in
               s3.list_objects_v2(Bucket="sk-classes")["Contents"]}
    assert classes == {"r/data/aa/pack": "STANDARD_IA", "r/data/aa/big": "STANDARD_IA", "r/index/i": "STANDARD"}
    with pytest.raises(InvalidParameterValue, match="storage_class"):
        S3BlobStore(s3, "sk-classes", storage_class="BOGUS")


def test_s3_archived_objects_say_they_must_be_restored(lab_clients: LabClients) -> None:
    s3 = lab_clients("s3")
    s3.create_bucket(Bucket="sk-archive")
    store = S3BlobStore(s3, "sk-archive", storage_class="DEEP_ARCHIVE")
    store.put("data/aa/pack", b"cold")
    with pytest.raises(InvalidResourceState, match="DEEP_ARCHIVE"):
        store.get("data/aa/pack")
    assert store.stat("data/aa/pack").size == 4


def test_s3_store_parameters_are_checked(lab_clients: LabClients) -> None:
    s3 = lab_clients("s3")
    with pytest.raises(InvalidParameterValue, match="part_size"):
        S3BlobStore(s3, "b", part_size=1024)
    with pytest.raises(InvalidParameterValue, match="multipart_threshold"):
        S3BlobStore(s3, "b", part_size=8 * MIB, multipart_threshold=6 * MIB)


def test_local_writes_leave_no_temporary_files(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path / "r")
    for i in range(5):
        store.put(f"data/aa/{i}", b"x" * i)
    assert list((tmp_path / "r" / ".tmp").iterdir()) == []
    assert len(list(store.list())) == 5
    with pytest.raises(InvalidParameterValue, match="reserved"):
        store.put(".tmp/x", b"x")
