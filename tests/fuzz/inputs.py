"""Hypothesis strategies for the inputs of a botocore operation, as boto3 would pass them.

Values are mostly valid for the model (types, lengths, ranges, enums, patterns), with real identifiers of the fuzz
catalog mixed in so requests get past "not found" into the service, and now and then one deliberate break of the
model (a value out of its constraints, a required member left out). A break is recorded in the drawn input (see
`Drawn.broken`) so the check can demand the validation error and nothing else.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from hypothesis import strategies as st

Shape = Any  # botocore.model.Shape

INTEGER_RANGES = {"integer": (-(2**31), 2**31 - 1), "long": (-(2**63), 2**63 - 1)}
MAX_ITEMS = 4  # lists and maps: enough to find bugs, small enough to stay fast
MAX_DEPTH = 6
# Strings that have broken parsers and routers before: path and query syntax, escapes, odd unicode.
NASTY = ("/", "..", "%2F", "%", "?", "#", "&", "=", "+", " ", "a/b", "a%20b", "\\", "'\"", "\x00", "\u200b", "é",
         "😀", "\ud7ff", "*", "arn:aws:ec2:us-east-1:123456789012:instance/i-0", "-1", "9" * 30, "null", "{}")
# Values that break a constrained string; only those that really break it are used.
BREAKERS = ("", " ", "!", "\x00", "a/b", "ü", "-", "x" * 2000)


@dataclass
class Drawn:
    """One request's input, and the breaks of the model it carries (member paths)."""

    params: dict[str, Any]
    broken: list[str] = field(default_factory=list)


class Breaks:
    """The breaks made while one input is drawn: at most one, and only in the inputs picked to carry one. A `lean`
    input leaves out the optional members of nested structures, so more requests get past validation into the
    service (a full one mostly asks for some feature not served)."""

    def __init__(self, allowed: bool, lean: bool) -> None:
        self.allowed = allowed
        self.lean = lean
        self.paths: list[str] = []


def _pattern(shape: Shape) -> re.Pattern[str] | None:
    text = shape.metadata.get("pattern")
    if not text:
        return None
    try:
        return re.compile(text)
    except re.error:  # a pattern Python cannot read is not enforced server-side either
        return None


def _fits_length(shape: Shape, value: str | bytes) -> bool:
    meta = shape.metadata
    return meta.get("min", 0) <= len(value) <= meta.get("max", 10**9)


def _fits_string(shape: Shape, value: str) -> bool:
    enum = shape.metadata.get("enum")
    if enum and value not in enum:
        return False
    regex = _pattern(shape)
    return _fits_length(shape, value) and (regex is None or regex.search(value) is not None)


def valid_string(shape: Shape, known: list[str], label: bool = False) -> st.SearchStrategy[str]:
    meta = shape.metadata
    if meta.get("enum"):
        return st.sampled_from(list(meta["enum"]))
    low = max(meta.get("min", 0), 1 if label else 0)
    high = max(low, min(meta.get("max", 64), 256))
    options: list[st.SearchStrategy[str]] = []
    fitting = [k for k in known if _fits_string(shape, k)]
    if fitting:
        options.append(st.sampled_from(fitting))
    regex = _pattern(shape)
    if regex is not None:
        options.append(st.from_regex(regex).filter(lambda s: low <= len(s) <= meta.get("max", 10**9)))
    else:
        nasty = [n for n in NASTY if low <= len(n) <= meta.get("max", 10**9)]
        options.append(st.text(min_size=low, max_size=high))
        if nasty:
            options.append(st.sampled_from(nasty))
    return st.one_of(*options)


def breaking_string(shape: Shape, label: bool = False) -> st.SearchStrategy[str] | None:
    """Strings that the model's constraints refuse (None when the shape has none that can be broken)."""
    candidates = [b for b in BREAKERS if not _fits_string(shape, b) and not (label and not b)]
    meta = shape.metadata
    if meta.get("enum"):
        candidates.append("NOT_" + meta["enum"][0])
    if "max" in meta and meta["max"] < 2000:
        candidates.append("a" * (meta["max"] + 1))
    candidates = [c for c in candidates if not _fits_string(shape, c)]
    return st.sampled_from(sorted(set(candidates))) if candidates else None


def _bounds(shape: Shape) -> tuple[int, int]:
    low, high = INTEGER_RANGES[shape.type_name]
    return int(shape.metadata.get("min", low)), int(shape.metadata.get("max", high))


def breaking_integer(shape: Shape) -> st.SearchStrategy[int] | None:
    low, high = _bounds(shape)
    wide_low, wide_high = INTEGER_RANGES[shape.type_name]
    outside = [v for v in (low - 1, high + 1, wide_low - 1, wide_high + 1) if not low <= v <= high]
    return st.sampled_from(outside) if outside else None


class InputStrategies:
    """Strategies over the input shapes of one service model. `known` maps a member name (e.g.
    `BackupVaultName`, `ResourceArn`) to values that exist; a list's items use the list member's name."""

    def __init__(self, known: Mapping[str, list[Any]], break_one_in: int = 4) -> None:
        self.known = known
        self.break_one_in = break_one_in

    def operation_input(self, operation_model: Any) -> st.SearchStrategy[Drawn]:
        shape = operation_model.input_shape
        if shape is None:
            return st.just(Drawn({}))

        @st.composite
        def draw_input(draw: st.DrawFn) -> Drawn:
            breaks = Breaks(allowed=draw(st.integers(0, self.break_one_in - 1)) == 0, lean=draw(st.booleans()))
            params = self._structure(draw, shape, "", 0, breaks, top=True)
            return Drawn(params, breaks.paths)

        return draw_input()

    @staticmethod
    def _may_break(draw: st.DrawFn, breaks: Breaks) -> bool:
        """Whether to break here: once per input at most, at a spot chosen by chance among those it passes."""
        return breaks.allowed and not breaks.paths and draw(st.integers(0, 2)) == 0

    def _structure(self, draw: st.DrawFn, shape: Shape, path: str, depth: int, breaks: Breaks,
                   top: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {}
        required = set(shape.required_members)
        names = list(shape.members)
        if shape.is_tagged_union:
            names = [draw(st.sampled_from(names))]
            required = set(names)
        for name in names:
            member = shape.members[name]
            member_path = f"{path}.{name}" if path else name
            if name in required:
                location = member.serialization.get("location")
                # A uri label cannot be left out (botocore could not build the URL); the rest can.
                if location != "uri" and self._may_break(draw, breaks):
                    breaks.paths.append(member_path)
                    continue
            elif depth >= MAX_DEPTH or (breaks.lean and depth > 0) or draw(st.integers(0, 1 if depth < 2 else 2)):
                continue  # optional members: about half of them at the top, a third deeper down
            label = member.serialization.get("location") == "uri"
            out[name] = self._value(draw, member, name, member_path, depth + 1, breaks, label=label)
        return out

    def _value(self, draw: st.DrawFn, shape: Shape, name: str, path: str, depth: int, breaks: Breaks,
               label: bool = False) -> Any:
        """A value for `shape`. A uri `label` is never empty: `/backup-vaults/` with an empty name is another
        operation's path (ListBackupVaults), on the wire as in AWS."""
        kind = shape.type_name
        known = list(self.known.get(name, []))
        if kind == "structure":
            if shape.is_document_type:
                return draw(st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=8),
                                         lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c,
                                                                                             max_size=3),
                                         max_leaves=8))
            fitting = [k for k in known if isinstance(k, dict)]
            if fitting and draw(st.booleans()):
                return draw(st.sampled_from(fitting))
            return self._structure(draw, shape, path, depth, breaks)
        if kind == "list":
            meta = shape.metadata
            low = meta.get("min", 0)
            high = max(low, min(meta.get("max", MAX_ITEMS), MAX_ITEMS))
            if low > 0 and self._may_break(draw, breaks):
                breaks.paths.append(path)
                return []
            size = draw(st.integers(low, high))
            return [self._value(draw, shape.member, name, f"{path}[{i}]", depth, breaks) for i in range(size)]
        if kind == "map":
            meta = shape.metadata
            low = meta.get("min", 0)
            high = max(low, min(meta.get("max", MAX_ITEMS), MAX_ITEMS))
            fitting = [k for k in known if isinstance(k, dict)]
            if fitting and draw(st.booleans()):
                return draw(st.sampled_from(fitting))
            keys = draw(st.lists(valid_string(shape.key, []), min_size=low, max_size=high, unique=True))
            return {k: self._value(draw, shape.value, name, f"{path}[{k!r}]", depth, breaks) for k in keys}
        if kind == "string":
            breaking = breaking_string(shape, label)
            if breaking is not None and self._may_break(draw, breaks):
                breaks.paths.append(path)
                return draw(breaking)
            return draw(valid_string(shape, [k for k in known if isinstance(k, str)], label))
        if kind in INTEGER_RANGES:
            breaking_int = breaking_integer(shape)
            if breaking_int is not None and self._may_break(draw, breaks):
                breaks.paths.append(path)
                return draw(breaking_int)
            low, high = _bounds(shape)
            return draw(st.integers(low, high) | st.sampled_from([low, high]))
        if kind == "boolean":
            return draw(st.booleans())
        if kind in ("double", "float"):
            return draw(st.floats(allow_nan=True, allow_infinity=True))
        if kind == "timestamp":
            return draw(st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30),
                                     timezones=st.just(UTC)))
        if kind == "blob":
            return draw(st.binary(max_size=64))
        raise TypeError(f"{path}: no strategy for shape type {kind}")
