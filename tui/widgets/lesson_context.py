"""What a lesson's widgets are handed besides their directive: where runs live, the learner's state,
and the facts of the runs a lesson reads (read once per lesson shown)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from dpo_tutor.engine.lessons import LearnerState
from dpo_tutor.engine.run_facts import Missing, RunFacts, pick_facts


@dataclass
class LessonContext:
    runs_dir: Path | None = None
    learner: LearnerState = field(default_factory=LearnerState)
    _facts: dict[str, RunFacts | Missing] = field(default_factory=dict)

    def facts(self, which: str) -> RunFacts | Missing:
        """The run `which` names ('latest' or 'recording:<name>'), read once and kept."""
        if which not in self._facts:
            self._facts[which] = pick_facts(which, self.runs_dir)
        return self._facts[which]

    def forget_runs(self) -> None:
        """Read the runs afresh next time (a lesson is shown again: a run may have moved on)."""
        self._facts.clear()
