"""`dpo-tutor` with no subcommand: open the Textual app."""

from __future__ import annotations

import argparse


def run(args: argparse.Namespace) -> int:
    from dpo_tutor.tui.app import make_app

    app = make_app(walkthrough=args.walkthrough, lesson=args.lesson, runs_dir=args.runs_dir)
    app.run()
    return app.return_code or 0
