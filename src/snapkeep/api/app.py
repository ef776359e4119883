"""The AWS Backup-compatible HTTP API: every request is authenticated (SigV4), routed and validated from
botocore's service model, authorized by role, served by the operations registry, and answered in rest-json."""

from __future__ import annotations

import logging
import traceback
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import botocore.session
from botocore.model import ListShape, MapShape, OperationModel, Shape, StructureShape
from fastapi import FastAPI, Request, Response
from starlette.concurrency import run_in_threadpool
from starlette.convertors import Convertor, register_url_convertor
from starlette.routing import Route, request_response
from starlette.types import ASGIApp, Receive, Scope, Send

from snapkeep.api.auth import UnrecognizedClient, verify_request
from snapkeep.api.keys import ADMIN_USER_NAME, KeyStore
from snapkeep.api.operations import OPERATIONS
from snapkeep.api.protocol import (
    UnsupportedOperation,
    parse_request,
    routing_error,
    serialize_error,
    serialize_response,
)
from snapkeep.api.roles import Role, authorize
from snapkeep.api.router import RouteMatch, Router
from snapkeep.domain.errors import ServiceUnavailable, SnapkeepError
from snapkeep.service import BackupService

log = logging.getLogger("snapkeep.api")
MODEL = botocore.session.get_session().get_service_model("backup")


def conform(shape: Shape | None, value: Any) -> Any:
    """Keep only what the output shape declares, at every depth (the service may know more than the API says)."""
    if shape is None or value is None:
        return value
    if isinstance(shape, StructureShape) and isinstance(value, Mapping):
        return {k: conform(shape.members[k], v) for k, v in value.items() if k in shape.members and v is not None}
    if isinstance(shape, ListShape) and isinstance(value, list):
        return [conform(shape.member, v) for v in value]
    if isinstance(shape, MapShape) and isinstance(value, Mapping):
        return {k: conform(shape.value, v) for k, v in value.items()}
    return value


class Dispatcher:
    """Turns one HTTP request into one answer; no framework types, so it is easy to test and reuse."""

    def __init__(self, service: BackupService, keys: KeyStore, region: str,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.service, self.keys, self.region, self.clock = service, keys, region, clock
        self.router = Router(MODEL)

    def __call__(self, method: str, raw_path: str, query: str, headers: Mapping[str, str],
                 body: bytes) -> tuple[int, dict[str, str], bytes]:
        request_id = str(uuid.uuid4())
        try:
            key_id = verify_request(method, raw_path, query, headers, body, self.keys.secret_for, self.clock(),
                                    region=self.region)
            role = self.keys.role_of(key_id)
            if role is None:
                raise UnrecognizedClient("The security token included in the request is invalid.")
            match = self.router.match(method, raw_path, query)
            if not isinstance(match, RouteMatch):
                raise routing_error(match)
            name = match.operation_name
            user_name = self.keys.get_key(key_id).user_name
            authorize(role, name, user_name=user_name)
            operation: OperationModel = MODEL.operation_model(name)
            params = parse_request(operation, match.uri_params, query, headers, body)
            # Vault access policies (Deny statements) after the role; the bootstrap admin is the account root.
            self.service.enforce_vault_access_policy(
                name, params, user_name=user_name, root=role is Role.ADMIN and user_name == ADMIN_USER_NAME)
            handler = OPERATIONS.get(name)
            if handler is None:
                raise UnsupportedOperation(name)
            output = conform(operation.output_shape, handler(self.service, params))
            return serialize_response(operation, output or {}, request_id=request_id)
        except SnapkeepError as exc:
            return serialize_error(exc, request_id=request_id)
        except Exception:  # a bug: answer like AWS (500, retryable) and keep the trace in the log
            log.error("request %s %s failed: %s", method, raw_path, traceback.format_exc())
            return serialize_error(ServiceUnavailable(f"internal error (request {request_id})"),
                                   request_id=request_id)


class _AnyPath(Convertor[str]):
    """Starlette's `path` convertor stops at a newline; a label may hold one (`%0A`), and every request must reach
    the dispatcher to get an AWS-shaped answer."""

    regex = "[\\s\\S]*"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("aws_path", _AnyPath())


class _AnyMethod:
    """The endpoint as an ASGI object: Starlette routes every method to one (a function endpoint gets GET only), so
    a method the model does not use still reaches the dispatcher and gets an AWS-shaped answer."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)


def create_app(dispatcher: Dispatcher) -> FastAPI:
    app = FastAPI(title="Snapkeep", docs_url=None, redoc_url=None, openapi_url=None)

    async def handle(request: Request) -> Response:
        body = await request.body()
        raw = request.scope.get("raw_path") or request.url.path.encode()
        raw_path = raw.decode("latin-1") if isinstance(raw, bytes) else str(raw)
        query = request.scope.get("query_string", b"").decode("latin-1")
        status, headers, payload = await run_in_threadpool(
            dispatcher, request.method, raw_path, query, request.headers, body)
        return Response(content=payload, status_code=status, headers=headers)

    app.router.routes.append(Route("/{path:aws_path}", _AnyMethod(request_response(handle)), include_in_schema=False))
    return app
