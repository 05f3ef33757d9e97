"""`dpo-tutor data`: inspect preference data (stats, show)."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    sub.add_parser("data", help="inspect preference data (stats, show)", description="inspect preference data (stats, show)")


def run(args: argparse.Namespace) -> int:
    raise SystemExit("dpo-tutor data: not built yet")
