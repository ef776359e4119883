"""The version guard: the lab refuses to patch a moto it was not written for, and says what changed."""

from __future__ import annotations

from typing import Any

import moto
import pytest
from moto.ec2.models.elastic_block_store import EBSBackend

from snapkeep.lab import extension


@pytest.mark.usefixtures("lab_server")
def test_the_installed_moto_matches_what_the_lab_was_written_for() -> None:
    assert extension.installed()
    assert extension.incompatibilities() == []
    extension.install()  # idempotent: a second call is a no-op


def test_install_refuses_another_moto_version(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(moto, "__version__", "5.3.0")
    monkeypatch.setattr(extension, "_installed", False)
    with pytest.raises(RuntimeError, match=r"moto version: expected 5\.2\.5, found 5\.3\.0"):
        extension.install()


def test_install_names_a_method_whose_signature_changed(monkeypatch: pytest.MonkeyPatch) -> None:
    def create_snapshot(self: Any, volume_id: str, description: str, *, encrypted: bool = False) -> Any:
        raise AssertionError("never called")

    monkeypatch.setattr(EBSBackend, "create_snapshot", create_snapshot)
    monkeypatch.delattr(EBSBackend, "copy_snapshot")
    monkeypatch.setattr(extension, "_installed", False)
    with pytest.raises(RuntimeError) as refused:
        extension.install()
    message = str(refused.value)
    assert "moto.ec2.models.elastic_block_store.EBSBackend.create_snapshot: expected signature" in message
    assert "found (self, volume_id, description, *, encrypted=False)" in message
    assert "EBSBackend.copy_snapshot: no longer exists" in message


def test_guard_reports_a_missing_class_and_an_overriding_subclass() -> None:
    missing = extension.Target("moto.ec2.models.nowhere.Gone", "method", "(self)")
    problems = extension.incompatibilities(targets=[missing])
    assert len(problems) == 1 and "moto.ec2.models.nowhere.Gone: cannot be imported" in problems[0]

    overridden = extension.Target(
        "moto.core.base_backend.BaseBackend", "reset", "(self)", resolved_by="moto.ec2.models.EC2Backend"
    )
    assert extension.incompatibilities(targets=[overridden]) == []
    shadowed = extension.Target(
        "moto.ec2.models.elastic_block_store.EBSBackend",
        "create_volume",
        "(self, size)",
    )
    assert (
        "expected signature (self, size), found (self, size, zone_name"
        in extension.incompatibilities(targets=[shadowed])[0]
    )
