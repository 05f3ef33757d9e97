"""The console script.

Parses arguments and hands off. It imports nothing heavy at module level, so that `dpo-tutor --help`
and `--version` answer at once: each subcommand lives in `dpo_tutor.commands.<name>`, which registers
its arguments cheaply and imports torch, transformers or textual only inside its `run()`.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import tempfile
import traceback

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


def quiet_libraries() -> None:
    """No progress bars from the hub and transformers ("Loading weights", "Writing model shards") and no
    load reports in our output: each command prints its own progress. Set before they are imported; a
    person's own setting of these variables wins."""
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


def what_was_read(args: argparse.Namespace) -> str:
    for name in ("source", "run", "config", "data"):
        value = getattr(args, name, None)
        if isinstance(value, str) and value:
            return value
    return "the input"


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    quiet_libraries()
    if args.command is None:
        from dpo_tutor.commands import tui

        return tui.run(args)
    name = f"dpo-tutor {args.command}"
    module = importlib.import_module(f"dpo_tutor.commands.{args.command}")
    try:
        return int(module.run(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`... | head`): stop writing, and keep the interpreter's final flush from
        # raising the same error again on the closed pipe.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        print(f"{name}: the output was closed before it ended (broken pipe)", file=sys.stderr)
        return 141
    except RecursionError:
        print(f"{name}: {what_was_read(args)} is nested too deeply to read (more levels than Python's "
              f"limit of {sys.getrecursionlimit():,}); is it really preference data?", file=sys.stderr)
        return 2
    except MemoryError:
        print(f"{name}: ran out of memory reading {what_was_read(args)}; try --max-rows", file=sys.stderr)
        return 2
    except Exception as exc:  # noqa: BLE001 - one line for the person, the traceback kept in a file
        with tempfile.NamedTemporaryFile("w", prefix="dpo-tutor-error-", suffix=".log", delete=False) as f:
            traceback.print_exc(file=f)
        print(f"{name}: unexpected {type(exc).__name__}: {exc} (the traceback is in {f.name})".splitlines()[0],
              file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
