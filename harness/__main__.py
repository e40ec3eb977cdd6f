"""`python -m harness up|down|status [--dir DIR]`: the local stack for development and tests."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from harness import stack
from harness.paths import DEV_DIR


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="harness")
    parser.add_argument("command", choices=["up", "down", "status"])
    parser.add_argument("--dir", type=Path, default=DEV_DIR)
    args = parser.parse_args(argv)
    if args.command == "up":
        t0 = time.monotonic()
        print(
            "starting PostgreSQL, etcd, kube-apiserver, kube-controller-manager, node runner ...",
            flush=True,
        )
        s = stack.up(args.dir)
        print(f"ready in {time.monotonic() - t0:.1f}s")
        print(f"  KUBECONFIG={s.kubeconfig}")
        print(f"  DATABASE_URL={s.database.url}")
        print(f"  logs: {args.dir / 'logs'}/")
        print(f"  use it: source {args.dir / 'env'}")
        return 0
    if args.command == "down":
        stack.down(args.dir)
        print("stopped")
        return 0
    states = stack.status(args.dir)
    for name, ok in states.items():
        print(f"  {name:<26} {'running' if ok else 'down'}")
    return 0 if all(states.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
