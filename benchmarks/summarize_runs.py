"""The `dpo-tutor bench` table for runs that already exist: each argument is a run folder (its
events.jsonl), named by the folder. Used when a bench call was cut short or a pipeline was run on its
own with `dpo-tutor train` and the same flags.

usage: python benchmarks/summarize_runs.py /tmp/bench/trl-defaults /tmp/bench/ours-unsloth ...
"""

from __future__ import annotations

import sys
from pathlib import Path

from dpo_tutor.benchmarks.bench import PIPELINES, Pipeline, format_startup_table, format_table, summarize_run


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    results = []
    for folder in map(Path, argv):
        pipeline = PIPELINES.get(folder.name, Pipeline(folder.name, folder.name, ()))
        results.append(summarize_run(folder, pipeline))
    print(format_table(results))
    print(format_startup_table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
