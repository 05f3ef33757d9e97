"""Metric series of one run, kept in plain lists: no Textual here, so it is unit-tested on its own.

The run watcher adds every `step` and `eval` event; the charts ask for a `view()` of a series a few
times a second: the raw points and their smoothed curve, both downsampled to what a chart can show.
Smoothing is an exponential moving average with TensorBoard's debiasing (the first points are not
pulled towards zero). A resumed run can log a step it logged before (the engine restarts from the
last checkpoint): `truncate_after(step)` drops what came later, so the curve continues cleanly.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

# The metrics the Train screen charts (TRL's names).
LOSS = "loss"
MARGIN = "rewards/margins"
ACCURACY = "rewards/accuracies"
CHOSEN = "rewards/chosen"
REJECTED = "rewards/rejected"
EVAL_PREFIX = "eval_"


@dataclass
class Series:
    """One metric over steps, with its running smoothed value kept incrementally."""

    weight: float = 0.8
    steps: list[float] = field(default_factory=list)
    values: list[float] = field(default_factory=list)
    smooth: list[float] = field(default_factory=list)
    _ema: float = 0.0

    def add(self, step: float, value: float) -> None:
        if self.steps and step <= self.steps[-1]:
            self.truncate_after(step - 1e-9)
        self.steps.append(float(step))
        self.values.append(float(value))
        self._ema = self.weight * self._ema + (1 - self.weight) * float(value)
        debias = 1 - self.weight ** len(self.values) if self.weight > 0 else 1.0
        self.smooth.append(self._ema / debias)

    def truncate_after(self, step: float) -> None:
        """Drop the points logged after `step` and recompute the smoothed curve."""
        keep = [(s, v) for s, v in zip(self.steps, self.values, strict=True) if s <= step]
        self.steps, self.values, self.smooth, self._ema = [], [], [], 0.0
        for s, v in keep:
            self.add(s, v)

    def __len__(self) -> int:
        return len(self.steps)

    @property
    def last(self) -> float | None:
        return self.values[-1] if self.values else None


@dataclass(frozen=True)
class SeriesView:
    """What a chart draws: x (steps), raw y and smoothed y, at most `max_points` each."""

    steps: list[float]
    raw: list[float]
    smooth: list[float]
    total_points: int


def downsample(xs: list[float], ys: list[float], max_points: int) -> tuple[list[float], list[float]]:
    """Average consecutive points into at most `max_points` buckets (keeps the curve's shape and ends)."""
    n = len(xs)
    if max_points <= 0 or n <= max_points:
        return list(xs), list(ys)
    out_x: list[float] = []
    out_y: list[float] = []
    for b in range(max_points):
        lo = b * n // max_points
        hi = (b + 1) * n // max_points
        if hi <= lo:
            continue
        out_x.append(sum(xs[lo:hi]) / (hi - lo))
        out_y.append(sum(ys[lo:hi]) / (hi - lo))
    # The last point is the newest value: show it exactly, not averaged away.
    out_x[-1], out_y[-1] = xs[-1], ys[-1]
    return out_x, out_y


class MetricsStore:
    """Every numeric metric of a run's `step` and `eval` events, by name."""

    def __init__(self, smoothing: float = 0.8) -> None:
        self.smoothing = smoothing
        self.train: dict[str, Series] = {}
        self.eval: dict[str, Series] = {}
        self.version = 0  # bumps on every change: a chart redraws only when it moved

    def clear(self) -> None:
        self.train.clear()
        self.eval.clear()
        self.version += 1

    def _series(self, table: dict[str, Series], name: str) -> Series:
        series = table.get(name)
        if series is None:
            series = table[name] = Series(weight=self.smoothing)
        return series

    def add_step(self, step: float, metrics: dict[str, float]) -> None:
        for name, value in _numbers(metrics):
            self._series(self.train, name).add(step, value)
        self.version += 1

    def add_eval(self, step: float, metrics: dict[str, float]) -> None:
        for name, value in _numbers(metrics):
            self._series(self.eval, name).add(step, value)
        self.version += 1

    def truncate_after(self, step: float) -> None:
        """A resumed run restarts after `step`: forget anything logged later."""
        for series in (*self.train.values(), *self.eval.values()):
            series.truncate_after(step)
        self.version += 1

    def apply(self, event: dict) -> None:
        """Fold one event of the log into the store."""
        kind = event.get("type")
        if kind == "step":
            self.add_step(event.get("step", 0), event.get("metrics") or {})
        elif kind == "eval":
            self.add_eval(event.get("step", 0), event.get("metrics") or {})
        elif kind == "run_started" and event.get("resumed_from") is not None:
            self.truncate_after(float(event["resumed_from"]))

    def steps_logged(self) -> int:
        series = self.train.get(LOSS)
        return len(series) if series else 0

    def last(self, name: str) -> float | None:
        series = self.train.get(name)
        return series.last if series else None

    def view(self, name: str, max_points: int = 200, *, eval: bool = False) -> SeriesView:
        """The series `name`, raw and smoothed, downsampled to `max_points`."""
        series = (self.eval if eval else self.train).get(name)
        if series is None or not series.steps:
            return SeriesView([], [], [], 0)
        xs, raw = downsample(series.steps, series.values, max_points)
        _, smooth = downsample(series.steps, series.smooth, max_points)
        return SeriesView(xs, raw, smooth, len(series))

    def eval_view(self, name: str, max_points: int = 200) -> SeriesView:
        """Eval points for a train metric name (`loss` -> `eval_loss`)."""
        return self.view(EVAL_PREFIX + name, max_points, eval=True)


def _numbers(metrics: dict) -> Iterable[tuple[str, float]]:
    for name, value in metrics.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        if not math.isfinite(value):
            continue
        yield name, float(value)
