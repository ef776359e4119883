"""`snapkeep demo`: the whole story on the embedded lab, checked at the end, leaving nothing running."""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

from snapkeep.app import Snapkeep
from snapkeep.aws import ec2 as ec2api
from snapkeep.cli.backend import LocalBackend
from snapkeep.cli.output import console, make_table
from snapkeep.cli.processes import protect_lab_fleet
from snapkeep.cli.waiting import wait_for_backup, wait_for_restore
from snapkeep.config import Settings
from snapkeep.domain.arn import Arn
from snapkeep.domain.selection import evaluate, selection_from_aws_json
from snapkeep.engine.inventory import live_inventory

DEMO_PLAN: dict[str, Any] = {
    "BackupPlanName": "demo-daily-monthly",
    "Rules": [
        {
            "RuleName": "daily",
            "TargetBackupVaultName": "demo-vault",
            "ScheduleExpression": "cron(0 5 ? * * *)",
            "ScheduleExpressionTimezone": "Europe/Berlin",
            "StartWindowMinutes": 60,
            "CompletionWindowMinutes": 180,
            "Lifecycle": {"DeleteAfterDays": 35},
        },
        {
            "RuleName": "monthly",
            "TargetBackupVaultName": "demo-vault",
            "ScheduleExpression": "cron(0 3 1 * ? *)",
            "ScheduleExpressionTimezone": "UTC",
            "StartWindowMinutes": 480,
            "CompletionWindowMinutes": 10080,
            "Lifecycle": {"MoveToColdStorageAfterDays": 30, "DeleteAfterDays": 365},
        },
    ],
}
DEMO_SELECTION: dict[str, Any] = {
    "SelectionName": "tagged-daily",
    "IamRoleArn": "arn:aws:iam::123456789012:role/service-role/AWSBackupDefaultServiceRole",
    "ListOfTags": [{"ConditionType": "STRINGEQUALS", "ConditionKey": "backup", "ConditionValue": "daily"}],
}


def run_demo(keep: bool = False) -> bool:
    from snapkeep.lab.fleet import seed_fleet
    from snapkeep.lab.harness import LabHarness
    from snapkeep.lab.server import LabServer

    home = Path(tempfile.mkdtemp(prefix="snapkeep-demo-"))
    base = Settings.from_env({k: v for k, v in os.environ.items() if not k.startswith("SNAPKEEP_")})
    settings = replace(base, home=home, database_url=f"sqlite:///{home / 'catalog.db'}", poll_seconds=0.5)
    lab = LabServer(snapshot_seconds=1.0)
    lab.start()
    sk: Snapkeep | None = None
    pool = None
    try:
        console.rule("[bold]Snapkeep demo")
        console.print(f"AWS lab on {lab.endpoint}; catalog in {home}")
        fleet = seed_fleet(lab.endpoint)
        harness = LabHarness(lab.endpoint)
        sk = Snapkeep.open(settings.with_lab(lab.endpoint))
        protect_lab_fleet(sk, fleet.account_roles(), list(fleet.regions))
        pool = sk.workers(2)
        pool.start()
        service = sk.service
        local = LocalBackend(sk)  # waits poll DescribeBackupJob / DescribeRestoreJob as the CLI does

        service.create_backup_vault("demo-vault", {"purpose": "demo"})
        plan = service.create_backup_plan(DEMO_PLAN)
        service.create_backup_selection(plan["BackupPlanId"], DEMO_SELECTION)
        console.print(
            f"Created vault demo-vault, plan {plan['BackupPlanId']} (daily + monthly), selection backup=daily"
        )

        instances = [r for r in live_inventory(sk.context).resources if r.resource_type == "EC2"]
        picked = evaluate(selection_from_aws_json(DEMO_SELECTION), instances)
        console.print(
            f"The selection picks {len(picked)} instances: "
            + ", ".join(Arn.parse(m.resource_arn).resource_id for m in picked)
        )
        role = DEMO_SELECTION["IamRoleArn"]

        def backup_all(label: str) -> dict[str, str]:
            console.print(f"[bold]{label}[/]: backing up {len(picked)} instances")
            points = {}
            for match in picked:
                job = service.start_backup_job(
                    "demo-vault", match.resource_arn, role, lifecycle={"DeleteAfterDays": 35}
                )
                out = wait_for_backup(local, job["BackupJobId"], timeout=300)
                if out["State"] != "COMPLETED":
                    raise RuntimeError(
                        f"backup of {match.resource_arn} ended {out['State']}: {out.get('StatusMessage')}"
                    )
                points[match.resource_arn] = out["RecoveryPointArn"]
            return points

        first = backup_all("Backup 1")
        def volume_count(resource_arn: str) -> int:
            arn = Arn.parse(resource_arn)
            found = ec2api.describe_instance(sk.context.ec2(arn.account, arn.region), arn.resource_id)
            return len(found["BlockDeviceMappings"])

        target = max((m.resource_arn for m in picked), key=volume_count)  # the instance with the most disks
        target_arn = Arn.parse(target)
        ec2 = sk.context.ec2(target_arn.account, target_arn.region)
        inst = ec2api.describe_instance(ec2, target_arn.resource_id)
        devices = {b["DeviceName"]: b["Ebs"]["VolumeId"] for b in inst["BlockDeviceMappings"]}
        state1 = {dev: harness.volume_digest(vol) for dev, vol in devices.items()}

        data_device = sorted(devices)[-1]
        harness.write_volume(devices[data_device], 3 * 524288 + 100, b"changed after the first backup " * 1000)
        state2 = {dev: harness.volume_digest(vol) for dev, vol in devices.items()}
        console.print(f"Wrote new data into {target_arn.resource_id} {data_device} ({devices[data_device]})")

        second = backup_all("Backup 2")
        restore = service.start_restore_job(first[target], {"InstanceType": "t3.micro"}, copy_source_tags=True)
        out = wait_for_restore(local, restore["RestoreJobId"], timeout=300)
        if out["Status"] != "COMPLETED":
            raise RuntimeError(f"restore ended {out['Status']}: {out.get('StatusMessage')}")
        restored_id = Arn.parse(out["CreatedResourceArn"]).resource_id
        restored = ec2api.describe_instance(ec2, restored_id)
        restored_devices = {b["DeviceName"]: b["Ebs"]["VolumeId"] for b in restored["BlockDeviceMappings"]}
        restored_state = {dev: harness.volume_digest(vol) for dev, vol in restored_devices.items()}

        rows = []
        ok = set(restored_state) == set(state1)
        for dev in sorted(devices):
            matches_first = restored_state.get(dev) == state1[dev]
            matches_second = restored_state.get(dev) == state2[dev]
            changed = state1[dev] != state2[dev]
            ok = ok and matches_first and (matches_second == (not changed))
            rows.append(
                [
                    dev,
                    state1[dev][:12],
                    state2[dev][:12],
                    (restored_state.get(dev) or "-")[:12],
                    "yes" if matches_first else "NO",
                    "yes" if matches_second else "no",
                ]
            )
        console.print(
            make_table(
                f"Restored {restored_id} from the first recovery point of {target_arn.resource_id}",
                ["Device", "Backup 1", "Backup 2", "Restored", "= backup 1", "= backup 2"],
                rows,
            )
        )
        jobs = service.list_backup_jobs()
        console.print(
            make_table(
                "Summary",
                ["What", "Value"],
                [
                    ["Instances protected", len(picked)],
                    ["Backup jobs completed", sum(j["State"] == "COMPLETED" for j in jobs)],
                    ["Recovery points", len(service.list_recovery_points("demo-vault"))],
                    ["First recovery point of the changed instance", first[target]],
                    ["Second recovery point of the changed instance", second[target]],
                    ["Restored instance", out["CreatedResourceArn"]],
                    ["Restored disks hold the first state, not the second", "yes" if ok else "NO"],
                ],
            )
        )
        console.print("[bold green]Demo passed[/]" if ok else "[bold red]Demo FAILED: restored data differs[/]")
        return ok
    finally:
        if pool is not None:
            pool.stop()
        if sk is not None:
            sk.close()
        lab.stop()
        if keep:
            console.print(f"Kept {home}")
        else:
            shutil.rmtree(home, ignore_errors=True)
