"""The two start-up passes over the pairs, made cheaper without changing what they produce.

Why ours: before the first step TRL tokenizes every pair and scores the reference model on each, a large
part of a run's start-up. Both are TRL's passes; both are kept, in a cheaper form:

- Tokenizing: TRL renders each pair's three chat templates and tokenizes them one row at a time (three
  tokenizer calls per pair). `tokenize_pairs` renders the same templates and tokenizes a thousand rows
  per call (the Rust tokenizer splits a batch over threads), then cuts prompt and completions exactly
  as TRL's `tokenize_fn` does. `apply_chat_template(..., tokenize=True)` is rendering followed by
  `tokenizer(text, add_special_tokens=False)`, so the ids are the same; a test compares them with
  TRL's on real pairs. Anything else (non-chat data, tools, processors, several processes) keeps TRL's.
- The reference pass: TRL scores the pairs in their order, so each batch is padded to its longest
  row (with 512-token limits, often twice the tokens of an average row). `longest_first` gives the
  order in which to score them, longest first (the largest batch, and its memory, comes first); the
  log-probs are then put back in the rows' own order.
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger("dpo_tutor.train")

TOKENIZE_BATCH = 1000  # rows rendered and tokenized per call
def batched_tokenization_applies(dataset: Any, processing_class: Any, world: int) -> bool:
    """Whether `tokenize_pairs` computes what TRL's preparation would for this dataset."""
    from datasets import Dataset
    from transformers import PreTrainedTokenizerBase

    if world > 1 or not isinstance(dataset, Dataset) or len(dataset) == 0:
        return False
    if not isinstance(processing_class, PreTrainedTokenizerBase) or not getattr(processing_class, "chat_template", None):
        return False
    if set(dataset.column_names) != {"prompt", "chosen", "rejected"}:
        return False  # tools, chat_template_kwargs, images, already tokenized: TRL's path
    first = dataset[0]
    return all(isinstance(first[k], list) and first[k] and isinstance(first[k][0], dict) for k in first)


def tokenize_pairs(dataset: Any, processing_class: Any, args: Any, name: str) -> Any:
    """TRL's `_prepare_dataset` for conversational pairs with a prompt (our records), batched:
    prompt_ids / chosen_ids / rejected_ids added, then the pairs whose prompt alone fills max_length
    dropped (keep_start truncation), as TRL does."""
    from trl.data_utils import common_prefix_length

    render = processing_class.apply_chat_template
    warned = False

    def tokenize(batch: dict[str, list]) -> dict[str, list]:
        nonlocal warned
        prompts = [render(p, tokenize=False, add_generation_prompt=True) for p in batch["prompt"]]
        chosen = [render(p + c, tokenize=False) for p, c in zip(batch["prompt"], batch["chosen"], strict=True)]
        rejected = [render(p + r, tokenize=False) for p, r in zip(batch["prompt"], batch["rejected"], strict=True)]
        ids = processing_class(prompts + chosen + rejected, add_special_tokens=False)["input_ids"]
        n = len(prompts)
        out: dict[str, list] = {"prompt_ids": [], "chosen_ids": [], "rejected_ids": []}
        for prompt_ids, chosen_ids, rejected_ids in zip(ids[:n], ids[n:2 * n], ids[2 * n:], strict=True):
            cut = min(common_prefix_length(prompt_ids, chosen_ids), common_prefix_length(prompt_ids, rejected_ids))
            if cut < len(prompt_ids) and not warned:
                warned = True
                log.warning("the tokenized prompt is not a prefix of prompt + completion: the completion starts "
                            "where they diverge (as TRL does)")
            out["prompt_ids"].append(prompt_ids[:cut])
            out["chosen_ids"].append(chosen_ids[cut:])
            out["rejected_ids"].append(rejected_ids[cut:])
        return out

    dataset = dataset.map(tokenize, batched=True, batch_size=TOKENIZE_BATCH, desc=f"Tokenizing {name} dataset")
    if args.max_length is not None and args.truncation_mode == "keep_start":
        limit = args.max_length
        dataset = dataset.filter(lambda batch: [len(p) < limit for p in batch["prompt_ids"]], batched=True,
                                 batch_size=TOKENIZE_BATCH, desc=f"Dropping fully truncated examples from {name} dataset")
    return dataset


def pair_lengths(dataset: Any) -> list[int]:
    """Tokens of prompt + the longer answer, for each tokenized preference row."""
    return [
        len(p) + max(len(c), len(r))
        for p, c, r in zip(dataset["prompt_ids"], dataset["chosen_ids"], dataset["rejected_ids"], strict=True)
    ]


def longest_first(dataset: Any) -> list[int] | None:
    """Row indices from the longest pair (prompt + its longer answer) to the shortest; None when the
    rows are in that order already."""
    lengths = pair_lengths(dataset)
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    return None if order == list(range(len(lengths))) else order


def inverse(order: list[int]) -> list[int]:
    """The permutation that puts rows taken in `order` back in their own order."""
    back = [0] * len(order)
    for position, row in enumerate(order):
        back[row] = position
    return back
