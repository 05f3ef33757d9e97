"""`dpo-tutor bench`: benchmark DPO training pipelines."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    sub.add_parser("bench", help="benchmark DPO training pipelines", description="benchmark DPO training pipelines")


def run(args: argparse.Namespace) -> int:
    raise SystemExit("dpo-tutor bench: not built yet")
