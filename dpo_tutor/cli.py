"""The console script.

Parses arguments and hands off. It imports nothing heavy at module level, so that `dpo-tutor --help`
and `--version` answer at once: each subcommand lives in `dpo_tutor.commands.<name>`, which registers
its arguments cheaply and imports torch, transformers or textual only inside its `run()`.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from dpo_tutor import __version__

# Order is the order shown in --help.
SUBCOMMANDS = ("train", "runs", "eval", "chat", "data", "bench")

DESCRIPTION = """\
A terminal app that teaches Direct Preference Optimization (DPO) and runs it for real.

With no subcommand it opens the tutor (lessons, dataset browser, training, evaluation, chat).
The subcommands run the same engine headless, for scripts, classrooms and SSH sessions."""

EPILOG = """\
examples:
  dpo-tutor                              open the tutor
  dpo-tutor --walkthrough                open it in the 15-minute video walkthrough
  dpo-tutor data stats ../shared/data/hh-rlhf/harmless-base-test.jsonl.gz
  dpo-tutor train --model tiny --max-steps 20
  dpo-tutor runs
  dpo-tutor eval runs/<run>
  dpo-tutor chat runs/<run> --prompt "How do I bake a cake?"
"""


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    pass


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dpo-tutor", description=DESCRIPTION, epilog=EPILOG, formatter_class=_HelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"dpo-tutor {__version__}")
    parser.add_argument(
        "--walkthrough", action="store_true", help="open the tutor in walkthrough (video recording) mode"
    )
    parser.add_argument("--lesson", metavar="ID", help="open the tutor at this lesson")
    parser.add_argument("--runs-dir", metavar="DIR", help="where runs live (default: ./runs)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMANDS:
        module = importlib.import_module(f"dpo_tutor.commands.{name}")
        module.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        from dpo_tutor.commands import tui

        return tui.run(args)
    module = importlib.import_module(f"dpo_tutor.commands.{args.command}")
    try:
        return int(module.run(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
