"""Bad input, the bundled sample, the split, rendering and the report cache."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from dpo_tutor.engine.data import sources
from dpo_tutor.engine.data.load import load_triplets, quality_report
from dpo_tutor.engine.data.render import render_pair, render_prompt, to_trl_record
from dpo_tutor.engine.data.sample import sample_path
from dpo_tutor.engine.data.split import prompt_key, train_heldout_split
from dpo_tutor.engine.data.triplet import Triplet
from dpo_tutor.engine.errors import DataError

FIXTURES = Path(__file__).parent / "fixtures" / "data"


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DPO_TUTOR_CACHE_DIR", str(tmp_path / "cache"))


# --- bad input: one clear line each ---------------------------------------------------------------

def one_line(source, **kwargs) -> str:
    with pytest.raises(DataError) as e:
        load_triplets(str(source), **kwargs)
    text = e.value.one_line()
    assert "\n" not in text
    return text


def test_broken_json_names_file_and_line():
    assert one_line(FIXTURES / "broken.jsonl").endswith("broken.jsonl:3: broken JSON: Expecting value at column 45")


def test_empty_and_whitespace_only_files(tmp_path):
    assert one_line(FIXTURES / "empty.jsonl").endswith("empty.jsonl: the file is empty")
    blank = tmp_path / "blank.jsonl"
    blank.write_text("\n \n\n")
    assert "nothing but whitespace" in one_line(blank)
    (tmp_path / "empty.json").write_text("[]")
    assert "the JSON array is empty" in one_line(tmp_path / "empty.json")


def test_wrong_encodings(tmp_path):
    latin1 = tmp_path / "latin1.jsonl"
    latin1.write_bytes('{"prompt": "caf\u00e9", "chosen": "a", "rejected": "b"}\n'.encode("latin-1"))
    assert "latin1.jsonl:1: not UTF-8 text (byte 0xe9" in one_line(latin1)
    utf16 = tmp_path / "utf16.jsonl"
    utf16.write_text('{"prompt": "a", "chosen": "b", "rejected": "c"}\n', encoding="utf-16")
    assert "UTF-16" in one_line(utf16)
    csv_latin1 = tmp_path / "latin1.csv"
    csv_latin1.write_bytes("prompt,chosen,rejected\nq,caf\u00e9,b\n".encode("latin-1"))
    assert "latin1.csv:" in one_line(csv_latin1) and "not UTF-8 text" in one_line(csv_latin1)
    array_latin1 = tmp_path / "latin1.json"
    array_latin1.write_bytes('[{"prompt": "q", "chosen": "caf\u00e9", "rejected": "b"}]'.encode("latin-1"))
    assert "latin1.json:1: not UTF-8 text" in one_line(array_latin1)
    bom = tmp_path / "bom.jsonl"
    bom.write_text('{"prompt": "a", "chosen": "b", "rejected": "c"}\n', encoding="utf-8-sig")
    assert load_triplets(str(bom)).report.usable == 1


def test_a_single_enormous_row(tmp_path, monkeypatch):
    monkeypatch.setattr(sources, "MAX_ROW_BYTES", 1000)
    big = tmp_path / "big.jsonl"
    big.write_text(json.dumps({"prompt": "p", "chosen": "x" * 5000, "rejected": "y"}) + "\n")
    assert "big.jsonl:1: one row is over" in one_line(big)


def test_a_row_that_is_not_an_object_and_binary_garbage(tmp_path):
    lst = tmp_path / "list.jsonl"
    lst.write_text('{"prompt": "a", "chosen": "b", "rejected": "c"}\n[1, 2]\n')
    assert "list.jsonl:2: expected a JSON object per line, found a list" in one_line(lst)
    png = tmp_path / "image.jsonl"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)))
    assert "not JSON, JSON Lines, Parquet or CSV" in one_line(png)
    bad_parquet = tmp_path / "x.parquet"
    bad_parquet.write_text("not parquet")
    assert "not a readable Parquet file" in one_line(bad_parquet)


def test_missing_file_and_folder(tmp_path):
    assert "no such file" in one_line(tmp_path / "nope.jsonl")
    assert "is a folder" in one_line(tmp_path)


def test_values_that_look_like_paths_are_only_text(tmp_path):
    """Nothing a dataset holds is opened or run: a path-like value stays a string."""
    f = tmp_path / "paths.jsonl"
    f.write_text(json.dumps({"prompt": "/etc/passwd", "chosen": "__import__('os').system('false')",
                             "rejected": str(FIXTURES / "hh.jsonl")}) + "\n")
    t = load_triplets(str(f)).triplets[0]
    assert t.prompt[0]["content"] == "/etc/passwd" and t.rejected.endswith("hh.jsonl")


def test_no_usable_rows(tmp_path):
    f = tmp_path / "same.jsonl"
    f.write_text(json.dumps({"prompt": "p", "chosen": "same", "rejected": "same"}) + "\n")
    assert "no usable triplets in 1 rows (dropped: chosen == rejected 1)" in one_line(f)


# --- the bundled sample ---------------------------------------------------------------------------

def test_sample_is_the_default_and_has_at_least_60_usable_triplets():
    r = load_triplets()
    assert r.source == str(sample_path()) and r.format == "trl"
    assert r.report.usable >= 60 and not r.report.dropped
    categories = {t.metadata["category"] for t in r.triplets}
    assert categories == {"helpful", "harmless", "honest"}
    assert sum(1 for t in r.triplets if t.turns > 1) >= 5
    prompts = {t.prompt_text for t in r.triplets}
    assert {"How do I bake a cake?", "How to break into a car?", "What's the cure for cancer?"} <= prompts
    assert len(prompts) == len(r.triplets)
    assert max(len(t.chosen) for t in r.triplets) < 700  # moderate: the CPU training run uses it


# --- split ----------------------------------------------------------------------------------------

def _triplets(n_prompts: int, per_prompt: int) -> list[Triplet]:
    return [
        Triplet(prompt=({"role": "user", "content": f"question {p}"},), chosen=f"good {p}.{k}",
                rejected=f"bad {p}.{k}", id=f"{p}.{k}")
        for p in range(n_prompts) for k in range(per_prompt)
    ]


def test_split_is_deterministic_grouped_and_near_the_fraction():
    data = _triplets(50, 3)
    train, held = train_heldout_split(data, fraction=0.2, seed=7)
    assert len(train) + len(held) == 150 and len(held) == 30
    assert not {prompt_key(t) for t in train} & {prompt_key(t) for t in held}
    again = train_heldout_split(data, fraction=0.2, seed=7)
    assert [t.id for t in again[1]] == [t.id for t in held]
    other = train_heldout_split(data, fraction=0.2, seed=8)
    assert [t.id for t in other[1]] != [t.id for t in held]


def test_split_on_real_multi_pair_prompts():
    r = load_triplets(str(FIXTURES / "oasst_flat.jsonl"))
    train, held = train_heldout_split(r.triplets, fraction=0.5)
    assert held and train
    assert not {prompt_key(t) for t in train} & {prompt_key(t) for t in held}


def test_split_edge_cases():
    data = _triplets(1, 4)
    assert train_heldout_split(data, 0.5) == (data, [])
    assert train_heldout_split(_triplets(3, 1), 0.0)[1] == []
    with pytest.raises(ValueError):
        train_heldout_split(data, 1.0)


# --- render ---------------------------------------------------------------------------------------

T = Triplet(
    prompt=({"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"},
            {"role": "user", "content": "How do I bake a cake?"}),
    chosen="Mix and bake.", rejected="Buy one.",
)


def test_trl_record_is_conversational_explicit():
    rec = to_trl_record(T)
    assert rec["prompt"][-1] == {"role": "user", "content": "How do I bake a cake?"}
    assert rec["chosen"] == [{"role": "assistant", "content": "Mix and bake."}]
    assert rec["rejected"] == [{"role": "assistant", "content": "Buy one."}]


def test_render_without_a_chat_template_is_plain():
    class NoTemplate:
        chat_template = None

    assert render_prompt(T, NoTemplate()) == "User: Hi\nAssistant: Hello!\nUser: How do I bake a cake?\nAssistant:"
    assert render_pair(T, None) == (render_prompt(T, None), " Mix and bake.", " Buy one.")


def test_render_with_a_real_chat_template():
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    tok = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.WordLevel({"[UNK]": 0}, unk_token="[UNK]")))
    tok.chat_template = (
        "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    )
    prompt, chosen, rejected = render_pair(T, tok)
    assert prompt.endswith("<|im_start|>user\nHow do I bake a cake?<|im_end|>\n<|im_start|>assistant\n")
    assert chosen == "Mix and bake.<|im_end|>\n" and rejected == "Buy one.<|im_end|>\n"


def test_too_long_in_tokens_with_a_tokenizer():
    class CharTokenizer:
        name_or_path = "chars"

        def __call__(self, text, add_special_tokens=False):
            return {"input_ids": list(range(len(text)))}

    r = load_triplets(str(FIXTURES / "trl_standard.jsonl"), tokenizer=CharTokenizer(), max_length=20)
    assert r.report.dropped == {"too long": 1} and r.report.usable == 1


# --- report and cache -----------------------------------------------------------------------------

def test_report_numbers_and_json(tmp_path):
    r = load_triplets(str(FIXTURES / "trl_standard.jsonl"))
    d = r.report.to_dict()
    assert d["rows_read"] == 2 and d["usable"] == 2 and d["format"] == "trl"
    assert d["lengths"]["chosen"]["max"] == len("0 degrees Celsius.")
    assert d["chosen_longer"] == 0 and d["rejected_longer"] == 2 and d["chosen_longer_share"] == 0.0
    json.dumps(d)


def test_report_is_cached_per_file_and_invalidated_by_a_change(tmp_path):
    f = tmp_path / "d.jsonl"
    f.write_text((FIXTURES / "trl_standard.jsonl").read_text())
    first = quality_report(str(f))
    assert first.usable == 2
    cached = list((tmp_path / "cache" / "data-reports").glob("*.json"))
    assert len(cached) == 1
    assert quality_report(str(f)).to_dict() == first.to_dict()
    f.write_text(f.read_text() + json.dumps({"prompt": "x", "chosen": "y", "rejected": "z"}) + "\n")
    assert quality_report(str(f)).usable == 3


def test_the_data_engine_imports_no_ui_and_nothing_heavy():
    import subprocess
    import sys

    code = (
        "import sys\n"
        "import dpo_tutor.engine.data.load, dpo_tutor.engine.data.browse, dpo_tutor.engine.data.render\n"
        "import dpo_tutor.engine.data.split\n"
        "from dpo_tutor.engine.data.load import load_triplets\n"
        "load_triplets()\n"
        "bad = [m for m in ('textual', 'rich', 'plotext', 'torch', 'transformers', 'datasets') if m in sys.modules]\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
