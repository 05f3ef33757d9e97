"""Plain-text charts for reports and terminals without plotext (the engine never imports plotext)."""

from __future__ import annotations

import math
from collections.abc import Sequence

BLOCKS = " ▁▂▃▄▅▆▇█"


def _finite(values: Sequence[float]) -> list[float]:
    return [v for v in values if isinstance(v, (int, float)) and math.isfinite(v)]


def downsample(points: Sequence[tuple[float, float]], width: int) -> list[tuple[float, float]]:
    """At most `width` points: the mean of each of `width` equal slices of the series."""
    points = list(points)
    if len(points) <= width:
        return points
    out = []
    for i in range(width):
        chunk = points[i * len(points) // width : (i + 1) * len(points) // width]
        if chunk:
            out.append((chunk[-1][0], sum(p[1] for p in chunk) / len(chunk)))
    return out


def sparkline(values: Sequence[float], width: int = 60) -> str:
    """One line of block characters, scaled between the series' min and max."""
    values = _finite(values)
    if not values:
        return ""
    points = downsample(list(enumerate(values)), width)
    lo, hi = min(p[1] for p in points), max(p[1] for p in points)
    span = hi - lo or 1.0
    return "".join(BLOCKS[1 + round((v - lo) / span * (len(BLOCKS) - 2))] for _, v in points)


def line_chart(
    points: Sequence[tuple[float, float]],
    *,
    title: str = "",
    width: int = 60,
    height: int = 10,
    x_label: str = "step",
) -> str:
    """A small scatter-line chart in text: y axis labels on the left, x range underneath."""
    points = [(float(x), float(y)) for x, y in points if math.isfinite(y)]
    if not points:
        return f"{title}: (no data)" if title else "(no data)"
    points = downsample(points, width)
    ys = [p[1] for p in points]
    lo, hi = min(ys), max(ys)
    if hi == lo:
        lo, hi = lo - 0.5, hi + 0.5
    grid = [[" "] * len(points) for _ in range(height)]
    for col, (_, y) in enumerate(points):
        row = round((hi - y) / (hi - lo) * (height - 1))
        grid[row][col] = "•"
    labels = [f"{hi - i * (hi - lo) / (height - 1):.3g}" for i in range(height)]
    pad = max(len(s) for s in labels)
    lines = [title] if title else []
    for i, row in enumerate(grid):
        label = labels[i] if i in (0, height // 2, height - 1) else ""
        lines.append(f"{label:>{pad}} ┤{''.join(row)}")
    lines.append(f"{'':>{pad}} └{'─' * len(points)}")
    x0, x1 = points[0][0], points[-1][0]
    lines.append(f"{'':>{pad}}  {x_label} {x0:g} … {x1:g}")
    return "\n".join(lines)


def bar(value: float, width: int = 20, lo: float = 0.0, hi: float = 1.0) -> str:
    """A horizontal bar for a value in [lo, hi]."""
    if not math.isfinite(value):
        return ""
    frac = min(1.0, max(0.0, (value - lo) / (hi - lo or 1.0)))
    full = round(frac * width)
    return "█" * full + "·" * (width - full)
