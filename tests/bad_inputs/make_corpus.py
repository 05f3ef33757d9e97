"""Writes the bad-input corpus (run once; the files are committed). `python tests/bad_inputs/make_corpus.py`.

Each file is one way preference data or a training config can be wrong; tests/test_bad_inputs.py says
what message each must give.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"
CONFIG = HERE / "config"


def row(i: int) -> str:
    return json.dumps({"prompt": f"Question {i}?", "chosen": f"A careful answer {i}.", "rejected": f"No {i}."})


def good_rows(n: int) -> str:
    return "".join(row(i) + "\n" for i in range(n))


def write(name: str, data: str | bytes, folder: Path = DATA) -> None:
    path = folder / name
    path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)


def main() -> None:
    DATA.mkdir(exist_ok=True)
    CONFIG.mkdir(exist_ok=True)
    # ---- data files ------------------------------------------------------------------------------
    write("array_broken_line3.json", '[\n  {"prompt": "a", "chosen": "b", "rejected": "c"},\n  {"prompt": "a" "chosen": "b"}\n]\n')
    write("jsonl_bad_line7.jsonl", good_rows(6) + '{"prompt": "q", "chosen": "a", "rejected": \n' + good_rows(2))
    (DATA / "latin1.jsonl").write_bytes(good_rows(2).encode() + '{"prompt": "Caf\xe9?", "chosen": "Oui", "rejected": "Non"}\n'.encode("latin-1"))
    write("utf16.jsonl", good_rows(3).encode("utf-16"))
    write("empty.jsonl", b"")
    write("whitespace_only.jsonl", "   \n\n\t  \n   \n")
    huge = '{"prompt": "q", "chosen": "' + "a" * (33 * 1024 * 1024) + '", "rejected": "b"}\n'
    write("enormous_row.jsonl.gz", gzip.compress(huge.encode(), compresslevel=9, mtime=0))
    write("csv_missing_columns.csv", "question,answer\nWhat is 2+2?,4\nCapital of France?,Paris\n")
    write("json_object_not_rows.json", json.dumps({"data": [{"prompt": "a", "chosen": "b", "rejected": "c"}], "version": 2}, indent=2) + "\n")
    write("chosen_not_string.jsonl", "".join(json.dumps({"prompt": f"q{i}", "chosen": i * 7, "rejected": {"text": "no"}}) + "\n" for i in range(5)))
    write("not_parquet.parquet", "this is a text file pretending to be parquet\n" * 4)
    write("not_gzip.jsonl.gz", bytes(range(0x80, 0x100)) * 8)
    write("truncated.jsonl.gz", gzip.compress(good_rows(200).encode(), mtime=0)[:300])
    write("array_of_strings.json", '["first", "second", "third"]\n')
    write("jsonl_list_line2.jsonl", row(0) + '\n["prompt", "chosen", "rejected"]\n' + row(2) + "\n")
    write("missing_rejected.jsonl", "".join(json.dumps({"prompt": f"q{i}", "chosen": f"a{i}"}) + "\n" for i in range(5)))
    write("empty_array.json", "[]\n")
    write("png_named_jsonl.jsonl", b"\x89PNG\r\n\x1a\n" + bytes(64))
    write("chosen_equals_rejected.jsonl", "".join(json.dumps({"prompt": f"q{i}", "chosen": "same", "rejected": "same"}) + "\n" for i in range(5)))
    write("empty_answers.jsonl", "".join(json.dumps({"prompt": f"q{i}", "chosen": "", "rejected": "  "}) + "\n" for i in range(5)))
    write("csv_semicolons.csv", "prompt;chosen;rejected\nq1;a1;b1\nq2;a2;b2\n")
    write("array_unterminated.json", '[\n  {"prompt": "a", "chosen": "b", "rejected": "c"},\n  {"prompt": "d", "chosen": "e", "rejected": "f"}\n')
    write("null_fields.jsonl", "".join(json.dumps({"prompt": None, "chosen": None, "rejected": None}) + "\n" for i in range(3)))
    write("prompt_bad_messages.jsonl", "".join(json.dumps({"prompt": [1, 2, 3], "chosen": "a", "rejected": "b"}) + "\n" for i in range(3)))
    write("hh_no_assistant.jsonl", "".join(json.dumps({"chosen": "just some text", "rejected": "other text"}) + "\n" for i in range(3)))
    write("array_object_then_number.json", '[{"prompt": "a", "chosen": "b", "rejected": "c"}, 42]\n')
    (DATA / "a_folder.jsonl").mkdir(exist_ok=True)
    write("a_folder.jsonl/.keep", "a folder named like a data file\n")
    # ---- training configs ------------------------------------------------------------------------
    configs = {
        "not_toml.toml": "this is = not [toml\nbeta: 0.1\n",
        "unknown_key.toml": "[train]\nbetta = 0.1\n",
        "negative_beta.toml": "[train]\nbeta = -0.5\n",
        "lr_string.toml": '[train]\nlearning_rate = "fast"\n',
        "batch_zero.toml": "[train]\nbatch_size = 0\n",
        "max_length_3.toml": "[train]\nmax_length = 3\n",
        "unknown_backend.toml": '[train]\nbackend = "tpu"\n',
        "columns_wrong_form.toml": '[train]\ncolumns = "prompt:question"\n',
        "columns_number.toml": "[train]\ncolumns = 5\n",
        "columns_no_rejected.toml": '[train]\n[train.columns]\nprompt = "q"\nchosen = "good"\n',
        "loss_type_unknown.toml": '[train]\nloss_type = "magic"\n',
        "epochs_zero.toml": "[train]\nepochs = 0\nmax_steps = 0\n",
        "model_empty.toml": '[train]\nmodel = ""\n',
        "merge_maybe.toml": '[train]\nmerge = "maybe"\n',
        "lora_dropout_big.toml": "[train]\nlora_dropout = 1.5\n",
        "max_steps_fraction.toml": "[train]\nmax_steps = 1.5\n",
        "data_missing_file.toml": '[train]\ndata = "does/not/exist.jsonl"\n',
        "model_missing_folder.toml": '[train]\nmodel = "./no/such/model-folder"\n',
        "train_not_table.toml": "train = 5\n",
        "lr_list.toml": "[train]\nlearning_rate = [0.1, 0.2]\n",
    }
    for name, text in configs.items():
        write(name, text, CONFIG)
    (CONFIG / "a_folder.toml").mkdir(exist_ok=True)
    write("a_folder.toml/.keep", "a folder named like a config file\n", CONFIG)
    write("latin1.toml", "[train]\n# caf\xe9\nbeta = 0.1\n".encode("latin-1"), CONFIG)


if __name__ == "__main__":
    main()
