"""Switches for measuring one change against the code without it (BENCHMARKS.md's variant runs).

Each is on unless its environment variable is "0": `DPO_TUTOR_LOG_LAG` (lagged_log.py),
`DPO_TUTOR_NONBLOCKING` (driver.py), `DPO_TUTOR_GRAPH_REFERENCE` (trainer.py), `DPO_TUTOR_FAST_PREP`
(fast_prep.py), `DPO_TUTOR_PACK` (packing.py), `DPO_TUTOR_GRAPH_ROOMIER` (graphed_step.py),
`DPO_TUTOR_REFERENCE_EVAL` (trainer.py), `DPO_TUTOR_LEAN_IMPORTS` (lean_imports.py).
"""

from __future__ import annotations

import os


def switched_on(name: str) -> bool:
    """Whether the switch `name` (an environment variable) is on: unset or anything but "0"."""
    return os.environ.get(name, "1").strip() != "0"
