"""The quality report of a preference data set: what was read, what is usable, and why the rest is not.

A `ReportBuilder` watches every row an adapter reads: adapters call `drop(reason, where)` for rows they
cannot turn into a triplet, and `accept(triplet, where)` runs the checks every format shares (a side
that is not a string, an empty side, chosen == rejected, a duplicate, too many tokens). The finished
`QualityReport` is plain data (`to_dict()` / `from_dict()`), cached per source by `report_cache.py`.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from ..paths import display_path
from .triplet import Triplet

# The reasons a row is not used, in the order a report lists them.
EMPTY = "empty side"
IDENTICAL = "chosen == rejected"
PROMPTS_DISAGREE = "prompts disagree"
NOT_A_STRING = "not a string"
DUPLICATE = "duplicate"
TOO_LONG = "too long"
EXAMPLES_PER_REASON = 5


def length_stats(values: list[int]) -> dict[str, float]:
    """min / mean / median / p95 / max of a list of lengths (all 0 when empty)."""
    if not values:
        return {"count": 0, "min": 0, "mean": 0.0, "median": 0, "p95": 0, "max": 0}
    ordered = sorted(values)
    n = len(ordered)
    return {
        "count": n,
        "min": ordered[0],
        "mean": round(sum(ordered) / n, 1),
        "median": ordered[n // 2],
        "p95": ordered[min(n - 1, int(n * 0.95))],
        "max": ordered[-1],
    }


@dataclass
class QualityReport:
    """What a data set holds and what is wrong with it. Lengths are in characters."""

    source: str = ""
    format: str = ""
    rows_read: int = 0
    usable: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    examples: dict[str, list[str]] = field(default_factory=dict)  # reason -> first few locations
    lengths: dict[str, dict[str, float]] = field(default_factory=dict)  # prompt/chosen/rejected -> stats
    chosen_longer: int = 0
    rejected_longer: int = 0
    same_length: int = 0
    turns: dict[int, int] = field(default_factory=dict)  # user turns in the prompt -> triplets
    labels: dict[str, Any] = field(default_factory=dict)  # format-specific (SHP labels, oasst ranks)

    @property
    def chosen_longer_share(self) -> float:
        """How often the chosen reply is the longer one: the length bias DPO can learn."""
        return self.chosen_longer / self.usable if self.usable else 0.0

    @property
    def dropped_total(self) -> int:
        return sum(self.dropped.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "format": self.format,
            "rows_read": self.rows_read,
            "usable": self.usable,
            "dropped": dict(self.dropped),
            "examples": {k: list(v) for k, v in self.examples.items()},
            "lengths": {k: dict(v) for k, v in self.lengths.items()},
            "chosen_longer": self.chosen_longer,
            "rejected_longer": self.rejected_longer,
            "same_length": self.same_length,
            "chosen_longer_share": round(self.chosen_longer_share, 4),
            "turns": {str(k): v for k, v in sorted(self.turns.items())},
            "labels": self.labels,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> QualityReport:
        return cls(
            source=d.get("source", ""),
            format=d.get("format", ""),
            rows_read=int(d.get("rows_read", 0)),
            usable=int(d.get("usable", 0)),
            dropped=dict(d.get("dropped", {})),
            examples={k: list(v) for k, v in d.get("examples", {}).items()},
            lengths={k: dict(v) for k, v in d.get("lengths", {}).items()},
            chosen_longer=int(d.get("chosen_longer", 0)),
            rejected_longer=int(d.get("rejected_longer", 0)),
            same_length=int(d.get("same_length", 0)),
            turns={int(k): v for k, v in d.get("turns", {}).items()},
            labels=dict(d.get("labels", {})),
        )

    def summary_lines(self) -> list[str]:
        """The report as aligned lines of plain text (the CLI prints these, the Stats tab shows them).

        Numbers are right-aligned in columns; format-specific counts (SHP labels, oasst ranks) are listed
        one per line, never printed as a Python dict.
        """
        key_w = 12
        lines = [
            f"{'source':<{key_w}}{display_path(self.source)}",
            f"{'format':<{key_w}}{self.format}",
            f"{'rows read':<{key_w}}{self.rows_read:>9,}",
            f"{'usable':<{key_w}}{self.usable:>9,}",
            f"{'dropped':<{key_w}}{self.dropped_total:>9,}",
        ]
        prefix = self.source.replace("\\", "/").rsplit("/", 1)[-1] + ":" if self.source else ""
        reason_w = max((len(r) for r in self.dropped), default=0) + 1
        for reason, count in self.dropped.items():
            where = [w[len(prefix):] if prefix and w.startswith(prefix) else w for w in self.examples.get(reason, [])]
            shown = ", ".join(where[:3])
            label = "row" if prefix and len(where) == 1 else "rows" if prefix else "e.g."
            lines.append(f"  {reason:<{reason_w}}{count:>6,}" + (f"   {label} {shown}" if shown else ""))
        sides = [side for side in ("prompt", "chosen", "rejected") if self.lengths.get(side)]
        if sides:
            cols = ("min", "median", "mean", "p95", "max")
            lines.append(f"{'characters':<{key_w}}" + "".join(f"{c:>9}" for c in cols))
            for side in sides:
                stats = self.lengths[side]
                lines.append(f"  {side:<{key_w - 2}}" + "".join(f"{_number(stats.get(c, 0)):>9}" for c in cols))
        lines.append(f"{'length bias':<{key_w}}chosen longer in {self.chosen_longer_share:.1%} of usable triplets")
        lines.append(f"{'':<{key_w}}({self.chosen_longer:,} longer, {self.rejected_longer:,} shorter, "
                     f"{self.same_length:,} equal)")
        turns = [f"{k}: {v:,}" for k, v in sorted(self.turns.items())]
        for i in range(0, len(turns), 8):  # eight to a line, so the line fits 80 columns
            lines.append(f"{'turns' if i == 0 else '':<{key_w}}" + "  ".join(turns[i:i + 8]))
        for key, value in self.labels.items():
            if isinstance(value, dict):
                lines.append(str(key))
                width = max((len(str(k)) for k in value), default=0) + 1
                shown = [_number(v) for v in value.values()]
                num_w = max((len(v) for v, raw in zip(shown, value.values(), strict=True) if isinstance(raw, (int, float))),
                            default=0)
                lines += [f"  {str(k):<{width}}" + (v.rjust(num_w) if isinstance(raw, (int, float)) else v)
                          for (k, raw), v in zip(value.items(), shown, strict=True)]
            else:
                lines.append(f"{str(key):<{key_w}}{_number(value)}")
        return lines


def _number(value: Any) -> str:
    """A count with thousands separators, a mean with one decimal, a mapping as `k: v · k: v`."""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.1f}" if not value.is_integer() else f"{int(value):,}"
    if isinstance(value, dict):
        return " · ".join(f"{k}: {_number(v)}" for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return ", ".join(_number(v) for v in value)
    return str(value)


def too_long_check(tokenizer: Any, max_length: int):
    """A function triplet -> bool that says when prompt + the longer reply exceeds max_length tokens."""

    def check(t: Triplet) -> bool:
        prompt = "\n".join(m["content"] for m in t.prompt)
        longer = t.chosen if len(t.chosen) >= len(t.rejected) else t.rejected
        ids = tokenizer(prompt + "\n" + longer, add_special_tokens=False)["input_ids"]
        return len(ids) > max_length

    return check


class ReportBuilder:
    """Collects drops and accepted triplets while a data set is read."""

    def __init__(self, source: str, fmt: str = "", *, tokenizer: Any = None, max_length: int | None = None):
        self.report = QualityReport(source=source, format=fmt)
        self._dropped: Counter[str] = Counter()
        self._seen: set[int] = set()
        self._prompt_len: list[int] = []
        self._chosen_len: list[int] = []
        self._rejected_len: list[int] = []
        self._turns: Counter[int] = Counter()
        self._too_long = too_long_check(tokenizer, max_length) if tokenizer is not None and max_length else None

    def read(self, n: int = 1) -> None:
        self.report.rows_read += n

    def drop(self, reason: str, where: str) -> None:
        self._dropped[reason] += 1
        examples = self.report.examples.setdefault(reason, [])
        if len(examples) < EXAMPLES_PER_REASON:
            examples.append(where)

    def accept(self, t: Triplet, where: str) -> bool:
        """Run the shared checks; count the triplet as usable and return True when it passes."""
        chosen, rejected = t.chosen, t.rejected
        contents = [m.get("content") for m in t.prompt]
        if not (isinstance(chosen, str) and isinstance(rejected, str) and all(isinstance(c, str) for c in contents)):
            self.drop(NOT_A_STRING, where)
            return False
        if not contents or not contents[-1].strip() or not chosen.strip() or not rejected.strip():
            self.drop(EMPTY, where)
            return False
        if chosen.strip() == rejected.strip():
            self.drop(IDENTICAL, where)
            return False
        key = hash((tuple(contents), chosen, rejected))
        if key in self._seen:
            self.drop(DUPLICATE, where)
            return False
        if self._too_long is not None and self._too_long(t):
            self.drop(TOO_LONG, where)
            return False
        self._seen.add(key)
        c, r = len(chosen), len(rejected)
        self._prompt_len.append(sum(map(len, contents)))
        self._chosen_len.append(c)
        self._rejected_len.append(r)
        if c > r:
            self.report.chosen_longer += 1
        elif c < r:
            self.report.rejected_longer += 1
        else:
            self.report.same_length += 1
        self._turns[sum(1 for m in t.prompt if m["role"] == "user")] += 1
        self.report.usable += 1
        return True

    def finish(self) -> QualityReport:
        order = [EMPTY, IDENTICAL, PROMPTS_DISAGREE, NOT_A_STRING, DUPLICATE, TOO_LONG]
        ranked = sorted(self._dropped.items(), key=lambda kv: (order.index(kv[0]) if kv[0] in order else 99, kv[0]))
        self.report.dropped = dict(ranked)
        self.report.lengths = {
            "prompt": length_stats(self._prompt_len),
            "chosen": length_stats(self._chosen_len),
            "rejected": length_stats(self._rejected_len),
        }
        self.report.turns = dict(sorted(self._turns.items()))
        return self.report
