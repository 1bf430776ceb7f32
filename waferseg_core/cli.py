"""The ``waferseg`` command (contract in DESIGN.md).

Every command prints JSON on stdout (one object, or one per line where the contract says so),
exits 0 on success and exits 2 with one ``error: ...`` line on stderr for bad input.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from waferseg_core.errors import InvalidInputError, WaferSegError


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage error as one line and exit code 2."""

    def error(self, message: str) -> NoReturn:
        raise InvalidInputError(f"{self.prog}: {message}")


def _emit(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj, sort_keys=False) + "\n")


def cmd_info(args: argparse.Namespace) -> int:
    """One JSON line per wafer of each file."""
    from waferseg_core.formats import expand_paths, read

    rows = []
    for path in expand_paths(args.files):
        for m in read(path):
            rows.append(
                {
                    "file": str(path),
                    "format": m.source_format,
                    "lot": m.lot,
                    "wafer": m.wafer_id,
                    "rows": m.rows,
                    "cols": m.cols,
                    "dies": m.dies,
                    "pass_dies": m.pass_dies,
                    "fail_dies": m.fail_dies,
                    **({"warnings": m.extra["warnings"]} if m.extra.get("warnings") else {}),
                }
            )
    for row in rows:  # printed only once every file has been read: all or nothing
        _emit(row)
    return 0


def cmd_synth(args: argparse.Namespace) -> int:
    """Write a synthetic COCO set."""
    from waferseg_core.synth import write_dataset

    if args.count < 1:
        raise InvalidInputError(f"--count must be at least 1, found {args.count}")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise InvalidInputError(f"--out must be a folder, found a file: {out}")
    summary = write_dataset(out, args.count, args.seed, mixed=args.mixed)
    _emit({"out": str(out), "annotations": str(out / "annotations.json"), **summary})
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = _Parser(prog="waferseg", description="WaferSeg Studio command line")
    parser.add_argument("--store", help="store URL (default: SQLite file in the user data folder)")
    parser.add_argument("--user", help="act as this user")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("info", help="describe wafer-map files, one JSON line per wafer")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("synth", help="write synthetic wafers with exact masks as COCO + PNGs")
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--mixed", type=float, default=0.0, help="fraction of mixed-type wafers (0-1)")
    p.set_defaults(func=cmd_synth)

    from waferseg_core import cli_ml, cli_store

    cli_ml.add_commands(sub)
    cli_store.add_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; returns the exit code (0 ok, 2 bad input)."""
    try:
        args = build_parser().parse_args(argv)
        code: int = args.func(args)
        return code
    except WaferSegError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    except BrokenPipeError:
        # The reader (e.g. `head`) went away: stop quietly, as Unix tools do.
        sys.stderr.close()
        return 0
    except OSError as exc:
        # A path the user gave cannot be written or read (no such folder, no permission ...).
        where = f": {exc.filename}" if exc.filename else ""
        sys.stderr.write(f"error: {exc.strerror or exc}{where}\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write("error: interrupted\n")
        return 130


if __name__ == "__main__":
    sys.exit(main())
