"""Backup vault access policies: parse and validate the IAM-style document, and find the Deny that applies (pure).

AWS Backup facts (developer guide "Vault access policies"; IAM JSON policy reference):

* A vault access policy is a resource-based policy: ``{"Version", "Id"?, "Statement": [...] | {...}}``; each
  statement has ``Effect`` (Allow | Deny), ``Principal`` or ``NotPrincipal``, ``Action`` or ``NotAction``,
  ``Resource`` or ``NotResource``, an optional ``Sid`` and ``Condition``.
* Action names are case-insensitive (``backup:deleterecoverypoint`` is ``backup:DeleteRecoveryPoint``); resource
  ARNs are case-sensitive. ``*`` matches any run of characters, ``?`` exactly one. AWS Backup documents that its
  vault policies take no wildcard in Action; Snapkeep accepts them (``backup:Delete*``), a superset.
* Principals: ``"*"`` (anyone), ``{"AWS": "*"}``, an account (``"123456789012"`` or
  ``arn:aws:iam::123456789012:root``: every principal of that account), or a user/role ARN (exact; IAM allows no
  partial wildcard in a principal). Other principal kinds (Service, Federated, CanonicalUser) are valid but never
  name a Snapkeep API key.
* AWS's example policies name recovery point actions with either the recovery point ARN
  (``arn:aws:ec2:Region::image/*``) or the vault ARN as Resource; a request on a recovery point therefore acts on
  both, and a statement matching either applies.

Snapkeep enforces Deny statements only: Allow grants nothing beyond the caller's role (the first gate). A
Condition Snapkeep cannot evaluate is refused when the policy is put, never silently ignored. Evaluated: the
operators StringEquals, StringNotEquals, StringEqualsIgnoreCase, StringNotEqualsIgnoreCase, StringLike,
StringNotLike, ArnEquals, ArnNotEquals, ArnLike, ArnNotLike on the keys aws:PrincipalArn, aws:username and
aws:PrincipalAccount. As in IAM, values listed under one key are OR'ed (a negated operator matches when none
does), keys and operators are AND'ed, condition key names are case-insensitive.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from snapkeep.domain.errors import InvalidParameterValue, MissingParameterValue

FIELD = "Policy"
VERSIONS = ("2012-10-17", "2008-10-17")
PRINCIPAL_KINDS = ("AWS", "Service", "Federated", "CanonicalUser")
_ACCOUNT = re.compile(r"\d{12}")
_ACCOUNT_ROOT = re.compile(r"arn:aws[a-z-]*:iam::(\d{12}):root")
_ACTION = re.compile(r"[A-Za-z0-9-]+:[A-Za-z0-9*?]+")
_STATEMENT_KEYS = frozenset({"Sid", "Effect", "Principal", "NotPrincipal", "Action", "NotAction", "Resource",
                             "NotResource", "Condition"})
_POLICY_KEYS = frozenset({"Version", "Id", "Statement"})

# operator -> (how values compare, negated)
_OPERATORS: Mapping[str, tuple[str, bool]] = {
    "StringEquals": ("exact", False),
    "StringNotEquals": ("exact", True),
    "StringEqualsIgnoreCase": ("caseless", False),
    "StringNotEqualsIgnoreCase": ("caseless", True),
    "StringLike": ("like", False),
    "StringNotLike": ("like", True),
    "ArnEquals": ("exact", False),
    "ArnNotEquals": ("exact", True),
    "ArnLike": ("like", False),
    "ArnNotLike": ("like", True),
}
CONDITION_KEYS = ("aws:PrincipalArn", "aws:username", "aws:PrincipalAccount")


@dataclass(frozen=True)
class Condition:
    operator: str
    key: str  # lower case
    values: tuple[str, ...]


@dataclass(frozen=True)
class Principals:
    """Who a statement names: everyone, or accounts and ARNs (kinds other than AWS never match a Snapkeep key)."""

    everyone: bool = False
    accounts: frozenset[str] = frozenset()
    arns: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Statement:
    index: int
    sid: str | None
    effect: str
    principals: Principals | None
    not_principals: Principals | None
    actions: tuple[str, ...] | None
    not_actions: tuple[str, ...] | None
    resources: tuple[str, ...] | None
    not_resources: tuple[str, ...] | None
    conditions: tuple[Condition, ...]

    @property
    def name(self) -> str:
        """How messages name the statement: its Sid, else its position."""
        return f"statement '{self.sid}'" if self.sid else f"Statement[{self.index}] (no Sid)"


@dataclass(frozen=True)
class VaultPolicy:
    version: str | None
    statements: tuple[Statement, ...]


@dataclass(frozen=True)
class RequestContext:
    """One API request as the policy sees it; `resources` are every ARN the request acts on."""

    principal_arn: str
    account_id: str
    user_name: str
    action: str  # e.g. backup:DeleteRecoveryPoint
    resources: tuple[str, ...]


def _bad(path: str, what: str) -> InvalidParameterValue:
    return InvalidParameterValue(f"{FIELD}: {path} {what}", field=FIELD)


def _strings(value: Any, path: str, *, allow_empty: bool = False) -> tuple[str, ...]:
    """A string or a list of strings, as IAM takes for Action, Resource and principal values."""
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(v, str) for v in items):
        raise _bad(path, "must be a string or a list of strings")
    if not items and not allow_empty:
        raise _bad(path, "must not be empty")
    if any(v == "" for v in items):
        raise _bad(path, "must not contain an empty string")
    return tuple(items)


def _actions(value: Any, path: str) -> tuple[str, ...]:
    actions = _strings(value, path)
    for action in actions:
        if action != "*" and not _ACTION.fullmatch(action):
            raise _bad(path, f"'{action}' is not an action: use service:Operation (like backup:DeleteRecoveryPoint, "
                             "backup:Delete*) or *")
    return actions


def _resources(value: Any, path: str) -> tuple[str, ...]:
    resources = _strings(value, path)
    for resource in resources:
        if resource != "*" and not resource.startswith("arn:"):
            raise _bad(path, f"'{resource}' is not an ARN (arn:...) or *")
    return resources


def _principals(value: Any, path: str) -> Principals:
    if value == "*":
        return Principals(everyone=True)
    if not isinstance(value, dict) or not value:
        raise _bad(path, 'must be "*" or an object like {"AWS": "arn:aws:iam::123456789012:user/name"}')
    accounts: set[str] = set()
    arns: set[str] = set()
    everyone = False
    for kind, raw in value.items():
        if kind not in PRINCIPAL_KINDS:
            raise _bad(f"{path}.{kind}", f"is not a principal kind ({', '.join(PRINCIPAL_KINDS)})")
        for item in _strings(raw, f"{path}.{kind}"):
            if kind != "AWS":
                continue  # a service or federated principal is never a Snapkeep API key
            root = _ACCOUNT_ROOT.fullmatch(item)
            if item == "*":
                everyone = True
            elif _ACCOUNT.fullmatch(item):
                accounts.add(item)
            elif root:
                accounts.add(root.group(1))
            elif "*" in item or "?" in item:
                raise _bad(f"{path}.AWS", f"'{item}': a principal ARN cannot contain wildcards (use \"*\" alone)")
            elif item.startswith("arn:") and (":iam::" in item or ":sts::" in item):
                arns.add(item)
            else:
                raise _bad(f"{path}.AWS", f"'{item}' is not an account id, an IAM ARN or *")
    return Principals(everyone, frozenset(accounts), frozenset(arns))


def _conditions(value: Any, path: str) -> tuple[Condition, ...]:
    if not isinstance(value, dict):
        raise _bad(path, "must be an object of operator -> {key: values}")
    found: list[Condition] = []
    for operator, block in value.items():
        if operator not in _OPERATORS:
            raise _bad(f"{path}.{operator}", "is a condition operator Snapkeep cannot evaluate; supported: "
                       f"{', '.join(_OPERATORS)} (refused rather than ignored)")
        if not isinstance(block, dict) or not block:
            raise _bad(f"{path}.{operator}", "must be a non-empty object of condition key -> values")
        for key, raw in block.items():
            if key.lower() not in {k.lower() for k in CONDITION_KEYS}:
                raise _bad(f"{path}.{operator}.{key}", "is a condition key Snapkeep cannot evaluate; supported: "
                           f"{', '.join(CONDITION_KEYS)} (refused rather than ignored)")
            found.append(Condition(operator, key.lower(), _strings(raw, f"{path}.{operator}.{key}")))
    return tuple(found)


def _pair(raw: Mapping[str, Any], path: str, name: str, required: bool = True) -> tuple[str | None, Any]:
    """Exactly one of `name` and `Not<name>`: (which one, its value)."""
    positive, negative = name, f"Not{name}"
    if positive in raw and negative in raw:
        raise _bad(path, f"cannot have both {positive} and {negative}")
    if positive in raw:
        return positive, raw[positive]
    if negative in raw:
        return negative, raw[negative]
    if required:
        raise _bad(path, f"needs {positive} (or {negative})")
    return None, None


def _statement(raw: Any, index: int) -> Statement:
    path = f"Statement[{index}]"
    if not isinstance(raw, dict):
        raise _bad(path, "must be an object")
    unknown = sorted(set(raw) - _STATEMENT_KEYS)
    if unknown:
        raise _bad(path, f"has unknown element(s) {', '.join(unknown)}; allowed: {', '.join(sorted(_STATEMENT_KEYS))}")
    sid = raw.get("Sid")
    if sid is not None and (not isinstance(sid, str) or not re.fullmatch(r"[A-Za-z0-9 _-]*", sid)):
        raise _bad(f"{path}.Sid", "must be a string of letters, digits, spaces, hyphens or underscores")
    effect = raw.get("Effect")
    if effect is None:
        raise _bad(path, "needs Effect (Allow or Deny)")
    if effect not in ("Allow", "Deny"):
        raise _bad(f"{path}.Effect", f"must be Allow or Deny; got {effect!r}")
    which, value = _pair(raw, path, "Principal")
    principals = _principals(value, f"{path}.{which}")
    action_key, action_value = _pair(raw, path, "Action")
    actions = _actions(action_value, f"{path}.{action_key}")
    resource_key, resource_value = _pair(raw, path, "Resource")
    resources = _resources(resource_value, f"{path}.{resource_key}")
    conditions = _conditions(raw["Condition"], f"{path}.Condition") if "Condition" in raw else ()
    return Statement(
        index=index,
        sid=sid or None,
        effect=effect,
        principals=principals if which == "Principal" else None,
        not_principals=principals if which == "NotPrincipal" else None,
        actions=actions if action_key == "Action" else None,
        not_actions=actions if action_key == "NotAction" else None,
        resources=resources if resource_key == "Resource" else None,
        not_resources=resources if resource_key == "NotResource" else None,
        conditions=conditions,
    )


def parse_policy(text: object) -> VaultPolicy:
    """The policy in `text` (a JSON document), or InvalidParameterValue naming what is wrong with it."""
    if text is None or text == "":
        raise MissingParameterValue(f"{FIELD}: is required (a JSON policy document)", field=FIELD)
    if not isinstance(text, str):
        raise _bad("", "must be a JSON document in a string")
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise InvalidParameterValue(f"{FIELD}: not valid JSON: {exc}", field=FIELD) from exc
    if not isinstance(document, dict):
        raise InvalidParameterValue(f"{FIELD}: must be a JSON object with Version and Statement", field=FIELD)
    unknown = sorted(set(document) - _POLICY_KEYS)
    if unknown:
        raise InvalidParameterValue(
            f"{FIELD}: unknown top-level element(s) {', '.join(unknown)}; allowed: Version, Id, Statement",
            field=FIELD)
    version = document.get("Version")
    if version is not None and version not in VERSIONS:
        raise InvalidParameterValue(f"{FIELD}: Version must be {' or '.join(VERSIONS)}; got {version!r}", field=FIELD)
    if "Statement" not in document:
        raise InvalidParameterValue(f"{FIELD}: needs a Statement (an object or a list of them)", field=FIELD)
    raw = document["Statement"]
    statements = raw if isinstance(raw, list) else [raw]
    if not statements:
        raise InvalidParameterValue(f"{FIELD}: Statement must not be empty", field=FIELD)
    return VaultPolicy(version, tuple(_statement(s, i) for i, s in enumerate(statements)))


@lru_cache(maxsize=4096)
def _pattern(glob: str, caseless: bool) -> re.Pattern[str]:
    body = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in glob)
    return re.compile(body, (re.IGNORECASE | re.DOTALL) if caseless else re.DOTALL)


def glob_match(glob: str, value: str, *, caseless: bool = False) -> bool:
    """IAM's wildcard match: `*` any run of characters (':' and '/' included), `?` exactly one."""
    return _pattern(glob, caseless).fullmatch(value) is not None


def _names_principal(p: Principals, ctx: RequestContext) -> bool:
    return p.everyone or ctx.account_id in p.accounts or ctx.principal_arn in p.arns


def _any_action(patterns: Sequence[str], action: str) -> bool:
    return any(glob_match(p, action, caseless=True) for p in patterns)


def _any_resource(patterns: Sequence[str], resources: Sequence[str]) -> bool:
    return any(glob_match(p, r) for p in patterns for r in resources)


def _context_value(key: str, ctx: RequestContext) -> str:
    return {"aws:principalarn": ctx.principal_arn, "aws:username": ctx.user_name,
            "aws:principalaccount": ctx.account_id}[key]


def _condition_holds(condition: Condition, ctx: RequestContext) -> bool:
    how, negated = _OPERATORS[condition.operator]
    actual = _context_value(condition.key, ctx)
    if how == "exact":
        hit = actual in condition.values
    elif how == "caseless":
        hit = actual.lower() in {v.lower() for v in condition.values}
    else:
        hit = any(glob_match(v, actual) for v in condition.values)
    return hit != negated


def statement_applies(statement: Statement, ctx: RequestContext) -> bool:
    """Whether the statement names this principal, action and resource, and its conditions hold."""
    if statement.principals is not None and not _names_principal(statement.principals, ctx):
        return False
    if statement.not_principals is not None and _names_principal(statement.not_principals, ctx):
        return False
    if statement.actions is not None and not _any_action(statement.actions, ctx.action):
        return False
    if statement.not_actions is not None and _any_action(statement.not_actions, ctx.action):
        return False
    if statement.resources is not None and not _any_resource(statement.resources, ctx.resources):
        return False
    # A request on a recovery point acts on it and on its vault: Resource applies when either matches, NotResource
    # only when neither does (NotResource is the negation of Resource).
    if statement.not_resources is not None and _any_resource(statement.not_resources, ctx.resources):
        return False
    return all(_condition_holds(c, ctx) for c in statement.conditions)


def explicit_deny(policy: VaultPolicy, ctx: RequestContext) -> Statement | None:
    """The first Deny statement that applies to the request, or None (Allow statements grant nothing here)."""
    for statement in policy.statements:
        if statement.effect == "Deny" and statement_applies(statement, ctx):
            return statement
    return None
