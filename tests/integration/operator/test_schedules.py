"""DatabaseBackupSchedule end to end, on a real clock: the operator runs with
KUBEMIGRATE_SCHEDULE_SECONDS=true so a schedule may fire every few seconds (a sixth, leading
seconds field), and the backups it stamps out are real pg_dump Jobs onto a claim.

What is checked: a run creates an owned DatabaseBackup that succeeds, and the status shows the
last and next run and the last success; Forbid never creates a second backup while one is stuck
(a table lock holds pg_dump); the history limit prunes backups and their files; suspend stops
new runs; deleting the schedule deletes its backups and files; the metrics endpoint shows the
last-success gauge, the duration and the next run; an unknown time zone stalls the schedule;
after an operator outage only the most recent missed run starts.
"""

from __future__ import annotations

import json
import re
import time
import urllib.request
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest
import yaml

from harness.kube import Cluster, Kubectl, wait_for
from harness.operator import OperatorProcess
from integration.operator.backups import claim, files, seed

pytestmark = pytest.mark.integration

SECONDS = {"KUBEMIGRATE_SCHEDULE_SECONDS": "true", "KUBEMIGRATE_RETRY_MAX_SECONDS": "2"}


@pytest.fixture
def fast_operator(start_operator: Any) -> OperatorProcess:
    op: OperatorProcess = start_operator(**SECONDS)
    return op


def schedule(name: str, cron: str, **spec: Any) -> str:
    template = {
        "database": {"secretRef": {"name": "db"}},
        "storage": {"persistentVolumeClaim": {"claimName": "backups"}},
        "activeDeadlineSeconds": 120,
    }
    body = {"schedule": cron, "backupTemplate": {"labels": {"team": "orders"}, "spec": template}}
    body.update(spec)
    return yaml.safe_dump(
        {
            "apiVersion": "kubemigrate.dev/v1alpha1",
            "kind": "DatabaseBackupSchedule",
            "metadata": {"name": name},
            "spec": body,
        }
    )


def owned(kubectl: Kubectl, namespace: str, name: str) -> dict[str, dict[str, Any]]:
    """The schedule's DatabaseBackups by name."""
    items = kubectl.json(
        "get", "dbbackup", "-n", namespace, "-l", f"kubemigrate.dev/schedule={name}"
    )
    return {i["metadata"]["name"]: i for i in items["items"]}


def phases(backups: dict[str, dict[str, Any]]) -> dict[str, str]:
    return {n: (b.get("status") or {}).get("phase") or "Pending" for n, b in backups.items()}


def sched_status(kubectl: Kubectl, namespace: str, name: str) -> dict[str, Any]:
    st: dict[str, Any] = (
        kubectl.json("get", "dbbackupschedule", name, "-n", namespace).get("status") or {}
    )
    return st


def metrics(operator: OperatorProcess) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{operator.metrics_port}/metrics") as resp:
        return str(resp.read().decode())


def sample(text: str, name: str, **labels: str) -> float | None:
    """The value of one sample of the exposition text, matched by name and these labels."""
    for line in text.splitlines():
        m = re.match(rf"^{re.escape(name)}\{{(.*)\}} (\S+)$", line)
        if m and all(f'{k}="{v}"' in m.group(1) for k, v in labels.items()):
            return float(m.group(2))
    return None


def test_forbid_holds_runs_while_a_backup_is_stuck_then_status_and_metrics_show_success(
    kubectl: Kubectl,
    namespace: str,
    db_secret: str,
    database_url: str,
    fast_operator: OperatorProcess,
) -> None:
    seed(database_url)
    with psycopg.connect(database_url) as blocker:
        # pg_dump waits for this lock: the first backup stays Running while runs fall due.
        blocker.execute("LOCK TABLE customers IN ACCESS EXCLUSIVE MODE")
        kubectl.apply(claim() + "---\n" + schedule("nightly", "*/2 * * * * *"), "-n", namespace)
        first = wait_for(
            lambda: [n for n, p in phases(owned(kubectl, namespace, "nightly")).items()
                     if p == "Running"],
            timeout=60,
            what="the first scheduled backup to run",
        )[0]  # fmt: skip
        wait_for(
            lambda: sched_status(kubectl, namespace, "nightly").get("reason") == "RunHeld",
            timeout=20,
            what="a run held by concurrencyPolicy Forbid",
        )
        held_until = time.monotonic() + 6  # three more fire times
        while time.monotonic() < held_until:
            assert list(owned(kubectl, namespace, "nightly")) == [first]
            time.sleep(0.5)
        st = sched_status(kubectl, namespace, "nightly")
        assert [a["name"] for a in st["active"]] == [first]
        assert f"{first} is still active (concurrencyPolicy Forbid)" in st["message"]
        blocker.rollback()

    wait_for(
        lambda: (
            (sched_status(kubectl, namespace, "nightly").get("lastSuccessfulBackup") or {}).get(
                "name"
            )
            == first
        ),
        timeout=60,
        what="the first backup to succeed and show in the schedule's status",
    )
    # The held run starts once the first one ended (no startingDeadlineSeconds: late is fine).
    wait_for(
        lambda: len(owned(kubectl, namespace, "nightly")) >= 2,
        timeout=30,
        what="the held run to start after the first backup ended",
    )
    backups = owned(kubectl, namespace, "nightly")
    body = backups[first]
    (ref,) = body["metadata"]["ownerReferences"]
    assert ref["kind"] == "DatabaseBackupSchedule" and ref["name"] == "nightly"
    assert body["metadata"]["labels"]["team"] == "orders"
    assert body["status"]["phase"] == "Succeeded" and body["status"]["verified"] is True
    scheduled = body["metadata"]["annotations"]["kubemigrate.dev/scheduled-at"]
    assert first == f"nightly-{int(datetime.fromisoformat(scheduled).timestamp())}"

    st = sched_status(kubectl, namespace, "nightly")
    assert st["lastScheduleTime"] and st["nextScheduleTime"] > st["lastScheduleTime"]
    assert st["lastSuccessfulBackup"]["time"]
    conditions = {c["type"]: c["status"] for c in st["conditions"]}
    assert conditions["Ready"] == "True" and conditions["Stalled"] == "False"
    gen = kubectl.json("get", "dbbackupschedule", "nightly", "-n", namespace)["metadata"]
    assert st["observedGeneration"] == gen["generation"]
    header = kubectl.run("get", "dbbackupschedule", "-n", namespace).stdout.split("\n")[0]
    assert header.split() == ["NAME", "SCHEDULE", "SUSPEND", "LAST", "NEXT", "LASTSUCCESS", "AGE"]

    text = metrics(fast_operator)
    last = sample(
        text, "kubemigrate_backup_last_success_timestamp_seconds",
        namespace=namespace, database="db[url]",
    )  # fmt: skip
    assert last is not None and abs(last - datetime.now(UTC).timestamp()) < 120
    upcoming = sample(
        text, "kubemigrate_backup_schedule_next_run_timestamp_seconds",
        namespace=namespace, schedule="nightly",
    )  # fmt: skip
    assert upcoming is not None and upcoming > last
    took = sample(
        text, "kubemigrate_backup_duration_seconds_count", namespace=namespace, database="db[url]"
    )
    assert took is not None and took >= 1


def test_history_limit_prunes_suspend_stops_and_delete_takes_the_backups(
    kubectl: Kubectl,
    cluster: Cluster,
    namespace: str,
    db_secret: str,
    database_url: str,
    fast_operator: OperatorProcess,
) -> None:
    seed(database_url)
    kubectl.apply(
        claim() + "---\n" + schedule("often", "*/2 * * * * *", successfulBackupsHistoryLimit=2),
        "-n",
        namespace,
    )
    succeeded: set[str] = set()

    def enough() -> bool:
        now = phases(owned(kubectl, namespace, "often"))
        succeeded.update(n for n, p in now.items() if p == "Succeeded")
        return len(succeeded) >= 4

    wait_for(enough, timeout=120, interval=0.5, what="four scheduled backups to succeed")

    def pruned() -> bool:
        ok = [n for n, p in phases(owned(kubectl, namespace, "often")).items() if p == "Succeeded"]
        succeeded.update(ok)
        return len(ok) == 2 and set(ok) == set(sorted(succeeded, key=_stamp)[-2:])

    wait_for(pruned, timeout=30, what="only the two newest succeeded backups to be kept")
    events = kubectl.run("get", "events", "-n", namespace, "-o", "json").stdout
    assert "beyond the history limits" in events

    kubectl.run(
        "patch", "dbbackupschedule", "often", "-n", namespace, "--type=merge",
        "-p", json.dumps({"spec": {"suspend": True}}),
    )  # fmt: skip
    wait_for(
        lambda: sched_status(kubectl, namespace, "often").get("reason") == "Suspended",
        timeout=20,
        what="the schedule to show Suspended",
    )
    assert "nextScheduleTime" not in sched_status(kubectl, namespace, "often")
    wait_for(
        lambda: (
            "Pending" not in phases(b := owned(kubectl, namespace, "often")).values()
            and "Running" not in phases(b).values()
        ),
        timeout=60,
        what="the backups started before suspend to finish",
    )
    wait_for(pruned, timeout=30, what="the limit to apply to backups that ended after suspend")
    before = owned(kubectl, namespace, "often")
    time.sleep(5)  # two and a half periods of the schedule
    assert set(owned(kubectl, namespace, "often")) == set(before)
    # The pruned backups' files went with them: only the kept ones' files are left.
    kept = [b["status"]["location"] for b in before.values() if b["status"]["phase"] == "Succeeded"]
    expected = {loc.removeprefix("pvc://backups/") for loc in kept}
    expected |= {f"{p}.meta.json" for p in expected}
    wait_for(
        lambda: {f for f in files(cluster, namespace) if not f.startswith(".")} == expected,
        timeout=30,
        what=f"only the kept backups' files: {files(cluster, namespace)} vs {expected}",
    )

    assert files(cluster, namespace)
    kubectl.run("delete", "dbbackupschedule", "often", "-n", namespace, "--wait=false")
    wait_for(
        lambda: not owned(kubectl, namespace, "often"),
        timeout=60,
        what="deleting the schedule to delete its backups",
    )
    wait_for(
        lambda: not [f for f in files(cluster, namespace) if not f.startswith(".")],
        timeout=30,
        what=f"the backups' files to go with them: {files(cluster, namespace)}",
    )


def _stamp(name: str) -> int:
    return int(name.rsplit("-", 1)[1])


def test_an_unknown_time_zone_stalls_the_schedule_with_its_reason(
    kubectl: Kubectl, namespace: str, db_secret: str, fast_operator: OperatorProcess
) -> None:
    kubectl.apply(schedule("lost", "0 3 * * *", timeZone="Mars/Olympus_Mons"), "-n", namespace)
    st = wait_for(
        lambda: (s := sched_status(kubectl, namespace, "lost")).get("reason") and s,
        timeout=30,
        what="the schedule's status",
    )
    assert st["reason"] == "InvalidSpec", st
    assert "unknown time zone 'Mars/Olympus_Mons'" in st["message"]
    conditions = {c["type"]: c["status"] for c in st["conditions"]}
    assert conditions == {"Ready": "False", "Reconciling": "False", "Stalled": "True"}
    assert "nextScheduleTime" not in st
    assert not owned(kubectl, namespace, "lost")


def test_after_an_operator_outage_only_the_most_recent_missed_run_starts(
    kubectl: Kubectl,
    namespace: str,
    db_secret: str,
    database_url: str,
    start_operator: Any,
) -> None:
    """CronJob's rule across a SIGKILL: the runs missed while no operator ran are not all
    started; at most one is, and not the oldest."""
    seed(database_url)
    first = start_operator(**SECONDS)
    kubectl.apply(claim() + "---\n" + schedule("outage", "*/2 * * * * *"), "-n", namespace)
    wait_for(
        lambda: "Succeeded" in phases(owned(kubectl, namespace, "outage")).values(),
        timeout=60,
        what="a first scheduled backup to succeed",
    )
    first.kill()
    killed = datetime.now(UTC).timestamp()
    before = set(owned(kubectl, namespace, "outage"))
    time.sleep(8)  # four fire times with no operator
    start_operator(**SECONDS)
    restarted = datetime.now(UTC).timestamp()
    wait_for(
        lambda: len(set(owned(kubectl, namespace, "outage")) - before) >= 3,
        timeout=60,
        what="runs after the restart",
    )
    new = sorted(_stamp(n) for n in set(owned(kubectl, namespace, "outage")) - before)
    during = [t for t in new if t < restarted]
    # One run for the whole outage, and it is not the oldest missed one (that was killed + 2s).
    assert len(during) <= 1, (killed, restarted, new)
    assert new[0] >= killed + 5, (killed, restarted, new)
