"""`dpo-tutor eval`: evaluate a run before and after, write report.md and report.json."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    sub.add_parser("eval", help="evaluate a run before and after, write report.md and report.json", description="evaluate a run before and after, write report.md and report.json")


def run(args: argparse.Namespace) -> int:
    raise SystemExit("dpo-tutor eval: not built yet")
