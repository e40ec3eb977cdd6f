"""``kubemigrate backup``, ``restore`` and ``verify-backup`` end to end, as a Job runs them."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote, urlsplit

from harness.ports import free_port
from integration.backup.backup_helpers import ROWS, fingerprint, query
from integration.cli.cli_helpers import run_cli
from kubemigrate.engine.backup import dumpfile

PASSWORD = "s3cret-Pa55/w@rd"


def termination(path: Path) -> dict[str, object]:
    text = path.read_text()
    assert len(text.encode()) <= 4096
    data = json.loads(text)
    assert isinstance(data, dict)
    return data


def one_error_line(stderr: str) -> str:
    lines = [ln for ln in stderr.splitlines() if ln.startswith("error: ")]
    assert len(lines) == 1, stderr
    return lines[0]


def test_backup_verify_and_restore(
    source_url: str,
    backups: Path,
    pg_admin_url: str,
    new_database: Callable[[], str],
    tmp_path: Path,
) -> None:
    out, log = backups / "app.dump", tmp_path / "backup.log"
    result = run_cli(
        "backup",
        "--database-url",
        source_url,
        "--output",
        str(out),
        "--verify",
        "--scratch-url",
        pg_admin_url,
        "--termination-log",
        str(log),
    )
    assert result.returncode == 0, result
    sha256, size = dumpfile.digest(out)
    assert f"sha256: {sha256}" in result.stdout
    assert f"size: {size} bytes" in result.stdout
    assert "verification OK" in result.stdout
    assert "all match" in result.stdout
    data = termination(log)
    assert data["ok"] is True and data["error"] is None
    assert data["location"] == str(out)
    assert data["sizeBytes"] == size and data["sha256"] == sha256
    assert data["verified"] is True
    assert data["verification"] == {
        "tables": 4,
        "rows": sum(ROWS.values()),
        "matched": True,
        "mismatches": [],
    }
    assert str(data["serverVersion"]).split(".")[0].isdigit()
    assert isinstance(data["durationSeconds"], float)
    assert str(data["startedAt"]).endswith("Z") and str(data["completedAt"]).endswith("Z")

    target, rlog = new_database(), tmp_path / "restore.log"
    restored = run_cli(
        "restore", str(out), "--database-url", target, "--termination-log", str(rlog)
    )
    assert restored.returncode == 0, restored
    assert "4 tables, 51300 rows, all match" in restored.stdout
    data = termination(rlog)
    assert data["ok"] is True and data["matched"] is True and data["mismatches"] == []
    assert data["tables"] == 4 and data["rows"] == sum(ROWS.values())
    assert fingerprint(target) == fingerprint(source_url)


def test_database_url_from_the_environment(
    source_url: str, backups: Path, new_database: Callable[[], str]
) -> None:
    out = backups / "app.dump"
    result = run_cli("backup", "-o", str(out), env={"DATABASE_URL": source_url})
    assert result.returncode == 0, result
    assert "rows:" not in result.stdout  # counted only when verifying, or with --row-counts
    target = new_database()
    restored = run_cli("restore", str(out), env={"DATABASE_URL": target})
    assert restored.returncode == 0, restored
    assert "recorded no row counts" in restored.stdout
    assert fingerprint(target) == fingerprint(source_url)


def test_restore_refused_then_clean(source_url: str, backups: Path, tmp_path: Path) -> None:
    out, log = backups / "app.dump", tmp_path / "restore.log"
    assert run_cli("backup", "--database-url", source_url, "-o", str(out)).returncode == 0
    query(source_url, "DELETE FROM orders WHERE id % 2 = 0")
    before = fingerprint(source_url)

    refused = run_cli(
        "restore", str(out), "--database-url", source_url, "--termination-log", str(log)
    )
    assert refused.returncode == 1, refused
    assert "is not empty" in one_error_line(refused.stderr)
    data = termination(log)
    assert data == {"ok": False, "reason": "TargetNotEmpty", "error": data["error"]}
    assert fingerprint(source_url) == before

    cleaned = run_cli(
        "restore", str(out), "--database-url", source_url, "--clean", "--termination-log", str(log)
    )
    assert cleaned.returncode == 0, cleaned
    assert termination(log)["rows"] == sum(ROWS.values())


def test_unreachable_database(tmp_path: Path) -> None:
    url = f"postgresql://app:{quote(PASSWORD, safe='')}@127.0.0.1:{free_port()}/app"
    out, log = tmp_path / "app.dump", tmp_path / "backup.log"
    result = run_cli(
        "backup", "--database-url", url, "-o", str(out), "--verbose", "--termination-log", str(log)
    )
    assert result.returncode == 3, result
    error = one_error_line(result.stderr)
    assert "cannot connect" in error
    data = termination(log)
    assert data["ok"] is False and data["reason"] == "ConnectionFailed"
    for text in (result.stdout, result.stderr, log.read_text()):
        assert PASSWORD not in text and quote(PASSWORD, safe="") not in text
        assert "s3cret" not in text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["backup.log"]


def test_no_database_given(tmp_path: Path) -> None:
    log = tmp_path / "backup.log"
    result = run_cli("backup", "-o", str(tmp_path / "x.dump"), "--termination-log", str(log))
    assert result.returncode == 2, result
    assert "DATABASE_URL" in one_error_line(result.stderr)
    assert termination(log)["ok"] is False


def test_verify_backup_command(source_url: str, backups: Path, tmp_path: Path) -> None:
    out = backups / "app.dump"
    assert run_cli("backup", "--database-url", source_url, "-o", str(out)).returncode == 0
    ok = run_cli("verify-backup", str(out))
    assert ok.returncode == 0, ok
    assert "verification OK" in ok.stdout
    out.write_bytes(out.read_bytes()[:1000])
    log = tmp_path / "verify.log"
    bad = run_cli("verify-backup", str(out), "--termination-log", str(log))
    assert bad.returncode == 1, bad
    assert "truncated" in one_error_line(bad.stderr)
    data = termination(log)
    assert data["ok"] is False and data["verified"] is False
    assert data["reason"] == "VerificationFailed"


def test_json_output_and_plain_format(source_url: str, backups: Path) -> None:
    out = backups / "app.sql"
    result = run_cli(
        "backup",
        "--database-url",
        source_url,
        "-o",
        str(out),
        "--format",
        "plain",
        "--json",
        "--row-counts",
    )
    assert result.returncode == 0, result
    data = json.loads(result.stdout)
    assert data["format"] == "plain" and data["tables"] == 4
    assert urlsplit(source_url).path.lstrip("/") == data["database"]
    clean = run_cli("restore", str(out), "--database-url", source_url, "--clean")
    assert clean.returncode == 2, clean
    assert "plain" in one_error_line(clean.stderr)
