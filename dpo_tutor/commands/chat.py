"""`dpo-tutor chat`: answer one prompt from the base and the aligned model."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    sub.add_parser("chat", help="answer one prompt from the base and the aligned model", description="answer one prompt from the base and the aligned model")


def run(args: argparse.Namespace) -> int:
    raise SystemExit("dpo-tutor chat: not built yet")
