"""Replaying a finished run's event log: at once, or paced like the original run at a chosen speed.

Pure functions, no Textual: the run watcher sleeps the delays this module computes.
"""

from __future__ import annotations

from typing import Any

# Replay speeds the Train screen offers: label -> speed (0 = everything at once).
SPEEDS: dict[str, float] = {
    "at once": 0.0,
    "1x (as recorded)": 1.0,
    "4x": 4.0,
    "16x": 16.0,
}

# A replay never waits longer than this between two events, whatever the speed: a classroom does not
# sit through a 40 s kernel compile or a long checkpoint save again.
MAX_GAP_S = 3.0


def replay_delays(events: list[dict[str, Any]], speed: float, max_gap: float = MAX_GAP_S) -> list[float]:
    """Seconds to wait before each event: the recorded gap / speed, capped at `max_gap`.

    `speed <= 0` means at once (all zeros). The first event comes without delay.
    """
    delays: list[float] = []
    previous: float | None = None
    for event in events:
        now = event.get("time")
        if speed <= 0 or previous is None or not isinstance(now, (int, float)):
            delays.append(0.0)
        else:
            gap = max(0.0, float(now) - previous) / speed
            delays.append(min(gap, max_gap))
        if isinstance(now, (int, float)):
            previous = float(now)
    return delays


def replay_duration(events: list[dict[str, Any]], speed: float, max_gap: float = MAX_GAP_S) -> float:
    return sum(replay_delays(events, speed, max_gap))
