"""(HTTP method, raw path, query) -> AWS operation, from the `requestUri` templates of a botocore service model.

Wire facts relied on (botocore 1.44.5):
- `BaseRestSerializer._render_uri_template` (botocore/serialize.py) fills `{label}` with
  `percent_encode(value)` (safe characters only `-._~`, botocore/utils.py), so an ARN label arrives as
  `arn%3Aaws%3Aec2%3Aus-east-1%3A%3Aimage%2Fami-1`: '/' inside a label is `%2F`. The path must therefore be split on
  '/' *before* percent-decoding, which is why this router wants the raw path (ASGI `scope["raw_path"]`, not the
  decoded `scope["path"]`). `{label+}` (greedy) keeps '/' and '~' unencoded and may span segments.
- A `requestUri` may carry a fixed query (`/backup-vaults/{backupVaultName}/mpaApprovalTeam?delete`); botocore
  appends the modelled querystring after it with '&' (`prepare_request_dict`, botocore/awsrequest.py), so a bare
  key arrives as `delete` with no '='. A route with a fixed query matches only when those keys (and values, when
  given) are present.
- Some templates end in '/' (`GET /backup/plans/{backupPlanId}/`) and others do not
  (`POST /backup/plans/{backupPlanId}`); botocore sends exactly the template, and this router treats one trailing
  slash as insignificant so hand-written clients are not punished for it.

When several templates match, the one with the most literal characters (path and fixed query) wins; two routes of
one method that can match the same request with the same specificity are refused when the router is built.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote

_LABEL = re.compile(r"\{([^}]+)\}")


@dataclass(frozen=True)
class RouteMatch:
    """The operation asked for; `uri_params` maps each label name of the template (as written in `requestUri`, e.g.
    `backupVaultName`) to its percent-decoded value."""

    operation_name: str
    uri_params: dict[str, str]


@dataclass(frozen=True)
class RouteNotFound:
    method: str
    path: str


@dataclass(frozen=True)
class MethodNotAllowed:
    method: str
    path: str
    allowed: tuple[str, ...]


RouteResult = RouteMatch | RouteNotFound | MethodNotAllowed


class AmbiguousRoutes(ValueError):
    """Two operations of one method could claim the same request with the same specificity."""


@dataclass(frozen=True)
class Segment:
    """One '/'-separated piece of a template: literal text and labels, compiled to a regex over the decoded text."""

    text: str
    literal: str  # the literal characters, for specificity
    labels: tuple[str, ...]
    greedy: bool
    regex: re.Pattern[str] = field(compare=False)

    @property
    def is_literal(self) -> bool:
        return not self.labels


@dataclass(frozen=True)
class Route:
    operation_name: str
    method: str
    request_uri: str
    path_template: str
    segments: tuple[Segment, ...]
    fixed_query: tuple[tuple[str, str | None], ...]
    specificity: int

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(label for seg in self.segments for label in seg.labels)


def _segment(text: str) -> Segment:
    parts: list[str] = []
    labels: list[str] = []
    greedy = False
    pos = 0
    for m in _LABEL.finditer(text):
        parts.append(re.escape(text[pos:m.start()]))
        name = m.group(1)
        if name.endswith("+"):
            greedy = True
            name = name[:-1]
        parts.append(f"(?P<g{len(labels)}>.+)")
        labels.append(name)
        pos = m.end()
    parts.append(re.escape(text[pos:]))
    literal = _LABEL.sub("", text)
    return Segment(text, literal, tuple(labels), greedy, re.compile("".join(parts), re.DOTALL))


def _split_template(path: str) -> list[str]:
    pieces = path.split("/")[1:] if path.startswith("/") else path.split("/")
    if pieces and pieces[-1] == "":
        pieces.pop()
    return pieces


def compile_route(operation_name: str, method: str, request_uri: str) -> Route:
    path, _, query = request_uri.partition("?")
    fixed = tuple((k, v if v or "=" in part else None)
                  for part in query.split("&") if part
                  for k, _, v in [part.partition("=")])
    segments = tuple(_segment(s) for s in _split_template(path))
    if sum(s.greedy for s in segments) > 1:
        raise ValueError(f"{operation_name}: more than one greedy label in {request_uri}")
    specificity = sum(len(s.literal) + 1 for s in segments)  # literal characters, each '/' included
    specificity += sum(len(k) + len(v or "") + 1 for k, v in fixed)
    return Route(operation_name, method.upper(), request_uri, path, segments, fixed, specificity)


def _decode_segments(raw_path: str | bytes) -> list[str] | None:
    """Percent-decoded segments of a raw path; None when it is not a path at all."""
    if isinstance(raw_path, bytes):
        raw_path = raw_path.decode("utf-8", "replace")
    raw_path = raw_path.partition("?")[0]
    if not raw_path.startswith("/"):
        return None
    pieces = raw_path.split("/")[1:]
    if pieces and pieces[-1] == "":
        pieces.pop()
    return [unquote(p, encoding="utf-8", errors="replace") for p in pieces]


def _match_segments(segments: Sequence[Segment], parts: Sequence[str]) -> dict[str, str] | None:
    greedy_at = next((i for i, s in enumerate(segments) if s.greedy), None)
    if greedy_at is None:
        if len(segments) != len(parts):
            return None
        return _match_aligned(segments, parts)
    tail = len(segments) - greedy_at - 1
    if len(parts) < len(segments):
        return None
    head = _match_aligned(segments[:greedy_at], parts[:greedy_at])
    rest = _match_aligned(segments[greedy_at + 1:], parts[len(parts) - tail:]) if tail else {}
    if head is None or rest is None:
        return None
    middle = _match_aligned([segments[greedy_at]], ["/".join(parts[greedy_at:len(parts) - tail])])
    if middle is None:
        return None
    return {**head, **middle, **rest}


def _match_aligned(segments: Sequence[Segment], parts: Sequence[str]) -> dict[str, str] | None:
    params: dict[str, str] = {}
    for seg, part in zip(segments, parts, strict=True):
        if seg.is_literal:
            if seg.text != part:
                return None
            continue
        m = seg.regex.fullmatch(part)
        if m is None:
            return None
        for i, label in enumerate(seg.labels):
            params[label] = m.group(f"g{i}")
    return params


def query_pairs(query: str | bytes | Iterable[tuple[str, str]] | None) -> list[tuple[str, str]]:
    """Decoded (key, value) pairs of a raw query string (ASGI `scope["query_string"]`), keys repeating as sent and
    bare keys (`?delete`) kept with an empty value; pairs given already pass through."""
    if query is None:
        return []
    if isinstance(query, bytes):
        query = query.decode("utf-8", "replace")
    if isinstance(query, str):
        return parse_qsl(query, keep_blank_values=True)
    return list(query)


def _query_satisfies(route: Route, pairs: Sequence[tuple[str, str]]) -> bool:
    return all(any(k == key and (value is None or v == value) for k, v in pairs) for key, value in route.fixed_query)


class Router:
    """Routes requests to the operations of one botocore `ServiceModel` (rest-json or rest-xml)."""

    def __init__(self, service_model: Any) -> None:
        routes = []
        for name in service_model.operation_names:
            http = service_model.operation_model(name).http
            routes.append(compile_route(name, http.get("method", "POST"), http["requestUri"]))
        self.routes: tuple[Route, ...] = tuple(routes)
        self._check_unambiguous()

    def match(self, method: str, raw_path: str | bytes,
              query: str | bytes | Iterable[tuple[str, str]] | None = None) -> RouteResult:
        """The operation for a request. `raw_path` is the path as sent (still percent-encoded; a '?...' tail is
        treated as query); `query` is the raw query string or its decoded pairs."""
        method = method.upper()
        text_path = raw_path.decode("utf-8", "replace") if isinstance(raw_path, bytes) else raw_path
        path, _, inline_query = text_path.partition("?")
        parts = _decode_segments(path)
        if parts is None:
            return RouteNotFound(method, text_path)
        pairs = query_pairs(inline_query) + query_pairs(query)
        on_path: list[tuple[Route, dict[str, str]]] = []
        for route in self.routes:
            params = _match_segments(route.segments, parts)
            if params is not None and _query_satisfies(route, pairs):
                on_path.append((route, params))
        if not on_path:
            return RouteNotFound(method, path)
        candidates = [(r, p) for r, p in on_path if r.method == method]
        if not candidates:
            return MethodNotAllowed(method, path, tuple(sorted({r.method for r, _ in on_path})))
        route, params = max(candidates, key=lambda c: c[0].specificity)
        return RouteMatch(route.operation_name, params)

    def _check_unambiguous(self) -> None:
        for i, a in enumerate(self.routes):
            for b in self.routes[i + 1:]:
                if a.method != b.method or a.specificity != b.specificity:
                    continue
                if _could_overlap(a, b):
                    raise AmbiguousRoutes(f"{a.method} {a.request_uri} ({a.operation_name}) and "
                                          f"{b.request_uri} ({b.operation_name}) can match the same request")


def _could_overlap(a: Route, b: Route) -> bool:
    """Whether some path could match both routes (their fixed queries could both be satisfied by one request)."""
    for key, value in a.fixed_query:
        if any(k == key and v is not None and value is not None and v != value for k, v in b.fixed_query):
            return False
    return _segments_overlap(a.segments, b.segments)


def _segments_overlap(xs: Sequence[Segment], ys: Sequence[Segment]) -> bool:
    if not xs or not ys:
        return not xs and not ys
    x, y = xs[0], ys[0]
    if x.greedy:  # a greedy label takes one or more segments: try every split
        return any(_segments_overlap(xs[1:], ys[n:]) for n in range(1, len(ys) + 1))
    if y.greedy:
        return any(_segments_overlap(xs[n:], ys[1:]) for n in range(1, len(xs) + 1))
    if x.is_literal and y.is_literal:
        return x.text == y.text and _segments_overlap(xs[1:], ys[1:])
    if x.is_literal:
        compatible = y.regex.fullmatch(x.text) is not None
    elif y.is_literal:
        compatible = x.regex.fullmatch(y.text) is not None
    else:
        compatible = True  # two labelled segments: some text fits both (conservative)
    return compatible and _segments_overlap(xs[1:], ys[1:])
