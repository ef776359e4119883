"""One provider of AWS clients, keyed by (service, region, role): assume a role once, cache, refresh early."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.config import Config

from snapkeep.aws.errors import aws_errors
from snapkeep.domain.errors import DependencyFailure

_CLIENT_CONFIG = Config(retries={"mode": "standard", "max_attempts": 5}, connect_timeout=10, read_timeout=60)
_REFRESH_MARGIN_SECONDS = 300


@dataclass
class _Credentials:
    access_key_id: str
    secret_access_key: str
    session_token: str | None
    expires_at: float  # time.time(); inf for static credentials


class SessionProvider:
    """Hands out boto3 clients for an account (through its role) and a region.

    `role_arn=None` means the account of the base credentials. Endpoints are configuration: the offline lab
    or real AWS.
    """

    def __init__(
        self,
        endpoint_url: str | None = None,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        session_name: str = "snapkeep",
    ) -> None:
        self._endpoint_url = endpoint_url
        self._base = boto3.session.Session(aws_access_key_id=access_key_id, aws_secret_access_key=secret_access_key)
        self._session_name = session_name
        self._lock = threading.Lock()
        self._credentials: dict[str, _Credentials] = {}
        self._clients: dict[tuple[str, str, str | None], tuple[Any, float]] = {}

    @property
    def endpoint_url(self) -> str | None:
        return self._endpoint_url

    def client(self, service: str, region: str, role_arn: str | None = None) -> Any:
        key = (service, region, role_arn)
        with self._lock:
            cached = self._clients.get(key)
            if cached is not None and cached[1] - _REFRESH_MARGIN_SECONDS > time.time():
                return cached[0]
            if role_arn is None:
                client = self._base.client(
                    service, region_name=region, endpoint_url=self._endpoint_url, config=_CLIENT_CONFIG
                )
                expires = float("inf")
            else:
                creds = self._assumed(role_arn, region)
                client = boto3.session.Session(
                    aws_access_key_id=creds.access_key_id,
                    aws_secret_access_key=creds.secret_access_key,
                    aws_session_token=creds.session_token,
                ).client(service, region_name=region, endpoint_url=self._endpoint_url, config=_CLIENT_CONFIG)
                expires = creds.expires_at
            self._clients[key] = (client, expires)
            return client

    def credentials(self, region: str, role_arn: str | None = None) -> tuple[str, str, str | None]:
        """(access key, secret key, session token) the clients of this account use, for requests signed
        without boto3 (the EBS block path); assumed-role credentials are refreshed as for the clients."""
        if role_arn is not None:
            with self._lock:
                creds = self._assumed(role_arn, region)
            return creds.access_key_id, creds.secret_access_key, creds.session_token
        base = self._base.get_credentials()
        if base is None:
            raise DependencyFailure("no AWS credentials are configured (environment, profile or instance role)")
        frozen = base.get_frozen_credentials()
        return frozen.access_key, frozen.secret_key, frozen.token

    def _assumed(self, role_arn: str, region: str) -> _Credentials:
        creds = self._credentials.get(role_arn)
        if creds is not None and creds.expires_at - _REFRESH_MARGIN_SECONDS > time.time():
            return creds
        sts = self._base.client("sts", region_name=region, endpoint_url=self._endpoint_url, config=_CLIENT_CONFIG)
        with aws_errors(f"AssumeRole {role_arn}"):
            answer = sts.assume_role(RoleArn=role_arn, RoleSessionName=self._session_name)["Credentials"]
        creds = _Credentials(
            answer["AccessKeyId"],
            answer["SecretAccessKey"],
            answer.get("SessionToken"),
            answer["Expiration"].timestamp(),
        )
        self._credentials[role_arn] = creds
        return creds
