"""API keys on real SQLite files and PostgreSQL: encrypted at rest, looked up for SigV4, bootstrapped from the
environment; migration 0002; and boto3 over a real HTTP connection signing with them."""

from __future__ import annotations

import base64
import json
import re
import stat
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from botocore import UNSIGNED
from botocore.config import Config
from botocore.exceptions import ClientError
from sqlalchemy.engine import Engine

from snapkeep.api.auth import UnrecognizedClient, verify_request
from snapkeep.api.keys import (
    ENV_ADMIN_ACCESS_KEY_ID,
    ENV_ADMIN_SECRET_ACCESS_KEY,
    MASTER_KEY_FILE,
    ApiKey,
    KeyStore,
    SecretUndecryptable,
    decrypt_secret,
    encrypt_secret,
    load_or_create_master_key,
)
from snapkeep.api.roles import Role, authorize
from snapkeep.catalog import db, tables
from snapkeep.domain.errors import (
    Conflict,
    InvalidParameterValue,
    MissingParameterValue,
    ResourceNotFound,
    SnapkeepError,
)

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
MASTER = bytes(range(32))
OTHER_MASTER = bytes(range(1, 33))
ADMIN_ID = "SKAKADMIN00000000001"
ADMIN_SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
KEY_ID_PATTERN = r"SKAK[A-Z0-9]{16}"


@pytest.fixture
def engine(catalog_url: str) -> Iterator[Engine]:
    engine = db.create_engine(catalog_url)
    db.upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def store(engine: Engine) -> KeyStore:
    return KeyStore(engine, MASTER)


def stored_ciphertext(engine: Engine, access_key_id: str) -> str:
    with engine.connect() as conn:
        query = sa.select(tables.api_keys.c.secret_ciphertext).where(tables.api_keys.c.access_key_id == access_key_id)
        return str(conn.execute(query).scalar_one())


def count_keys(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(tables.api_keys)).scalar_one())


# -- keys in the catalog ---------------------------------------------------------------------------------------
def test_create_and_look_up(store: KeyStore) -> None:
    key_id, secret = store.create_key("alice", Role.OPERATOR, T0)
    assert re.fullmatch(KEY_ID_PATTERN, key_id)
    assert re.fullmatch(r"[A-Za-z0-9]{40}", secret)
    assert store.secret_for(key_id) == secret
    assert store.role_of(key_id) is Role.OPERATOR
    assert store.get_key(key_id) == ApiKey(key_id, "alice", Role.OPERATOR, True, T0)

    viewer_id, viewer_secret = store.create_key("bob", "viewer", T0)
    assert viewer_id != key_id and viewer_secret != secret
    assert store.list_keys() == [
        ApiKey(a, n, r, True, T0)
        for a, n, r in sorted([(key_id, "alice", Role.OPERATOR), (viewer_id, "bob", Role.VIEWER)])
    ]
    assert store.list_keys()[0].creation_date.tzinfo is not None


def test_unknown_and_malformed_ids_have_no_secret(store: KeyStore) -> None:
    assert store.secret_for("SKAKNOSUCHKEY0000000") is None
    assert store.role_of("SKAKNOSUCHKEY0000000") is None
    assert store.secret_for("not a key' OR 1=1 --") is None
    with pytest.raises(ResourceNotFound):
        store.get_key("SKAKNOSUCHKEY0000000")


def test_bad_user_names_and_roles_are_refused(store: KeyStore) -> None:
    with pytest.raises(InvalidParameterValue, match=r"^UserName: must be 1 to 64 characters"):
        store.create_key("", Role.VIEWER, T0)
    with pytest.raises(InvalidParameterValue, match=r"^UserName:"):
        store.create_key("a b", Role.VIEWER, T0)
    with pytest.raises(InvalidParameterValue, match=r"^Role: must be one of admin, operator, viewer, got 'root'"):
        store.create_key("alice", "root", T0)
    assert store.list_keys() == []


def test_the_stored_column_does_not_contain_the_secret(engine: Engine, store: KeyStore) -> None:
    key_id, secret = store.create_key("alice", Role.ADMIN, T0)
    stored = stored_ciphertext(engine, key_id)
    assert secret not in stored
    raw = base64.b64decode(stored, validate=True)
    assert len(stored) == 92 and len(raw) == 12 + 40 + 16  # nonce || ciphertext || tag
    assert secret.encode() not in raw
    with engine.connect() as conn:
        row = conn.execute(sa.select(tables.api_keys)).mappings().one()
    assert all(secret not in str(value) for value in row.values())
    # A fresh nonce every time: the same secret never encrypts to the same bytes.
    assert encrypt_secret(MASTER, key_id, secret) != encrypt_secret(MASTER, key_id, secret)
    assert decrypt_secret(MASTER, key_id, stored) == secret


def test_a_wrong_master_key_cannot_decrypt(engine: Engine, store: KeyStore) -> None:
    key_id, _ = store.create_key("alice", Role.ADMIN, T0)
    with pytest.raises(SecretUndecryptable) as info:
        KeyStore(engine, OTHER_MASTER).secret_for(key_id)
    err = info.value
    assert err.message == (
        f"the secret of API key {key_id} cannot be decrypted with this master key: SNAPKEEP_HOME/master.key is "
        "not the key it was encrypted with (replaced, or from another installation), or the stored row was altered"
    )
    assert err.http_status == 500


def test_a_ciphertext_moved_to_another_key_does_not_decrypt(engine: Engine, store: KeyStore) -> None:
    admin_id, _ = store.create_key("root", Role.ADMIN, T0)
    viewer_id, _ = store.create_key("eve", Role.VIEWER, T0)
    admins = stored_ciphertext(engine, admin_id)
    keys = tables.api_keys
    with engine.begin() as conn:
        conn.execute(keys.update().where(keys.c.access_key_id == viewer_id).values(secret_ciphertext=admins))
    with pytest.raises(SecretUndecryptable):
        store.secret_for(viewer_id)


def test_a_master_key_must_be_32_bytes(engine: Engine) -> None:
    with pytest.raises(InvalidParameterValue, match="exactly 32 bytes, got 16"):
        KeyStore(engine, bytes(16))


def test_disabled_keys_stop_working(store: KeyStore) -> None:
    key_id, _ = store.create_key("alice", Role.OPERATOR, T0)
    store.disable_key(key_id)
    store.disable_key(key_id)  # idempotent
    assert store.secret_for(key_id) is None
    assert store.role_of(key_id) is None
    assert store.get_key(key_id).enabled is False
    with pytest.raises(ResourceNotFound, match="API key SKAKNOSUCHKEY0000000 not found"):
        store.disable_key("SKAKNOSUCHKEY0000000")


# -- the admin key from the environment --------------------------------------------------------------------------
ENV = {ENV_ADMIN_ACCESS_KEY_ID: ADMIN_ID, ENV_ADMIN_SECRET_ACCESS_KEY: ADMIN_SECRET}


def test_env_admin_bootstrap_is_idempotent(engine: Engine, store: KeyStore) -> None:
    assert store.ensure_admin_from_env({}, T0) is None
    assert count_keys(engine) == 0
    assert store.ensure_admin_from_env(ENV, T0) == ADMIN_ID
    assert store.ensure_admin_from_env(ENV, T0) == ADMIN_ID
    assert KeyStore(engine, MASTER).ensure_admin_from_env(dict(ENV), T0) == ADMIN_ID  # a restarted process
    assert count_keys(engine) == 1
    assert store.secret_for(ADMIN_ID) == ADMIN_SECRET
    assert store.get_key(ADMIN_ID) == ApiKey(ADMIN_ID, "admin", Role.ADMIN, True, T0)


def test_env_admin_with_a_different_secret_is_a_conflict(store: KeyStore) -> None:
    store.ensure_admin_from_env(ENV, T0)
    other = {**ENV, ENV_ADMIN_SECRET_ACCESS_KEY: "A" * 40}
    with pytest.raises(Conflict, match="already exists with a different secret") as info:
        store.ensure_admin_from_env(other, T0)
    assert "A" * 40 not in info.value.message
    assert store.secret_for(ADMIN_ID) == ADMIN_SECRET


def test_a_disabled_env_admin_stays_disabled(store: KeyStore) -> None:
    store.ensure_admin_from_env(ENV, T0)
    store.disable_key(ADMIN_ID)
    assert store.ensure_admin_from_env(ENV, T0) == ADMIN_ID
    assert store.secret_for(ADMIN_ID) is None


@pytest.mark.parametrize(
    ("env", "error", "message"),
    [
        ({ENV_ADMIN_ACCESS_KEY_ID: ADMIN_ID}, MissingParameterValue,
         "SNAPKEEP_ADMIN_SECRET_ACCESS_KEY: must be set when SNAPKEEP_ADMIN_ACCESS_KEY_ID is"),
        ({ENV_ADMIN_SECRET_ACCESS_KEY: ADMIN_SECRET}, MissingParameterValue,
         "SNAPKEEP_ADMIN_ACCESS_KEY_ID: must be set when SNAPKEEP_ADMIN_SECRET_ACCESS_KEY is"),
        ({**ENV, ENV_ADMIN_ACCESS_KEY_ID: "AKIAIOSFODNN7EXAMPLE"}, InvalidParameterValue,
         "SNAPKEEP_ADMIN_ACCESS_KEY_ID: must be 'SKAK' followed by 16 upper-case letters or digits (20 characters), "
         "got 'AKIAIOSFODNN7EXAMPLE'"),
        ({**ENV, ENV_ADMIN_ACCESS_KEY_ID: "SKAKadmin00000000001"}, InvalidParameterValue,
         "SNAPKEEP_ADMIN_ACCESS_KEY_ID: must be 'SKAK' followed by"),
        ({**ENV, ENV_ADMIN_SECRET_ACCESS_KEY: "too-short-secret"}, InvalidParameterValue,
         "SNAPKEEP_ADMIN_SECRET_ACCESS_KEY: must be 40 characters of A-Z, a-z, 0-9, '/' or '+', got 16 characters"),
        ({**ENV, ENV_ADMIN_SECRET_ACCESS_KEY: "!" * 40}, InvalidParameterValue,
         "SNAPKEEP_ADMIN_SECRET_ACCESS_KEY: must be 40 characters"),
    ],
)
def test_env_admin_of_the_wrong_form_is_refused(
    engine: Engine, store: KeyStore, env: dict[str, str], error: type[SnapkeepError], message: str
) -> None:
    with pytest.raises(error) as info:
        store.ensure_admin_from_env(env, T0)
    assert info.value.message.startswith(message)
    assert info.value.field in (ENV_ADMIN_ACCESS_KEY_ID, ENV_ADMIN_SECRET_ACCESS_KEY)
    assert ADMIN_SECRET not in info.value.message
    assert count_keys(engine) == 0


# -- the master key file -----------------------------------------------------------------------------------------
def test_the_master_key_is_created_once_with_mode_0600(tmp_path: Path) -> None:
    home = tmp_path / "home"
    key = load_or_create_master_key(home)
    path = home / MASTER_KEY_FILE
    assert len(key) == 32 and path.read_bytes() == key
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create_master_key(home) == key
    assert sorted(p.name for p in home.iterdir()) == [MASTER_KEY_FILE]


def test_concurrent_first_use_agrees_on_one_master_key(tmp_path: Path) -> None:
    results: list[bytes] = []
    barrier = threading.Barrier(8)

    def first_use() -> None:
        barrier.wait()
        results.append(load_or_create_master_key(tmp_path))

    threads = [threading.Thread(target=first_use) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 8 and len(set(results)) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == [MASTER_KEY_FILE]


@pytest.mark.parametrize("size", [0, 31, 33, 44])
def test_a_master_key_file_of_the_wrong_size_is_refused_and_kept(tmp_path: Path, size: int) -> None:
    path = tmp_path / MASTER_KEY_FILE
    path.write_bytes(b"k" * size)
    with pytest.raises(InvalidParameterValue) as info:
        load_or_create_master_key(tmp_path)
    assert info.value.message.startswith(f"{path}: a master key must be exactly 32 bytes, this file has {size}.")
    assert path.read_bytes() == b"k" * size


# -- migration 0002 ----------------------------------------------------------------------------------------------
def migrate(engine: Engine, revision: str, *, down: bool = False) -> None:
    config = db.alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        (command.downgrade if down else command.upgrade)(config, revision)


def table_names(engine: Engine) -> set[str]:
    return set(sa.inspect(engine).get_table_names())


def version(engine: Engine) -> str:
    with engine.connect() as conn:
        return str(conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar_one())


def test_migrations_upgrade_from_0001_to_0002_and_back(catalog_url: str) -> None:
    engine = db.create_engine(catalog_url)
    try:
        migrate(engine, "0001")
        assert version(engine) == "0001"
        assert "api_keys" not in table_names(engine)
        assert "backup_vaults" in table_names(engine)

        migrate(engine, "0002")
        assert version(engine) == "0002"
        assert "api_keys" in table_names(engine)
        columns = {c["name"]: c for c in sa.inspect(engine).get_columns("api_keys")}
        assert set(columns) == {
            "access_key_id", "user_name", "role", "secret_ciphertext", "enabled", "creation_date"
        }
        assert not any(c["nullable"] for c in columns.values())
        assert sa.inspect(engine).get_pk_constraint("api_keys")["constrained_columns"] == ["access_key_id"]
        store = KeyStore(engine, MASTER)
        key_id, secret = store.create_key("alice", Role.VIEWER, T0)
        assert store.secret_for(key_id) == secret

        # enabled defaults to true in the database too
        with engine.begin() as conn:
            conn.execute(
                sa.text(
                    "INSERT INTO api_keys (access_key_id, user_name, role, secret_ciphertext, creation_date) "
                    "VALUES ('SKAKRAWINSERT0000001', 'raw', 'viewer', 'x', :now)"
                ),
                {"now": T0.replace(tzinfo=None)},
            )
        assert store.get_key("SKAKRAWINSERT0000001").enabled is True

        migrate(engine, "0001", down=True)
        assert "api_keys" not in table_names(engine)
        migrate(engine, "head")
        assert "api_keys" in table_names(engine)
    finally:
        engine.dispose()


def test_the_migration_matches_the_table_definition(engine: Engine) -> None:
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        diffs = compare_metadata(context, tables.metadata)
    assert [d for d in diffs if "api_keys" in repr(d)] == []


# -- boto3 over HTTP, signing with catalog keys ------------------------------------------------------------------
OPERATION_OF = {
    ("GET", "backup-vaults"): ("ListBackupVaults", {"BackupVaultList": []}),
    ("DELETE", "backup-vaults"): ("DeleteRecoveryPoint", {}),
    ("PUT", "backup-jobs"): ("StartBackupJob", {"BackupJobId": "job-1"}),
}


class _Handler(BaseHTTPRequestHandler):
    """The smallest AWS Backup endpoint: SigV4 against the key store, then the role's permission."""

    protocol_version = "HTTP/1.1"
    store: KeyStore

    def _handle(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        path, _, query = self.path.partition("?")
        try:
            headers = dict(self.headers.items())
            key_id = verify_request(
                self.command, path, query, headers, body, self.store.secret_for, datetime.now(UTC), region="us-east-1"
            )
            role = self.store.role_of(key_id)
            if role is None:
                raise UnrecognizedClient("The security token included in the request is invalid.")
            operation, answer = OPERATION_OF[(self.command, path.split("/")[1])]
            authorize(role, operation, user_name=self.store.get_key(key_id).user_name)
            status, payload, error_type = 200, answer, None
        except SnapkeepError as err:
            status, payload, error_type = err.http_status, {"message": err.message}, err.code
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if error_type:
            self.send_header("x-amzn-ErrorType", error_type)
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_PUT = do_POST = do_DELETE = _handle

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def endpoint(store: KeyStore) -> Iterator[str]:
    handler = type("Handler", (_Handler,), {"store": store})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def client(endpoint: str, key_id: str | None = None, secret: str | None = None, **extra: Any) -> Any:
    config = Config(retries={"max_attempts": 1}, **({"signature_version": UNSIGNED} if key_id is None else {}))
    return boto3.client(
        "backup",
        region_name="us-east-1",
        endpoint_url=endpoint,
        aws_access_key_id=key_id or "unused",
        aws_secret_access_key=secret or "unused",
        config=config,
        **extra,
    )


def error_of(call: Any) -> tuple[str, str, int]:
    with pytest.raises(ClientError) as info:
        call()
    error = info.value.response["Error"]
    return error["Code"], error["Message"], info.value.response["ResponseMetadata"]["HTTPStatusCode"]


RP_ARN = "arn:aws:ec2:us-east-1::image/ami-0123456789abcdef0"
INSTANCE_ARN = "arn:aws:ec2:us-east-1:123456789012:instance/i-0123456789abcdef0"
ROLE_ARN = "arn:aws:iam::123456789012:role/backup"


def test_boto3_signs_with_catalog_keys_and_roles_apply(endpoint: str, store: KeyStore) -> None:
    viewer = client(endpoint, *store.create_key("vera", Role.VIEWER, T0))
    operator = client(endpoint, *store.create_key("otto", Role.OPERATOR, T0))
    store.ensure_admin_from_env(ENV, T0)
    admin = client(endpoint, ADMIN_ID, ADMIN_SECRET, aws_session_token="a-session-token")

    assert viewer.list_backup_vaults()["BackupVaultList"] == []
    code, message, status = error_of(
        lambda: viewer.start_backup_job(BackupVaultName="main", ResourceArn=INSTANCE_ARN, IamRoleArn=ROLE_ARN)
    )
    assert (code, status) == ("AccessDeniedException", 403)
    assert message.startswith("User vera (role viewer) is not authorized to perform: backup:StartBackupJob")

    job = operator.start_backup_job(BackupVaultName="main", ResourceArn=INSTANCE_ARN, IamRoleArn=ROLE_ARN)
    assert job["BackupJobId"] == "job-1"
    code, message, status = error_of(
        lambda: operator.delete_recovery_point(BackupVaultName="main", RecoveryPointArn=RP_ARN)
    )
    assert (code, status) == ("AccessDeniedException", 403)
    assert "backup:DeleteRecoveryPoint" in message and "role operator" in message

    admin.delete_recovery_point(BackupVaultName="main", RecoveryPointArn=RP_ARN)


def test_boto3_sees_aws_authentication_errors(endpoint: str, store: KeyStore) -> None:
    key_id, secret = store.create_key("alice", Role.ADMIN, T0)
    code, message, status = error_of(lambda: client(endpoint, key_id, "x" * 40).list_backup_vaults())
    assert (code, status) == ("InvalidSignatureException", 403)
    assert message.startswith("The request signature we calculated does not match the signature you provided.")

    code, message, status = error_of(lambda: client(endpoint, "SKAKNOSUCHKEY0000000", secret).list_backup_vaults())
    assert (code, message, status) == (
        "UnrecognizedClientException", "The security token included in the request is invalid.", 403
    )

    code, message, status = error_of(lambda: client(endpoint).list_backup_vaults())
    assert (code, message, status) == ("MissingAuthenticationTokenException", "Missing Authentication Token", 403)

    store.disable_key(key_id)
    code, _, status = error_of(lambda: client(endpoint, key_id, secret).list_backup_vaults())
    assert (code, status) == ("UnrecognizedClientException", 403)
