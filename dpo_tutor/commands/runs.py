"""`dpo-tutor runs`: list runs with their state and last metrics."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    sub.add_parser("runs", help="list runs with their state and last metrics", description="list runs with their state and last metrics")


def run(args: argparse.Namespace) -> int:
    raise SystemExit("dpo-tutor runs: not built yet")
