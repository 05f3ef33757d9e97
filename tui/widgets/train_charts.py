"""Live charts of a run with textual-plotext: loss, reward margin, preference accuracy, and the chosen
and rejected rewards together (both fall while the margin grows, as the lesson explains).

Charts never redraw per event: the screen calls `TrainCharts.redraw(store, limit=1)` every 0.125 s inside
`app.batch_update()`, so the four charts take turns and each is redrawn about every 0.5 s, and only
when the store moved or its size changed.
Series are downsampled to about the chart's width; raw points are drawn faint, the smoothed curve
bold, and eval points (when the run has them) as markers.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual.app import ComposeResult
from textual.containers import Grid
from textual_plotext import PlotextPlot

from ..metrics_store import ACCURACY, CHOSEN, LOSS, MARGIN, REJECTED, MetricsStore


@dataclass(frozen=True)
class ChartSpec:
    id: str
    title: str
    metrics: tuple[tuple[str, str, str], ...]  # (metric, label, colour)
    ylim: tuple[float, float] | None = None
    short: str = ""  # the title where the long one does not fit the chart's width

    def title_for(self, width: int) -> str:
        # plotext drops a title wider than the plot beside its y-axis labels (up to ~6 columns)
        return self.title if len(self.title) <= width - 8 or not self.short else self.short


CHARTS = (
    ChartSpec("chart-loss", "loss (ln 2 = 0.693 at the start)", ((LOSS, "loss", "cyan"),), short="loss"),
    ChartSpec("chart-margin", "reward margin (chosen - rejected)", ((MARGIN, "margin", "green"),),
              short="reward margin"),
    ChartSpec("chart-accuracy", "preference accuracy", ((ACCURACY, "accuracy", "magenta"),), (0.0, 1.0),
              short="accuracy"),
    ChartSpec(
        "chart-rewards",
        "rewards: chosen and rejected",
        ((CHOSEN, "chosen", "green"), (REJECTED, "rejected", "red")),
        short="chosen / rejected",
    ),
)


class MetricChart(PlotextPlot):
    """One chart; `draw(store)` rebuilds its figure from the store."""

    def __init__(self, spec: ChartSpec) -> None:
        super().__init__(id=spec.id)
        self.spec = spec
        self.drawn_version = -1
        self.drawn_store: MetricsStore | None = None
        self.drawn_size = (0, 0)
        self.points_drawn = 0
        self._label()  # before the first step too: four titled, empty axes, not blank boxes

    def _label(self) -> None:
        self.plt.title(self.spec.title_for(self.size.width))  # a narrow chart keeps a title that fits
        self.plt.xlabel("step")

    def on_resize(self) -> None:
        self._label()

    def needs_redraw(self, store: MetricsStore) -> bool:
        return (
            store is not self.drawn_store
            or store.version != self.drawn_version
            or tuple(self.size) != self.drawn_size
        )

    def draw(self, store: MetricsStore) -> None:
        plt = self.plt
        plt.clear_data()
        self._label()
        max_points = max(20, self.size.width - 10)
        legend = self.size.height >= 12 and self.size.width >= 40  # a small chart keeps its room for data
        drawn = 0
        for metric, label, colour in self.spec.metrics:
            view = store.view(metric, max_points)
            if view.steps:
                plt.scatter(view.steps, view.raw, marker="dot", color=colour, label=f"{label} raw" if legend else None)
                plt.plot(view.steps, view.smooth, marker="braille", color=colour,
                         label=f"{label} smoothed" if legend else None)
                drawn = max(drawn, len(view.steps))
            points = store.eval_view(metric, max_points)
            if points.steps:
                plt.scatter(points.steps, points.raw, marker="x", color="yellow",
                            label=f"eval {label}" if legend else None)
        if self.spec.ylim is not None and drawn:
            plt.ylim(*self.spec.ylim)
        self.points_drawn = drawn
        self.drawn_version = store.version
        self.drawn_store = store
        self.drawn_size = tuple(self.size)
        self.refresh()


class TrainCharts(Grid):
    DEFAULT_CSS = """
    TrainCharts { grid-size: 2 2; grid-gutter: 0 1; height: 1fr; }
    TrainCharts MetricChart { height: 1fr; min-height: 6; }
    """

    def compose(self) -> ComposeResult:
        for spec in CHARTS:
            yield MetricChart(spec)

    _next = 0

    def redraw(self, store: MetricsStore, limit: int | None = None) -> int:
        """Redraw the charts whose data or size changed, at most `limit` of them (taking turns);
        return how many were redrawn. One chart per tick keeps each frame short while steps stream in."""
        charts = list(self.query(MetricChart))
        redrawn = 0
        for i in range(len(charts)):
            chart = charts[(self._next + i) % len(charts)]
            if limit is not None and redrawn >= limit:
                break
            if chart.needs_redraw(store):
                chart.draw(store)
                redrawn += 1
                self._next = (charts.index(chart) + 1) % len(charts)
        return redrawn
