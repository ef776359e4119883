"""An OpenAPI 3.0 description of the AWS API, generated from the botocore service model (for schemathesis & co).

What it encodes, and where the facts come from (botocore 1.44.5, botocore/serialize.py and botocore/parsers.py):
- One path per `requestUri` path part, method from `http.method`; `{label+}` (greedy) becomes `{label}` since
  OpenAPI 3.0 has no multi-segment parameter (marked `x-greedy`). A fixed query part of the `requestUri`
  (`?delete`) becomes a required query parameter, as botocore appends it to every such request.
- Parameters from `location` uri (name = the template label), querystring (lists repeat the key: `style: form`,
  `explode: true`; a map spreads its entries over the query) and header members; `location: headers` prefix maps
  cannot be expressed and are listed under `x-header-prefix-maps`.
- The request body holds the members without a location (or the `payload` member), a JSON object. Timestamps in
  JSON bodies are epoch seconds (numbers) unless `timestampFormat` says otherwise; in the query they are ISO-8601
  strings, in headers HTTP dates; blobs are base64 strings.
- Constraints: `min`/`max` become minLength/maxLength (strings), minItems/maxItems (lists), minProperties/
  maxProperties (maps), minimum/maximum (numbers); `pattern` is copied as is (Smithy patterns, like JSON Schema's,
  are unanchored ECMAScript regexes); enums are closed.
- Responses: the operation's `http.responseCode` (default 200) with the JSON body of the output's non-location
  members and its `location: header` members as headers; each modelled error under the HTTP status Snapkeep answers
  it with (`snapkeep.domain.errors`), and `default` for the rest, all with AWS Backup's error body
  `{"Code", "Message", "Type", "Context"}` (what botocore's RestJSONParser reads).
"""

from __future__ import annotations

from typing import Any

from snapkeep.api import protocol, shapes
from snapkeep.api.router import compile_route
from snapkeep.domain import errors as domain_errors

Shape = Any
ServiceModel = Any

OPENAPI_VERSION = "3.0.3"
ERROR_SCHEMA = "AwsError"
_INTEGER_FORMATS = {"integer": "int32", "long": "int64", "short": "int32", "byte": "int32"}


def _error_statuses() -> dict[str, int]:
    """AWS error code -> the HTTP status Snapkeep answers it with."""
    found: dict[str, int] = {}
    stack: list[type[domain_errors.SnapkeepError]] = [domain_errors.SnapkeepError]
    while stack:
        cls = stack.pop()
        found.setdefault(cls.code, cls.http_status)
        stack.extend(cls.__subclasses__())
    found[domain_errors.SnapkeepError.code] = domain_errors.ServiceUnavailable.http_status
    found[protocol.UnknownOperation.code] = protocol.UnknownOperation.http_status
    return found


class _Builder:
    def __init__(self, service_model: ServiceModel) -> None:
        self.model = service_model
        self.schemas: dict[str, Any] = {}
        self.pending: list[Shape] = []
        self.statuses = _error_statuses()

    # -- schemas

    def ref(self, shape: Shape) -> dict[str, Any]:
        if shape.name not in self.schemas:
            self.schemas[shape.name] = {}  # reserve: shapes may be recursive
            self.pending.append(shape)
        return {"$ref": f"#/components/schemas/{shape.name}"}

    def drain(self) -> None:
        while self.pending:
            shape = self.pending.pop()
            self.schemas[shape.name] = self.object_schema(shape, list(shape.members))

    def object_schema(self, shape: Shape, names: list[str]) -> dict[str, Any]:
        if shape.is_document_type:
            return {"description": "any JSON value (document)"}
        members = shape.members
        schema: dict[str, Any] = {
            "type": "object",
            "properties": {members[n].serialization.get("name", n): self.schema(members[n], "body") for n in names},
        }
        required = [members[n].serialization.get("name", n) for n in shape.required_members if n in names]
        if required:
            schema["required"] = required
        if shape.is_tagged_union:
            schema["minProperties"] = 1
            schema["maxProperties"] = 1
        return schema

    def schema(self, shape: Shape, where: str) -> dict[str, Any]:
        """Schema of a value of `shape` found in `where`: body, query, header or path."""
        kind = shape.type_name
        meta = shape.metadata
        out: dict[str, Any]
        if kind == "structure":
            return self.ref(shape)
        if kind == "list":
            out = {"type": "array", "items": self.schema(shape.member, where)}
            _bounds(out, meta, "minItems", "maxItems")
        elif kind == "map":
            out = {"type": "object", "additionalProperties": self.schema(shape.value, where)}
            _bounds(out, meta, "minProperties", "maxProperties")
        elif kind == "string":
            out = {"type": "string"}
            if shape.serialization.get("jsonvalue"):
                out["format"] = "byte"
                out["description"] = "base64 of a JSON value"
                return out
            _bounds(out, meta, "minLength", "maxLength")
            if meta.get("enum"):
                out["enum"] = list(meta["enum"])
            if meta.get("pattern"):
                out["pattern"] = meta["pattern"]
        elif kind in shapes.INTEGER_RANGES:
            low, high = shapes.INTEGER_RANGES[kind]
            out = {"type": "integer", "format": _INTEGER_FORMATS[kind],
                   "minimum": meta.get("min", low), "maximum": meta.get("max", high)}
        elif kind in shapes.FLOAT_TYPES:
            out = {"type": "number", "format": kind}
            _bounds(out, meta, "minimum", "maximum")
        elif kind == "boolean":
            out = {"type": "boolean"}
        elif kind == "blob":
            out = {"type": "string", "format": "byte"}
            _bounds(out, meta, "minLength", "maxLength")
        elif kind == "timestamp":
            default = {"body": "unixTimestamp", "header": "rfc822"}.get(where, "iso8601")
            fmt = shape.serialization.get("timestampFormat", default).lower()
            if fmt == "unixtimestamp":
                out = {"type": "number", "description": "seconds since the epoch"}
            elif fmt == "rfc822":
                out = {"type": "string", "description": "HTTP date (RFC 7231)"}
            else:
                out = {"type": "string", "format": "date-time"}
        else:
            out = {}
        return out

    # -- operations

    def operation(self, name: str) -> tuple[str, str, dict[str, Any]]:
        om = self.model.operation_model(name)
        http = om.http
        route = compile_route(name, http.get("method", "POST"), http["requestUri"])
        path_template = http["requestUri"].partition("?")[0].replace("+}", "}")
        greedy = {label for seg in route.segments if seg.greedy for label in seg.labels}
        parameters: list[dict[str, Any]] = []
        prefix_maps: list[str] = []
        body_names: list[str] = []
        shape = om.input_shape
        payload = shape.serialization.get("payload") if shape is not None else None
        for key, value in route.fixed_query:
            parameters.append({"name": key, "in": "query", "required": True, "allowEmptyValue": value is None,
                               "schema": {"type": "string", "enum": [value or ""]},
                               "description": "fixed part of the request URI"})
        if shape is not None:
            required = set(shape.required_members)
            for member_name, member in shape.members.items():
                location = member.serialization.get("location")
                wire = member.serialization.get("name", member_name)
                if location == "uri":
                    param = {"name": wire, "in": "path", "required": True, "schema": self.schema(member, "path")}
                    if wire in greedy:
                        param["x-greedy"] = True
                    parameters.append(param)
                elif location == "querystring":
                    param = {"name": wire, "in": "query", "required": member_name in required,
                             "schema": self.schema(member, "query")}
                    if member.type_name in ("list", "map"):
                        param.update(style="form", explode=True)
                    if member.type_name == "map":
                        param["name"] = member_name
                    parameters.append(param)
                elif location == "header":
                    parameters.append({"name": wire, "in": "header", "required": member_name in required,
                                       "schema": self.schema(member, "header")})
                elif location == "headers":
                    prefix_maps.append(wire)
                elif location is None and member_name != payload:
                    body_names.append(member_name)
        operation: dict[str, Any] = {"operationId": name, "responses": self.responses(om)}
        if parameters:
            operation["parameters"] = parameters
        if prefix_maps:
            operation["x-header-prefix-maps"] = prefix_maps
        request_body = self.request_body(name, shape, payload, body_names)
        if request_body is not None:
            operation["requestBody"] = request_body
        return path_template, route.method.lower(), operation

    def request_body(self, op: str, shape: Shape, payload: str | None, body_names: list[str]) -> dict[str, Any] | None:
        if shape is None:
            return None
        if payload is not None:
            member = shape.members[payload]
            if member.type_name in ("blob", "string"):
                media = "application/octet-stream" if member.type_name == "blob" else "text/plain"
                return {"required": payload in shape.required_members,
                        "content": {media: {"schema": {"type": "string", "format": "binary"}}}}
            return {"required": payload in shape.required_members,
                    "content": {"application/json": {"schema": self.schema(member, "body")}}}
        if not body_names:
            return None
        component = f"{op}RequestBody"
        self.schemas[component] = self.object_schema(shape, body_names)
        needed = any(n in shape.required_members for n in body_names)
        return {"required": needed,
                "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{component}"}}}}

    def responses(self, om: Any) -> dict[str, Any]:
        status = str(om.http.get("responseCode", 200))
        ok: dict[str, Any] = {"description": f"{om.name} succeeded"}
        shape = om.output_shape
        if shape is None and status not in ("204", "304"):
            ok["content"] = {"application/json": {"schema": {"type": "object", "description": "always {}"}}}
        if shape is not None:
            body_names = [n for n, m in shape.members.items() if m.serialization.get("location") is None]
            headers = {m.serialization.get("name", n): {"schema": self.schema(m, "header")}
                       for n, m in shape.members.items() if m.serialization.get("location") == "header"}
            if headers:
                ok["headers"] = headers
            payload = shape.serialization.get("payload")
            if payload is not None:
                ok["content"] = {"application/json": {"schema": self.schema(shape.members[payload], "body")}}
            elif status not in ("204", "304"):
                component = f"{om.name}ResponseBody"
                self.schemas[component] = self.object_schema(shape, body_names)
                ok["content"] = {"application/json": {"schema": {"$ref": f"#/components/schemas/{component}"}}}
        responses: dict[str, Any] = {status: ok}
        by_status: dict[str, list[str]] = {}
        for error_shape in om.error_shapes:
            code = error_shape.error_code or error_shape.name
            by_status.setdefault(str(self.statuses.get(code, 400)), []).append(code)
        for error_status, codes in sorted(by_status.items()):
            if error_status == status:
                continue
            responses[error_status] = _error_response(", ".join(sorted(codes)))
        responses["default"] = _error_response("any other AWS error")
        return responses


def _error_response(description: str) -> dict[str, Any]:
    return {"description": description,
            "headers": {"x-amzn-ErrorType": {"schema": {"type": "string"}, "description": "the error code"}},
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{ERROR_SCHEMA}"}}}}


def _bounds(out: dict[str, Any], meta: dict[str, Any], low_key: str, high_key: str) -> None:
    if "min" in meta:
        out[low_key] = meta["min"]
    if "max" in meta:
        out[high_key] = meta["max"]


def openapi_document(service_model: ServiceModel, *, server_url: str = "/") -> dict[str, Any]:
    """The OpenAPI 3.0 document of every operation of `service_model` (a JSON-serialisable dict)."""
    builder = _Builder(service_model)
    paths: dict[str, dict[str, Any]] = {}
    unrepresentable: list[str] = []
    for name in sorted(service_model.operation_names):
        path, method, operation = builder.operation(name)
        methods = paths.setdefault(path, {})
        if method in methods:  # same path and method, told apart only by a fixed query: OpenAPI cannot say it
            unrepresentable.append(name)
            continue
        methods[method] = operation
    builder.drain()
    builder.schemas[ERROR_SCHEMA] = {
        "type": "object",
        "required": ["Message"],
        "properties": {"Code": {"type": "string"}, "Message": {"type": "string"},
                       "Type": {"type": "string", "enum": ["User", "Server"]}, "Context": {"type": "string"}},
    }
    metadata = service_model.metadata
    document: dict[str, Any] = {
        "openapi": OPENAPI_VERSION,
        "info": {"title": metadata.get("serviceFullName", service_model.service_name),
                 "version": metadata.get("apiVersion", "1"),
                 "description": f"Generated from botocore's {service_model.service_name} model "
                                f"({metadata.get('protocol')} protocol, SigV4 auth)."},
        "servers": [{"url": server_url}],
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": dict(sorted(builder.schemas.items())),
            "securitySchemes": {"sigv4": {"type": "apiKey", "in": "header", "name": "Authorization",
                                          "description": "AWS Signature Version 4",
                                          "x-amazon-apigateway-authtype": "awsSigv4"}},
        },
        "security": [{"sigv4": []}],
    }
    if unrepresentable:
        document["x-unrepresentable-operations"] = unrepresentable
    return document
