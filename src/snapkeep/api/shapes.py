"""Botocore shapes to Python values and back: the type rules of AWS's rest-json wire format.

Inputs are validated as AWS validates them and every failure is a `SnapkeepError`; outputs are converted without
validation, and a value that does not fit its shape is a programming error (`TypeError`/`ValueError`).

Wire facts relied on (checked in botocore 1.44.5):
- Body timestamps are epoch seconds unless the shape's `timestampFormat` says otherwise
  (`JSONSerializer.TIMESTAMP_FORMAT = 'unixtimestamp'`, botocore/serialize.py); uri and querystring ones are
  ISO-8601 (`BaseRestSerializer.QUERY_STRING_TIMESTAMP_FORMAT`, used by `_get_uri_and_query_string_value`), header
  ones RFC 822 / HTTP-date (`HEADER_TIMESTAMP_FORMAT`). botocore's response parser accepts all three
  (`botocore.utils.parse_timestamp`).
- Blobs are base64 text in JSON (`JSONSerializer._serialize_type_blob`); floats that are not finite travel as the
  strings "NaN", "Infinity", "-Infinity" (`Serializer._handle_float`).
- A member's JSON key is its `locationName` when it has one (`BaseJSONParser._handle_structure`,
  botocore/parsers.py); booleans in uri/querystring/headers are "true"/"false".
- `jsonvalue` headers are base64 of compact JSON (`BaseRestSerializer._convert_header_value`,
  `BaseRestParser._handle_string`); header lists are comma-joined, items with ',' or '"' double-quoted
  (`_escape_header_list_string`).
- Constraints come from Smithy: `min`/`max` are lengths for strings (in code points), lists and maps and values
  for numbers; `pattern` is an ECMAScript regex that is *not* implicitly anchored (so `re.search`); enums
  are closed on the server side.
- Unknown members of a JSON object are ignored, as AWS's services ignore them (clients newer than the model may send
  them), and `null` counts as absent.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime
from functools import lru_cache
from typing import Any

from snapkeep.domain.errors import InvalidParameterValue, MissingParameterValue

Shape = Any  # botocore.model.Shape; botocore ships no type hints

INTEGER_RANGES: dict[str, tuple[int, int]] = {
    "byte": (-(2**7), 2**7 - 1),
    "short": (-(2**15), 2**15 - 1),
    "integer": (-(2**31), 2**31 - 1),
    "long": (-(2**63), 2**63 - 1),
}
FLOAT_TYPES = frozenset({"double", "float"})
_INT_TEXT = re.compile(r"[+-]?[0-9]+")
_FLOAT_TEXT = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_NON_FINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


# ---------------------------------------------------------------------------------------------------------- input


def invalid(path: str, problem: str) -> InvalidParameterValue:
    return InvalidParameterValue(f"{path}: {problem}", field=path)


def missing(path: str) -> MissingParameterValue:
    return MissingParameterValue(f"{path}: is required", field=path)


def json_type_name(value: object) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean", int: "integer", float: "number",
            type(None): "null"}.get(type(value), type(value).__name__)


def member_path(parent: str, name: str) -> str:
    return f"{parent}.{name}" if parent else name


def from_json(shape: Shape, value: Any, path: str) -> Any:
    """`value` (decoded JSON) checked against `shape`, as the Python value botocore's callers would pass.

    Structures come back keyed by member name (not JSON name), timestamps as aware UTC datetimes, blobs as bytes.
    """
    kind = shape.type_name
    if kind == "structure":
        if shape.is_document_type:
            return value
        return _structure_from_json(shape, value, path)
    if kind == "list":
        if not isinstance(value, list):
            raise invalid(path, f"must be an array, got {json_type_name(value)}")
        check_size(shape, len(value), path, "items")
        out = []
        for i, item in enumerate(value):
            item_path = f"{path}[{i}]"
            if item is None:
                raise invalid(item_path, "must not be null")
            out.append(from_json(shape.member, item, item_path))
        return out
    if kind == "map":
        if not isinstance(value, dict):
            raise invalid(path, f"must be an object, got {json_type_name(value)}")
        check_size(shape, len(value), path, "entries")
        result: dict[str, Any] = {}
        for key, item in value.items():
            item_path = f"{path}[{json.dumps(key, ensure_ascii=False)}]"
            check_constraints(shape.key, key, path, subject="each key ")
            if item is None:
                raise invalid(item_path, "must not be null")
            result[key] = from_json(shape.value, item, item_path)
        return result
    if kind == "string":
        if not isinstance(value, str):
            raise invalid(path, f"must be a string, got {json_type_name(value)}")
        check_constraints(shape, value, path)
        return value
    if kind == "boolean":
        if not isinstance(value, bool):
            raise invalid(path, f"must be a boolean, got {json_type_name(value)}")
        return value
    if kind in INTEGER_RANGES:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise invalid(path, f"must be an integer, got {json_type_name(value)}")
        if isinstance(value, float):
            if not value.is_integer():
                raise invalid(path, "must be a whole number")
            value = int(value)
        check_constraints(shape, value, path)
        return value
    if kind in FLOAT_TYPES:
        if isinstance(value, str) and value in _NON_FINITE:
            number = _NON_FINITE[value]
        elif isinstance(value, int | float) and not isinstance(value, bool):
            number = float(value)
        else:
            raise invalid(path, f"must be a number, got {json_type_name(value)}")
        check_constraints(shape, number, path)
        return number
    if kind == "timestamp":
        return _timestamp_from_json(shape, value, path)
    if kind == "blob":
        if not isinstance(value, str):
            raise invalid(path, f"must be a base64 string, got {json_type_name(value)}")
        try:
            data = base64.b64decode(value.encode("ascii"), validate=True)
        except (UnicodeEncodeError, binascii.Error):
            raise invalid(path, "must be valid base64") from None
        check_constraints(shape, data, path)
        return data
    raise invalid(path, f"has an unsupported type {kind}")


def _structure_from_json(shape: Shape, value: Any, path: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise invalid(path or "body", f"must be an object, got {json_type_name(value)}")
    result: dict[str, Any] = {}
    for name, member in shape.members.items():
        raw = value.get(member.serialization.get("name", name))
        if raw is not None:
            result[name] = from_json(member, raw, member_path(path, name))
    check_required(shape, result, path)
    if shape.is_tagged_union and len(result) != 1:
        raise invalid(path, f"must set exactly one of {', '.join(shape.members)}")
    return result


def check_required(shape: Shape, present: Mapping[str, Any], path: str) -> None:
    for name in shape.required_members:
        if present.get(name) is None:
            raise missing(member_path(path, name))


def _timestamp_from_json(shape: Shape, value: Any, path: str) -> datetime:
    fmt = shape.serialization.get("timestampFormat", "unixTimestamp").lower()
    if fmt == "unixtimestamp":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise invalid(path, f"must be a timestamp in epoch seconds, got {json_type_name(value)}")
        return epoch_to_datetime(value, path)
    if not isinstance(value, str):
        raise invalid(path, f"must be a timestamp string, got {json_type_name(value)}")
    return parse_timestamp_text(value, fmt, path)


def from_text(shape: Shape, text: str, path: str, default_timestamp_format: str) -> Any:
    """A scalar from a URI label, a querystring value or a header, converted to `shape`'s type and checked."""
    kind = shape.type_name
    value: Any
    if kind == "string":
        value = text
    elif kind == "boolean":
        lowered = text.lower()
        if lowered not in ("true", "false"):
            raise invalid(path, "must be true or false")
        return lowered == "true"
    elif kind in INTEGER_RANGES:
        if not _INT_TEXT.fullmatch(text):
            raise invalid(path, "must be an integer")
        try:
            value = int(text)
        except ValueError:  # more digits than Python converts: certainly out of range
            raise invalid(path, "is out of range") from None
    elif kind in FLOAT_TYPES:
        if text in _NON_FINITE:
            value = _NON_FINITE[text]
        elif _FLOAT_TEXT.fullmatch(text):
            value = float(text)
        else:
            raise invalid(path, "must be a number")
    elif kind == "timestamp":
        fmt = shape.serialization.get("timestampFormat", default_timestamp_format).lower()
        return parse_timestamp_text(text, fmt, path)
    elif kind == "blob":
        try:
            value = base64.b64decode(text.encode("ascii"), validate=True)
        except (UnicodeEncodeError, binascii.Error):
            raise invalid(path, "must be valid base64") from None
    else:
        raise invalid(path, f"cannot be given as text (type {kind})")
    check_constraints(shape, value, path)
    return value


def parse_timestamp_text(text: str, fmt: str, path: str) -> datetime:
    """A timestamp written as `fmt` (iso8601, rfc822 or unixtimestamp), as an aware UTC datetime."""
    fmt = fmt.lower()
    try:
        if fmt == "unixtimestamp":
            if not _FLOAT_TEXT.fullmatch(text):
                raise ValueError(text)
            return epoch_to_datetime(float(text), path)
        if fmt == "rfc822":
            parsed = parsedate_to_datetime(text)
        else:
            if not text.isascii():
                raise ValueError(text)
            parsed = datetime.fromisoformat(text)
    except (ValueError, TypeError, OverflowError, IndexError):
        expected = {"unixtimestamp": "epoch seconds", "rfc822": "an HTTP date"}.get(fmt, "an ISO-8601 timestamp")
        raise invalid(path, f"must be {expected}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        raise invalid(path, "is out of range") from None


def epoch_to_datetime(seconds: float, path: str) -> datetime:
    try:
        if not math.isfinite(seconds):
            raise ValueError(seconds)
        return datetime.fromtimestamp(seconds, tz=UTC)
    except (ValueError, OverflowError, OSError):
        raise invalid(path, "is not a valid timestamp") from None


@lru_cache(maxsize=512)
def compiled_pattern(pattern: str) -> re.Pattern[str] | None:
    """The Python form of a model (ECMAScript) pattern; None if Python cannot read it (then it is not enforced)."""
    try:
        return re.compile(pattern)
    except re.error:
        return None


def check_constraints(shape: Shape, value: Any, path: str, subject: str = "") -> None:
    """min/max (length or value), enum and pattern of a scalar shape. Messages name `path` and never echo the
    value (some are sensitive); `subject` says what part of it is meant ("each key " of a map)."""
    meta = shape.metadata
    kind = shape.type_name
    if kind in ("string", "blob"):
        check_size(shape, len(value), path, "characters" if kind == "string" else "bytes", subject)
        if kind == "string":
            enum = meta.get("enum")
            if enum and value not in enum:
                raise invalid(path, f"{subject}must be one of {', '.join(enum)}")
            pattern = meta.get("pattern")
            if pattern:
                regex = compiled_pattern(pattern)
                if regex is not None and regex.search(value) is None:
                    raise invalid(path, f"{subject}must match the pattern {pattern}")
        return
    if kind in INTEGER_RANGES:
        low, high = INTEGER_RANGES[kind]
        if not low <= value <= high:
            raise invalid(path, f"{subject}is out of range for a {kind}")
    if kind in INTEGER_RANGES or kind in FLOAT_TYPES:
        if math.isnan(value):
            if "min" in meta or "max" in meta:
                raise invalid(path, f"{subject}must be a number in range")
            return
        if "min" in meta and value < meta["min"]:
            raise invalid(path, f"{subject}must be at least {meta['min']}")
        if "max" in meta and value > meta["max"]:
            raise invalid(path, f"{subject}must be at most {meta['max']}")


def check_size(shape: Shape, size: int, path: str, unit: str, subject: str = "") -> None:
    meta = shape.metadata
    if "min" in meta and size < meta["min"]:
        raise invalid(path, f"{subject}must have at least {meta['min']} {unit}")
    if "max" in meta and size > meta["max"]:
        raise invalid(path, f"{subject}must have at most {meta['max']} {unit}")


def split_header_list(shape: Shape, text: str) -> list[str]:
    """Items of a comma-separated header list; double-quoted items may hold ',' and '\\"'."""
    items: list[str] = []
    i, n = 0, len(text)
    while i <= n:
        while i < n and text[i] in " \t":
            i += 1
        if i < n and text[i] == '"':
            i += 1
            buf: list[str] = []
            while i < n and text[i] != '"':
                if text[i] == "\\" and i + 1 < n:
                    i += 1
                buf.append(text[i])
                i += 1
            i += 1  # closing quote
            items.append("".join(buf))
            end = text.find(",", i)
            i = n + 1 if end < 0 else end + 1
        else:
            end = text.find(",", i)
            if end < 0:
                items.append(text[i:].strip())
                break
            items.append(text[i:end].strip())
            i = end + 1
    member = shape.member
    if member.type_name == "timestamp" and member.serialization.get("timestampFormat", "rfc822").lower() == "rfc822":
        # An HTTP date holds a comma ("Mon, 01 Jan 2024 ..."): the items come in pairs.
        items = [f"{items[j]}, {items[j + 1]}" if j + 1 < len(items) else items[j] for j in range(0, len(items), 2)]
    return items


# --------------------------------------------------------------------------------------------------------- output


def to_json(shape: Shape, value: Any, path: str) -> Any:
    """`value` as JSON data for `shape`; None members of structures are dropped."""
    kind = shape.type_name
    if kind == "structure":
        if shape.is_document_type:
            return value
        if not isinstance(value, Mapping):
            raise TypeError(f"{path}: expected a mapping for {shape.name}, got {type(value).__name__}")
        members = shape.members
        out: dict[str, Any] = {}
        for name, item in value.items():
            if item is None:
                continue
            member = members.get(name)
            if member is None:
                raise ValueError(f"{path}: {shape.name} has no member {name!r}")
            out[member.serialization.get("name", name)] = to_json(member, item, member_path(path, name))
        return out
    if kind == "list":
        if isinstance(value, str | bytes | Mapping):
            raise TypeError(f"{path}: expected a list, got {type(value).__name__}")
        return [to_json(shape.member, item, f"{path}[{i}]") for i, item in enumerate(value)]
    if kind == "map":
        if not isinstance(value, Mapping):
            raise TypeError(f"{path}: expected a mapping, got {type(value).__name__}")
        return {str(k): to_json(shape.value, v, f"{path}[{k!r}]") for k, v in value.items() if v is not None}
    if kind == "timestamp":
        return format_timestamp(value, shape.serialization.get("timestampFormat", "unixTimestamp"), path)
    if kind == "blob":
        if isinstance(value, str):
            value = value.encode("utf-8")
        if not isinstance(value, bytes | bytearray):
            raise TypeError(f"{path}: expected bytes, got {type(value).__name__}")
        return base64.b64encode(value).decode("ascii")
    if kind in FLOAT_TYPES:
        number = _expect_number(value, path)
        if math.isnan(number):
            return "NaN"
        if math.isinf(number):
            return "Infinity" if number > 0 else "-Infinity"
        return number
    if kind in INTEGER_RANGES:
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{path}: expected an int, got {type(value).__name__}")
        return value
    if kind == "boolean":
        if not isinstance(value, bool):
            raise TypeError(f"{path}: expected a bool, got {type(value).__name__}")
        return value
    if kind == "string":
        if not isinstance(value, str):
            raise TypeError(f"{path}: expected a str, got {type(value).__name__}")
        return value
    raise TypeError(f"{path}: unsupported shape type {kind}")


def _expect_number(value: Any, path: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{path}: expected a number, got {type(value).__name__}")
    return float(value)


def to_text(shape: Shape, value: Any, path: str, default_timestamp_format: str = "rfc822") -> str:
    """A scalar (or list of scalars, for headers) as header text."""
    kind = shape.type_name
    if shape.serialization.get("jsonvalue"):
        return base64.b64encode(json.dumps(value, separators=(",", ":")).encode("utf-8")).decode("ascii")
    if kind == "list":
        items = [to_text(shape.member, item, f"{path}[{i}]", default_timestamp_format) for i, item in enumerate(value)]
        if shape.member.type_name == "string":
            items = ['"' + i.replace('"', '\\"') + '"' if ('"' in i or "," in i) else i for i in items]
        return ",".join(items)
    if kind == "timestamp":
        fmt = shape.serialization.get("timestampFormat", default_timestamp_format)
        return str(format_timestamp(value, fmt, path))
    if kind == "boolean":
        if not isinstance(value, bool):
            raise TypeError(f"{path}: expected a bool, got {type(value).__name__}")
        return "true" if value else "false"
    if kind in FLOAT_TYPES:
        number = _expect_number(value, path)
        return {math.inf: "Infinity", -math.inf: "-Infinity"}.get(number, "NaN" if math.isnan(number) else repr(number))
    if kind == "blob":
        return str(to_json(shape, value, path))
    if kind in INTEGER_RANGES:
        return str(to_json(shape, value, path))
    if not isinstance(value, str):
        raise TypeError(f"{path}: expected a str, got {type(value).__name__}")
    return value


def format_timestamp(value: Any, fmt: str, path: str) -> float | str:
    """An aware datetime as epoch seconds (float), ISO-8601 or an HTTP date."""
    if not isinstance(value, datetime):
        raise TypeError(f"{path}: expected a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{path}: datetimes must be timezone-aware")
    fmt = fmt.lower()
    if fmt == "iso8601":
        utc = value.astimezone(UTC)
        text = utc.strftime("%Y-%m-%dT%H:%M:%S")
        return text + (f".{utc.microsecond:06d}Z" if utc.microsecond else "Z")
    if fmt == "rfc822":
        return format_datetime(value.astimezone(UTC).replace(microsecond=0), usegmt=True)
    delta = value - _EPOCH
    micros = (delta.days * 86_400 + delta.seconds) * 10**6 + delta.microseconds
    return micros / 10**6
