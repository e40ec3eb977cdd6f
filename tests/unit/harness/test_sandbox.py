"""The sandbox's mount plan: missing mount points are created in tmpfs, never on the host."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.node import sandbox
from harness.node.sandbox import Mount, bwrap_argv, resolve, splice_points


def test_symlinked_targets_are_resolved_but_private_ones_are_not() -> None:
    assert resolve("/var/run/secrets/x") == str(Path("/var/run").resolve() / "secrets/x")
    assert resolve("/dev/termination-log") == "/dev/termination-log"
    assert resolve("tmp/../tmp/a") == "/tmp/a"


def test_only_existing_ancestors_of_missing_targets_are_spliced() -> None:
    points = splice_points(["/usr/share/km-missing/deeper", "/tmp/x/y", "/km-new-top/a", "/usr"])
    assert points == {"/usr/share", "/usr"}


def test_argv_binds_volumes_after_the_tree_and_runs_the_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sandbox, "KEEP_VISIBLE", ())  # wherever this checkout lives
    argv = bwrap_argv(
        ["sh", "-c", "true"],
        mounts=[Mount(tmp_path, "/backups", read_only=True)],
        termination_log=tmp_path / "t",
        termination_path="/dev/termination-log",
        workdir=None,
        hostname="pod-1",
    )
    assert argv[-4:] == ["--", "sh", "-c", "true"]
    volume = ["--ro-bind", str(tmp_path), "/backups"]
    ro = next(i for i in range(argv.index("--tmpfs"), len(argv)) if argv[i : i + 3] == volume)
    assert ["--bind", str(tmp_path / "t"), "/dev/termination-log"] == argv[ro + 3 : ro + 6]
    assert "--dev-bind" not in argv


def test_a_checkout_under_tmp_stays_visible_to_pods(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """CI may clone into /tmp, which every sandbox replaces: the pods' venv must still be seen."""
    monkeypatch.setattr(sandbox, "KEEP_VISIBLE", (Path("/tmp/ci-clone"), Path("/opt/repo")))
    argv = bwrap_argv(
        ["true"],
        mounts=[Mount(tmp_path, "/tmp")],
        termination_log=tmp_path / "t",
        termination_path="/dev/termination-log",
        workdir=None,
        hostname="p",
    )
    volume = argv.index("--bind", argv.index("--tmpfs"))
    assert argv[volume : volume + 3] == ["--bind", str(tmp_path), "/tmp"]  # an emptyDir at /tmp
    assert argv[volume + 3 : volume + 6] == ["--ro-bind", "/tmp/ci-clone", "/tmp/ci-clone"]
    assert "/opt/repo" not in argv  # not under a private root: already bound with the host tree
