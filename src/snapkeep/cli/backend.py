"""Where a command's AWS Backup calls go: the local catalog, or a Snapkeep server over the AWS Backup API.

Commands speak AWS Backup (operation names and member names from botocore's model) to a `Backend`, so every
command behaves the same in both modes: same input checks, same output shapes, same errors and exit codes.

- `LocalBackend` runs the request the way the server would: botocore's client-side checks (and the idempotency
  tokens boto3 fills in), botocore's serializer, the server's router and request parser, the operation's handler
  from the registry, and the output trimmed to the model's shape. It skips authentication and roles: whoever can
  open the catalog owns it.
- `RemoteBackend` is boto3's `backup` client with the endpoint and an API key; AWS error codes come back as the
  matching Snapkeep errors, so exit codes and messages match local mode.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import make_url

from snapkeep.cli.output import note_catalog_url, redact_url
from snapkeep.domain.errors import (
    AccessDenied,
    AlreadyExists,
    Conflict,
    DependencyFailure,
    InvalidParameterValue,
    InvalidRequest,
    InvalidResourceState,
    LimitExceeded,
    MissingParameterValue,
    ResourceNotFound,
    ServiceUnavailable,
    SnapkeepError,
)

if TYPE_CHECKING:
    from snapkeep.app import Snapkeep
    from snapkeep.config import Settings

DEFAULT_REGION = "us-east-1"
ENDPOINT_ENV = "SNAPKEEP_ENDPOINT"
KEY_ID_ENV = "SNAPKEEP_ACCESS_KEY_ID"
SECRET_ENV = "SNAPKEEP_SECRET_ACCESS_KEY"
REGION_ENV = "SNAPKEEP_REGION"


class Backend(Protocol):
    """One AWS Backup call: operation name and input in AWS member names in, output in AWS member names out."""

    where: str  # what the calls reach, for messages

    def call(self, operation_name: str, params: Mapping[str, Any]) -> dict[str, Any]: ...

    def recovery_point_details(self, vault: str, recovery_point_arn: str) -> dict[str, Any] | None:
        """What the catalog knows beyond AWS Backup's shape (volumes, image backup); None when remote."""

    def close(self) -> None: ...


def service_model() -> Any:
    """botocore's model of AWS Backup (botocore caches the loaded files)."""
    import botocore.session

    return botocore.session.get_session().get_service_model("backup")


# -- input checks shared by both modes ----------------------------------------------------------------------
_PARAMETER = re.compile(r"for parameter ([^,\s]+)")
_MEMBER = re.compile(r'in ([^:\s]+): "([^"]+)"')


def validation_error(report: str) -> SnapkeepError:
    """botocore's client-side validation report as our error: the same text in both modes, naming the member."""
    lines = [line.strip() for line in report.splitlines() if line.strip()]
    first = lines[0] if lines else report
    found: str | None = None
    if member := _MEMBER.search(first):
        parent, name = member.groups()
        found = name if parent == "input" else f"{parent}.{name}"
    elif parameter := _PARAMETER.search(first):
        found = parameter.group(1)
    message = "; ".join(lines) or "the request does not fit the AWS Backup model"
    if lines and all(line.startswith("Missing required parameter") for line in lines):
        return MissingParameterValue(message, field=found)
    return InvalidParameterValue(message, field=found)


# -- local --------------------------------------------------------------------------------------------------
def load_settings() -> Settings:
    """Settings from the environment, the catalog URL checked and noted so database errors can name it."""
    from snapkeep.config import Settings

    settings = Settings.from_env()
    try:
        make_url(settings.database_url).get_dialect()
    except sa_exc.ArgumentError as exc:  # unparsable, or a database SQLAlchemy has no dialect for
        raise InvalidParameterValue(
            f"SNAPKEEP_DATABASE_URL: '{redact_url(settings.database_url)}' is not a database URL Snapkeep can use "
            "(expected sqlite:///PATH or postgresql://USER@HOST/DB)",
            field="SNAPKEEP_DATABASE_URL",
        ) from exc
    note_catalog_url(settings.database_url)
    return settings


def open_app() -> Snapkeep:
    from snapkeep.app import Snapkeep

    return Snapkeep.open(load_settings())


def in_model_order(shape: Any, value: Any) -> Any:
    """Members in the order the model lists them, at every depth, as botocore's parser returns them remotely."""
    kind = getattr(shape, "type_name", None)
    if kind == "structure" and isinstance(value, Mapping) and not shape.is_document_type:
        return {name: in_model_order(member, value[name]) for name, member in shape.members.items() if name in value}
    if kind == "list" and isinstance(value, list):
        return [in_model_order(shape.member, item) for item in value]
    if kind == "map" and isinstance(value, Mapping):
        return {key: in_model_order(shape.value, item) for key, item in value.items()}
    return value


class LocalBackend:
    """The operations registry over this host's catalog, with the server's own request parsing."""

    def __init__(self, sk: Snapkeep) -> None:
        from snapkeep.api.router import Router

        self.sk = sk
        self.where = "the local catalog"
        self.model = service_model()
        self.router = Router(self.model)

    def call(self, operation_name: str, params: Mapping[str, Any]) -> dict[str, Any]:
        from botocore.handlers import generate_idempotent_uuid
        from botocore.serialize import create_serializer
        from botocore.utils import percent_encode_sequence
        from botocore.validate import ParamValidator

        from snapkeep.api.app import conform
        from snapkeep.api.operations import OPERATIONS
        from snapkeep.api.protocol import UnsupportedOperation, parse_request
        from snapkeep.api.router import RouteMatch

        if operation_name not in self.model.operation_names:
            raise UnsupportedOperation(operation_name)
        operation = self.model.operation_model(operation_name)
        params = dict(params)
        generate_idempotent_uuid(params, operation)  # as boto3 does before validating
        if operation.input_shape is not None:
            report = ParamValidator().validate(params, operation.input_shape)
            if report.has_errors():
                raise validation_error(report.generate_report())
        request = create_serializer("rest-json", include_validation=False).serialize_to_request(params, operation)
        query = percent_encode_sequence(request["query_string"])
        match = self.router.match(request["method"], request["url_path"], query)
        if not isinstance(match, RouteMatch) or match.operation_name != operation_name:
            raise UnsupportedOperation(operation_name)
        parsed = parse_request(operation, match.uri_params, query, request["headers"], request["body"])
        handler = OPERATIONS.get(operation_name)
        if handler is None:
            raise UnsupportedOperation(operation_name)
        output = conform(operation.output_shape, handler(self.sk.service, parsed)) or {}
        return in_model_order(operation.output_shape, output) if operation.output_shape is not None else {}

    def recovery_point_details(self, vault: str, recovery_point_arn: str) -> dict[str, Any] | None:
        point = self.sk.service.describe_recovery_point(vault, recovery_point_arn)
        return {k: point[k] for k in ("Volumes", "ImageBackup") if point.get(k) is not None}

    def close(self) -> None:
        self.sk.close()


# -- remote -------------------------------------------------------------------------------------------------
def _error_classes() -> dict[str, type[SnapkeepError]]:
    from snapkeep.api import auth
    from snapkeep.api.protocol import UnknownOperation

    classes: list[type[SnapkeepError]] = [
        InvalidParameterValue, MissingParameterValue, InvalidRequest, ResourceNotFound, AlreadyExists, Conflict,
        InvalidResourceState, LimitExceeded, AccessDenied, DependencyFailure, ServiceUnavailable, UnknownOperation,
        auth.MissingAuthenticationToken, auth.IncompleteSignature, auth.UnrecognizedClient, auth.InvalidSignature,
    ]
    by_code = {cls.code: cls for cls in classes}
    by_code["ExpiredTokenException"] = auth.AuthenticationError
    return by_code


_AUTH_CODES = frozenset({
    "MissingAuthenticationTokenException", "IncompleteSignatureException", "UnrecognizedClientException",
    "InvalidSignatureException", "ExpiredTokenException",
})


def remote_error(code: str, message: str, status: int, context: str | None, where: str) -> SnapkeepError:
    """An AWS error answer as the Snapkeep error of that code, so the CLI exits and prints as in local mode."""
    cls = _error_classes().get(code)
    if code in _AUTH_CODES:
        message = (f"{message.splitlines()[0] if message else code} (the API key from --access-key-id / "
                   f"{KEY_ID_ENV} and {SECRET_ENV}, signing for --region / {REGION_ENV}, was not accepted by "
                   f"{where})")
    if cls is not None:
        return cls(message, field=context)
    # A code Snapkeep does not know (another server behind the URL?): keep it, exit by its HTTP status.
    exit_code = 8 if status >= 500 else 2 if status >= 400 else 1
    unknown: type[SnapkeepError] = type(
        "RemoteError", (SnapkeepError,), {"code": code or f"HTTP{status}", "exit_code": exit_code})
    return unknown(message or f"{where} answered HTTP {status}", field=context)


class RemoteBackend:
    """boto3's `backup` client against a Snapkeep server; one attempt per call (a 4xx is never worth a retry, and
    an unreachable server is reported at once)."""

    def __init__(self, endpoint: str, access_key_id: str, secret_access_key: str, region: str) -> None:
        import boto3
        from botocore.config import Config

        self.where = f"the Snapkeep server at {endpoint}"
        self.endpoint = endpoint
        try:
            self.client = boto3.client(
                "backup",
                endpoint_url=endpoint,
                region_name=region,
                aws_access_key_id=access_key_id,
                aws_secret_access_key=secret_access_key,
                config=Config(retries={"total_max_attempts": 1, "mode": "standard"}, connect_timeout=10,
                              read_timeout=120),
            )
        except ValueError as exc:  # botocore: "Invalid endpoint: ..."
            raise InvalidParameterValue(
                f"--endpoint: '{endpoint}' is not a URL (expected e.g. http://127.0.0.1:8480): {exc}",
                field="--endpoint",
            ) from exc

    def call(self, operation_name: str, params: Mapping[str, Any]) -> dict[str, Any]:
        from botocore import xform_name
        from botocore.exceptions import ClientError, HTTPClientError, ParamValidationError
        from botocore.exceptions import ConnectionError as BotoConnectionError

        from snapkeep.api.protocol import UnsupportedOperation

        if operation_name not in self.client.meta.service_model.operation_names:
            raise UnsupportedOperation(operation_name)
        method = getattr(self.client, xform_name(operation_name))
        try:
            out: dict[str, Any] = method(**params)
        except ParamValidationError as exc:
            raise validation_error(str(exc.kwargs.get("report", exc))) from None
        except ClientError as exc:
            error = exc.response.get("Error", {})
            status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
            context = exc.response.get("Context")
            raise remote_error(str(error.get("Code", "")), str(error.get("Message", "")), status,
                               context if isinstance(context, str) and context else None, self.where) from None
        except (BotoConnectionError, HTTPClientError) as exc:
            raise ServiceUnavailable(f"cannot reach {self.where}: {exc}") from None
        out.pop("ResponseMetadata", None)
        return out

    def recovery_point_details(self, vault: str, recovery_point_arn: str) -> dict[str, Any] | None:
        return None

    def close(self) -> None:
        self.client.close()


# -- which one a command uses -------------------------------------------------------------------------------
@dataclass
class Target:
    """The root options (--endpoint, key, region): the backend is made on first use, inside the command's error
    handling, so a bad setting is reported like any other error. Tests may hand in a backend ready made."""

    endpoint: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = None
    region: str = DEFAULT_REGION
    backend: Backend | None = field(default=None)

    @property
    def remote(self) -> bool:
        return bool(self.endpoint)

    def open(self) -> Backend:
        if self.backend is None:
            self.backend = self._make()
        return self.backend

    def _make(self) -> Backend:
        if not self.endpoint:
            return LocalBackend(open_app())
        if not self.access_key_id or not self.secret_access_key:
            missing = "an access key id" if not self.access_key_id else "a secret access key"
            raise MissingParameterValue(
                f"--endpoint {self.endpoint}: {missing} is required: set {KEY_ID_ENV} and {SECRET_ENV} (or "
                "--access-key-id, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY) to an API key of that server "
                "(`snapkeep user create NAME --role operator` on the server's host makes one)",
                field=KEY_ID_ENV if not self.access_key_id else SECRET_ENV,
            )
        return RemoteBackend(self.endpoint, self.access_key_id, self.secret_access_key, self.region)

    def close(self) -> None:
        if self.backend is not None:
            self.backend.close()


def target_from_options(endpoint: str | None, access_key_id: str | None, region: str | None) -> Target:
    """The root options with the environment's fallbacks: SNAPKEEP_* first, then AWS_ACCESS_KEY_ID /
    AWS_SECRET_ACCESS_KEY. The secret is only ever read from the environment (a command line is visible to every
    user of the host)."""
    env = os.environ
    return Target(
        endpoint=endpoint or None,
        access_key_id=access_key_id or env.get("AWS_ACCESS_KEY_ID") or None,
        secret_access_key=env.get(SECRET_ENV) or env.get("AWS_SECRET_ACCESS_KEY") or None,
        region=region or DEFAULT_REGION,
    )


# The running command's target, set by the root callback (one command runs at a time in a process).
_current: ContextVar[Target | None] = ContextVar("snapkeep_cli_target", default=None)


def use_target(target: Target) -> None:
    _current.set(target)


def current_target() -> Target:
    """The target the root options chose; local when none was set (a command called outside the app)."""
    target = _current.get()
    if target is None:
        target = Target()
        _current.set(target)
    return target


def backend() -> Backend:
    """The backend of the running command (call it inside `errors_to_exit()`)."""
    return current_target().open()


def require_local(command: str) -> None:
    """Refuse a command that works on this host's catalog (or inventory) only when --endpoint is given."""
    target = current_target()
    if target.remote:
        raise InvalidRequest(
            f"`snapkeep {command}` works on this host's catalog only and does not work with --endpoint "
            f"({target.endpoint}): run it on the Snapkeep server's host without --endpoint / {ENDPOINT_ENV}",
            field="--endpoint",
        )


def pages(backend: Backend, operation_name: str, params: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """Every page of a paged operation, following NextToken."""
    request = dict(params)
    while True:
        page = backend.call(operation_name, request)
        yield page
        token = page.get("NextToken")
        if not token:
            return
        request["NextToken"] = token


def call_all(backend: Backend, operation_name: str, params: Mapping[str, Any], key: str) -> list[dict[str, Any]]:
    """The items under `key` of every page."""
    return [item for page in pages(backend, operation_name, params) for item in page.get(key) or []]
