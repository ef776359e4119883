"""Settings, read once from the environment and SNAPKEEP_HOME; nothing else reads the environment."""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field, replace
from pathlib import Path

from snapkeep.domain.errors import InvalidParameterValue
from snapkeep.env_names import REPO_PASSWORD_ENV

LAB_FILE = "lab.json"
# A worker renews its lease every third of it; a lease shorter than this would expire on any slow write.
MIN_LEASE_SECONDS = 5.0


@dataclass(frozen=True)
class Settings:
    home: Path
    database_url: str
    # None means real AWS; the lab (or any other endpoint) is plain configuration.
    aws_endpoint_url: str | None
    aws_access_key_id: str | None
    aws_secret_access_key: str | None
    region: str = "us-east-1"  # the region of Snapkeep's own resources (vaults, plans) and their ARNs
    account_id: str = "123456789012"  # the account Snapkeep's own ARNs carry
    lease_seconds: float = 60.0  # well above SQLite's busy timeout, so a slow write never loses a lease
    poll_seconds: float = 2.0
    worker_threads: int = 2
    # The passphrase of vaults' image repositories that are not wrapped by a KMS key (SNAPKEEP_REPO_PASSWORD);
    # never stored in the catalog.
    repository_password: str | None = field(default=None, repr=False)

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if env is None else env)
        home = Path(env.get("SNAPKEEP_HOME", str(Path.home() / ".snapkeep"))).expanduser()
        endpoint = env.get("SNAPKEEP_AWS_ENDPOINT_URL") or None
        key_id = env.get("SNAPKEEP_AWS_ACCESS_KEY_ID") or None
        secret = env.get("SNAPKEEP_AWS_SECRET_ACCESS_KEY") or None
        lab = read_lab_file(home)
        if endpoint is None and lab is not None:
            endpoint = lab
            key_id, secret = key_id or "testing", secret or "testing"
        return cls(
            home=home,
            database_url=env.get("SNAPKEEP_DATABASE_URL") or f"sqlite:///{home / 'catalog.db'}",
            aws_endpoint_url=endpoint,
            aws_access_key_id=key_id,
            aws_secret_access_key=secret,
            region=env.get("SNAPKEEP_REGION", "us-east-1"),
            account_id=env.get("SNAPKEEP_ACCOUNT_ID", "123456789012"),
            lease_seconds=_seconds(env, "SNAPKEEP_LEASE_SECONDS", 60.0, minimum=MIN_LEASE_SECONDS),
            poll_seconds=_seconds(env, "SNAPKEEP_POLL_SECONDS", 2.0, minimum=None),
            worker_threads=_count(env, "SNAPKEEP_WORKER_THREADS", 2, minimum=1),
            repository_password=env.get(REPO_PASSWORD_ENV) or None,
        )

    def with_lab(self, endpoint: str) -> Settings:
        return replace(self, aws_endpoint_url=endpoint, aws_access_key_id="testing", aws_secret_access_key="testing")


def _seconds(env: dict[str, str], name: str, default: float, *, minimum: float | None) -> float:
    """A duration in seconds from the environment: at least `minimum`, or above zero when there is none."""
    rule = f"at least {minimum:g}" if minimum is not None else "above 0"
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise InvalidParameterValue(
            f"{name}: '{raw}' is not a number of seconds (expected e.g. {name}={default:g}, {rule})", field=name
        )
    if (minimum is not None and value < minimum) or (minimum is None and value <= 0):
        raise InvalidParameterValue(f"{name}: must be {rule} seconds, got {raw}", field=name)
    return value


def _count(env: dict[str, str], name: str, default: int, *, minimum: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InvalidParameterValue(
            f"{name}: '{raw}' is not a whole number (expected e.g. {name}={default}, at least {minimum})", field=name
        ) from None
    if value < minimum:
        raise InvalidParameterValue(f"{name}: must be at least {minimum}, got {raw}", field=name)
    return value


def read_lab_file(home: Path) -> str | None:
    """The endpoint of a lab that `snapkeep server --lab` is running for this home, if any."""
    path = home / LAB_FILE
    if not path.exists():
        return None
    try:
        endpoint = json.loads(path.read_text())["Endpoint"]
    except (ValueError, KeyError, TypeError):
        return None
    return endpoint if isinstance(endpoint, str) else None


def write_lab_file(home: Path, endpoint: str) -> Path:
    home.mkdir(parents=True, exist_ok=True)
    path = home / LAB_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"Endpoint": endpoint}))
    tmp.replace(path)
    return path
