"""`dpo-tutor train`: train a model with DPO (headless)."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    sub.add_parser("train", help="train a model with DPO (headless)", description="train a model with DPO (headless)")


def run(args: argparse.Namespace) -> int:
    raise SystemExit("dpo-tutor train: not built yet")
