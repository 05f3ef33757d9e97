"""The log pane: the training process's stderr (tailed from the run folder), newest at the bottom."""

from __future__ import annotations

from textual.widgets import Log

from ..run_state import RunState


class TrainLog(Log):
    DEFAULT_CSS = """
    TrainLog { height: 8; border-top: solid $panel; }
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(max_lines=2000, highlight=False, **kwargs)
        self._state: RunState | None = None
        self._seen = 0

    def show(self, state: RunState | None) -> int:
        """Write the state's log lines not shown yet; a different run clears the pane first."""
        if state is not self._state:
            self.clear()
            self._state = state
            self._seen = 0
        if state is None:
            return 0
        lines = state.new_log_lines(self._seen)
        self._seen = state.log_count
        if lines:
            self.write_lines(lines)
        return len(lines)
