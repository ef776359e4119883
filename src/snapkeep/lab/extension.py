"""`install()`: patch moto so EBS volumes carry data (see the module docs of ec2_volumes, ec2_images, ebs_api).

The lab patches moto's internals, so it is written for one moto version. Before patching anything, install()
checks that version and that every method it patches (or relies on) still exists with the signature it was
written against, and raises RuntimeError naming each difference. Installing is idempotent and all-or-nothing.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

MOTO_VERSION = "5.2.5"

_EBS_MODELS = "moto.ec2.models.elastic_block_store"
_EC2_BACKEND = "moto.ec2.models.EC2Backend"
_EC2_RESPONSE = "moto.ec2.responses.EC2Response"
PROPERTY = "<property>"
INSTANCE_ATTRIBUTE = "<instance attribute>"


@dataclass(frozen=True)
class Target:
    """Something of moto's the lab patches or leans on, and the shape it was written against."""

    owner: str
    """Dotted path of the class (or module) that holds `name`."""
    name: str
    expected: str
    """The signature without annotations, e.g. `(self, snapshot_id)`, or PROPERTY / INSTANCE_ATTRIBUTE."""
    resolved_by: str | None = None
    """A subclass through which moto calls it (EC2Backend, EC2Response): it must not override `name`."""

    @property
    def label(self) -> str:
        return f"{self.owner}.{self.name}"


_EBS_RESPONSE_METHODS = (
    "start_snapshot",
    "put_snapshot_block",
    "complete_snapshot",
    "list_snapshot_blocks",
    "list_changed_blocks",
    "get_snapshot_block",
)

TARGETS: tuple[Target, ...] = (
    Target(
        f"{_EBS_MODELS}.EBSBackend",
        "create_volume",
        "(self, size, zone_name, snapshot_id=None, encrypted=False, kms_key_id=None, volume_type=None, "
        "iops=None, throughput=None, multi_attach_enabled=None)",
        _EC2_BACKEND,
    ),
    Target(
        f"{_EBS_MODELS}.EBSBackend",
        "create_snapshot",
        "(self, volume_id, description, owner_id=None, from_ami=None)",
        _EC2_BACKEND,
    ),
    Target(
        f"{_EBS_MODELS}.EBSBackend",
        "copy_snapshot",
        "(self, source_snapshot_id, source_region, description, kms_key_id)",
        _EC2_BACKEND,
    ),
    Target(f"{_EBS_MODELS}.EBSBackend", "delete_snapshot", "(self, snapshot_id)", _EC2_BACKEND),
    Target(f"{_EBS_MODELS}.EBSBackend", "_create_default_encryption_key", "(self)", _EC2_BACKEND),
    Target(
        f"{_EBS_MODELS}.Snapshot",
        "__init__",
        "(self, ec2_backend, snapshot_id, volume, description, encrypted=False, kms_key_id=None, "
        "owner_id=None, from_ami=None)",
    ),
    Target(f"{_EBS_MODELS}.Snapshot", "status", INSTANCE_ATTRIBUTE),
    Target(f"{_EBS_MODELS}.Snapshot", "progress", PROPERTY),
    Target(f"{_EBS_MODELS}.Snapshot", "volume_size", PROPERTY),
    Target(
        f"{_EBS_MODELS}.Volume",
        "__init__",
        "(self, ec2_backend, volume_id, size, zone, snapshot_id=None, encrypted=False, kms_key_id=None, "
        "volume_type=None, iops=None, throughput=None, multi_attach_enabled=None)",
    ),
    Target("moto.ec2.utils", "random_snapshot_id", "()"),
    Target("moto.ec2.models.amis.AmiBackend", "register_image", "(self, name=None, description=None)", _EC2_BACKEND),
    Target(
        "moto.ec2.models.amis.AmiBackend",
        "create_image",
        "(self, instance_id, name, description, tag_specifications)",
        _EC2_BACKEND,
    ),
    Target("moto.ec2.models.amis.Ami", "block_device_mappings", PROPERTY),
    Target(
        "moto.ec2.models.instances.InstanceBackend",
        "run_instances",
        "(self, image_id, count, user_data, security_group_names, **kwargs)",
        _EC2_BACKEND,
    ),
    Target("moto.ec2.models.instances.Instance", "get_block_device_mapping", PROPERTY),
    Target("moto.ec2.responses.elastic_block_store.ElasticBlockStore", "create_snapshots", "(self)", _EC2_RESPONSE),
    Target("moto.ec2.responses.elastic_block_store.ElasticBlockStore", "copy_snapshot", "(self)", _EC2_RESPONSE),
    Target("moto.ec2.responses.amis.AmisResponse", "register_image", "(self)", _EC2_RESPONSE),
    *(Target("moto.ebs.responses.EBSResponse", name, "(self)") for name in _EBS_RESPONSE_METHODS),
    Target(
        "moto.moto_server.werkzeug_app.DomainDispatcherApplication",
        "__call__",
        "(self, environ, start_response)",
    ),
    Target("moto.moto_server.threaded_moto_server.ThreadedMotoServer", "_server_entry", "(self)"),
)

_lock = threading.Lock()
_installed = False


def _resolve(dotted: str) -> Any:
    """A module, or a class inside one, by dotted path."""
    try:
        return importlib.import_module(dotted)
    except ImportError:
        module_name, _, attribute = dotted.rpartition(".")
        return getattr(importlib.import_module(module_name), attribute)


def describe_signature(function: Callable[..., Any]) -> str:
    """`(self, a, b=None, *args, **kwargs)`: parameter names, kinds and defaults, annotations left out."""
    parts: list[str] = []
    star_done = False
    for parameter in inspect.signature(function).parameters.values():
        if parameter.kind is parameter.VAR_POSITIONAL:
            parts.append(f"*{parameter.name}")
            star_done = True
        elif parameter.kind is parameter.VAR_KEYWORD:
            parts.append(f"**{parameter.name}")
        elif parameter.kind is parameter.KEYWORD_ONLY and not star_done:
            parts.append("*")
            star_done = True
            parts.append(_parameter(parameter))
        else:
            parts.append(_parameter(parameter))
    return f"({', '.join(parts)})"


def _parameter(parameter: inspect.Parameter) -> str:
    if parameter.default is inspect.Parameter.empty:
        return parameter.name
    return f"{parameter.name}={parameter.default!r}"


def _check(target: Target) -> str | None:
    try:
        owner = _resolve(target.owner)
    except (ImportError, AttributeError) as exc:
        return f"{target.owner}: cannot be imported ({exc})"
    if target.expected == INSTANCE_ATTRIBUTE:
        if target.name in vars(owner) and not isinstance(vars(owner)[target.name], property):
            return f"{target.label}: expected an instance attribute, found a class attribute"
        return None
    raw = inspect.getattr_static(owner, target.name, None)
    if raw is None:
        return f"{target.label}: no longer exists"
    if target.expected == PROPERTY:
        return None if isinstance(raw, property) else f"{target.label}: expected a property, found {type(raw)}"
    if isinstance(raw, property) or not callable(getattr(owner, target.name)):
        return f"{target.label}: expected a method {target.expected}, found {type(raw).__name__}"
    found = describe_signature(getattr(owner, target.name))
    if found != target.expected:
        return f"{target.label}: expected signature {target.expected}, found {found}"
    if target.resolved_by:
        try:
            via = _resolve(target.resolved_by)
        except (ImportError, AttributeError) as exc:
            return f"{target.resolved_by}: cannot be imported ({exc})"
        if inspect.getattr_static(via, target.name, None) is not raw:
            return f"{target.label}: {target.resolved_by} no longer reaches it (overridden or removed)"
    return None


def incompatibilities(moto_version: str | None = None, targets: Iterable[Target] = TARGETS) -> list[str]:
    """Every way the installed moto differs from what the lab was written for (empty when it matches)."""
    import moto

    version = moto.__version__ if moto_version is None else moto_version
    problems = []
    if version != MOTO_VERSION:
        problems.append(f"moto version: expected {MOTO_VERSION}, found {version}")
    for target in targets:
        problem = _check(target)
        if problem:
            problems.append(problem)
    return problems


def check_compatibility(moto_version: str | None = None, targets: Iterable[Target] = TARGETS) -> None:
    problems = incompatibilities(moto_version, targets)
    if problems:
        raise RuntimeError(
            f"snapkeep.lab patches moto's internals and was written for moto {MOTO_VERSION}; "
            "the installed moto differs:\n  - " + "\n  - ".join(problems)
        )


def installed() -> bool:
    return _installed


def install() -> None:
    """Patch moto in this process (idempotent). Raises RuntimeError if moto is not the version it expects."""
    global _installed
    with _lock:
        if _installed:
            return
        check_compatibility()
        _apply()
        _installed = True


def _apply() -> None:
    from moto.ebs.responses import EBSResponse
    from moto.ec2.models.amis import Ami, AmiBackend
    from moto.ec2.models.elastic_block_store import EBSBackend, Snapshot
    from moto.ec2.models.instances import InstanceBackend
    from moto.ec2.responses.amis import AmisResponse
    from moto.ec2.responses.elastic_block_store import ElasticBlockStore
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication

    from snapkeep.lab import ebs_api, ec2_images, ec2_volumes
    from snapkeep.lab.settings import SETTINGS, snapshot_seconds_from_env

    SETTINGS.set_initial_snapshot_seconds(snapshot_seconds_from_env())

    patches: list[tuple[type, str, Any]] = [
        (EBSBackend, "create_volume", ec2_volumes.wrap_create_volume(EBSBackend.create_volume)),
        (EBSBackend, "create_snapshot", ec2_volumes.wrap_create_snapshot(EBSBackend.create_snapshot)),
        (EBSBackend, "copy_snapshot", ec2_volumes.wrap_copy_snapshot(EBSBackend.copy_snapshot)),
        (EBSBackend, "delete_snapshot", ec2_volumes.wrap_delete_snapshot(EBSBackend.delete_snapshot)),
        *((Snapshot, name, prop) for name, prop in ec2_volumes.SNAPSHOT_PROPERTIES.items()),
        (AmiBackend, "register_image", ec2_images.wrap_register_image(AmiBackend.register_image)),
        (AmiBackend, "create_image", ec2_images.wrap_create_image(AmiBackend.create_image)),
        (
            Ami,
            "block_device_mappings",
            ec2_images.block_device_mappings_property(inspect.getattr_static(Ami, "block_device_mappings")),
        ),
        (InstanceBackend, "run_instances", ec2_images.wrap_run_instances(InstanceBackend.run_instances)),
        (
            ElasticBlockStore,
            "create_snapshots",
            _replace(ElasticBlockStore.create_snapshots, ec2_volumes.create_snapshots_response),
        ),
        (
            ElasticBlockStore,
            "copy_snapshot",
            _replace(ElasticBlockStore.copy_snapshot, ec2_volumes.copy_snapshot_response),
        ),
        (AmisResponse, "register_image", _replace(AmisResponse.register_image, ec2_images.register_image_response)),
        *(
            (EBSResponse, name, _replace(getattr(EBSResponse, name), handler))
            for name, handler in ebs_api.HANDLERS.items()
        ),
        (DomainDispatcherApplication, "__call__", _wrap_dispatch(DomainDispatcherApplication.__call__)),
    ]
    for owner, name, value in patches:
        setattr(owner, name, value)


def _replace(original: Callable[..., Any], replacement: Callable[..., Any]) -> Callable[..., Any]:
    """A response handler replaced wholesale; `__wrapped__` keeps the original for the guard and debugging."""

    @functools.wraps(original)
    def handler(self: Any) -> Any:
        return replacement(self)

    handler.__doc__ = replacement.__doc__ or original.__doc__
    return handler


def _wrap_dispatch(original: Callable[..., Any]) -> Callable[..., Any]:
    """Serve `/_harness/...` beside moto, and return the lab settings to their start values on a reset."""
    from snapkeep.lab import harness_routes
    from snapkeep.lab.settings import SETTINGS

    @functools.wraps(original)
    def __call__(self: Any, environ: dict[str, Any], start_response: Any) -> Any:
        path = environ.get("PATH_INFO", "")
        if path.startswith(harness_routes.PREFIX):
            return harness_routes.application(environ, start_response)
        result = original(self, environ, start_response)
        if path.rstrip("/") == "/moto-api/reset" and environ.get("REQUEST_METHOD") == "POST":
            SETTINGS.reset()
        return result

    return __call__
