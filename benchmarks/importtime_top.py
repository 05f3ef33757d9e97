"""The slowest imports of a `python -X importtime` log, by cumulative time, the outermost ones first.

usage: python -X importtime -c "import torch, trl" 2> imports.txt; python benchmarks/importtime_top.py imports.txt [N]
"""

from __future__ import annotations

import re
import sys

LINE = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)")


def top(path: str, count: int = 25) -> list[tuple[float, int, str]]:
    """(cumulative seconds, nesting depth, module) of the `count` slowest imports at depth <= 2."""
    rows = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            match = LINE.match(line)
            if match:
                rows.append((int(match.group(2)) / 1e6, len(match.group(3)) // 2, match.group(4)))
    rows = [r for r in rows if r[1] <= 2]
    return sorted(rows, reverse=True)[:count]


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    rows = top(argv[0], int(argv[1]) if len(argv) > 1 else 25)
    total = sum(r[0] for r in rows if r[1] == 0)
    print("| module | depth | cumulative s |\n|---|---:|---:|")
    for seconds, depth, name in rows:
        print(f"| {name} | {depth} | {seconds:.2f} |")
    print(f"(outermost imports listed: {total:.2f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
