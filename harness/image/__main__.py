"""python -m harness.image [--force]: build localhost/kubemigrate:dev unless it is up to date."""

from __future__ import annotations

import argparse
import sys

from harness.image import build


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="harness.image", description=__doc__)
    parser.add_argument(
        "--force",
        action="store_true",
        help="run the build even if the image is up to date (cached layers)",
    )
    parser.add_argument("--tag", default=build.DEV_IMAGE)
    args = parser.parse_args(argv)
    image = build.build(args.tag) if args.force else build.ensure(args.tag)
    print(f"{image.name} {image.digest} (image ID {image.id[:12]})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
