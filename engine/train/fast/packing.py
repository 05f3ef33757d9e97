"""Preference pairs laid out with their prompt once: [prompt, chosen, rejected] in one row.

Why ours: TRL's collator makes two rows of each pair, prompt + chosen and prompt + rejected, and pads
every row of a batch to the longest. In the real HH-RLHF pairs the prompt is 61 % of a pair's tokens
(a multi-turn dialogue; answers of ~45 tokens), so the model runs every prompt twice: TRL's rows hold
1.61x the tokens of one packed row, and length-grouped batches of 32 pairs compute 1.32x the tokens
(`benchmarks/padding.py` counts them).

Here each pair is one row: the prompt, then the chosen answer, then the rejected answer. The rejected
answer's tokens take the positions the prompt + rejected row would give them (RoPE sees the same
positions) and attend to the prompt and to themselves, never to the chosen answer, so every hidden
state is the one TRL's two rows compute, with the prompt's computed once. The model's head then runs
only on the answers' tokens, each with the hidden state that predicts it (for both answers' first
token: the prompt's last). The same rule, "after me, in my pair, not across answers", is an attention
mask built from two small id arrays, so several short pairs can also share one row (`pack_row_tokens`;
measured, not the default: more shapes to record).

What is learned does not change: the same tokens, positions and attention as TRL's rows, truncated as
TRL's collator truncates them (keep_start: each side is prompt + answer cut at max_length), the same
log-prob sums, loss and metrics. The tests compare a packed step's loss, metrics and gradients with
TRL's step on the same pairs. The `pack` switch turns it off (the two-row graphed step).

Shapes are bucketed (row length to 64 tokens, the answers' token count to 2^k or 1.5 x 2^k) so that
recorded CUDA graphs are reused (`graphed_step.py`).

A batch whose packed rows hold more than `max_tokens` tokens (rows x padded row length) comes as parts:
consecutive slices of its pairs, each packed on its own (`PARTS`). A step's activations grow with those
tokens, so the longest batches of a run set its peak memory; the trainer runs the parts one after the
other into the same gradients (`part_bounds`, the plan's `step_tokens`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

ROW_BUCKET = 64  # row lengths are multiples of this
ROWS_MULTIPLE = 4  # with several pairs a row, the row count is a multiple of this (fewer shapes)

# Branches of a row's tokens, in the `pack_branch` array.
PROMPT, CHOSEN, REJECTED, PAD = 0, 1, 2, 3
# What a packed batch carries besides TRL's tensors (TRL's stay: the fallback to TRL's step uses them).
KEYS = ("pack_input_ids", "pack_position_ids", "pack_segment", "pack_branch",
        "pack_source", "pack_labels", "pack_owner", "pack_weight", "pack_num_tokens")
PARTS = "pack_parts"  # a batch split into parts: a list of packed batches (KEYS + their reference log-probs)
REFERENCE_KEYS = ("ref_chosen_logps", "ref_rejected_logps")


def answer_capacity(tokens: int) -> int:
    """The answers' token slots for a batch scoring `tokens` of them: the next 2^k or 1.5 x 2^k
    (at least 64), so a run sees few distinct shapes and at most a third of the slots is empty."""
    size = 64
    while True:
        if tokens <= size:
            return size
        if tokens <= size * 3 // 2:
            return size * 3 // 2
        size *= 2


def round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def pair_pieces(example: dict[str, Any], max_length: int | None) -> tuple[list, list, list]:
    """prompt, chosen and rejected ids as TRL's collator keeps them (keep_start: each side's prompt +
    answer cut at max_length, so the prompt is cut first and the answers get what is left)."""
    prompt, chosen, rejected = example["prompt_ids"], example["chosen_ids"], example["rejected_ids"]
    if max_length:
        prompt = prompt[:max_length]
        room = max_length - len(prompt)
        chosen, rejected = chosen[:room], rejected[:room]
    return list(prompt), list(chosen), list(rejected)


def pair_length(example: dict[str, Any], max_length: int | None) -> int:
    """Tokens of a pair's packed row: prompt + chosen + rejected, as cut (`pair_pieces`)."""
    return sum(len(piece) for piece in pair_pieces(example, max_length))


def part_bounds(lengths: list[int], max_tokens: int) -> list[tuple[int, int]]:
    """The fewest consecutive near-equal slices of a batch's pairs (a pair a row, `lengths` its rows'
    tokens) whose packed rows x padded row length are at most `max_tokens` each; [(0, n)] when the
    batch fits whole or `max_tokens` is 0. Consecutive: a length-grouped batch comes longest first, so
    the later parts get shorter rows."""
    count = len(lengths)
    if max_tokens <= 0 or count < 2:
        return [(0, count)]

    def tokens(start: int, end: int) -> int:
        return (end - start) * round_up(max(max(lengths[start:end]), 1), ROW_BUCKET)

    for parts in range(1, count + 1):
        size, extra = divmod(count, parts)
        bounds, start = [], 0
        for i in range(parts):
            end = start + size + (1 if i < extra else 0)
            bounds.append((start, end))
            start = end
        if all(tokens(a, b) <= max_tokens for a, b in bounds):
            return bounds
    return [(i, i + 1) for i in range(count)]  # a pair a part: the least there is (a row may still be longer)


def _rows(lengths: list[int], row_tokens: int) -> list[list[int]]:
    """Which pairs share each row: first fit, longest first (a pair a row when row_tokens is 0)."""
    if row_tokens <= 0:
        return [[i] for i in range(len(lengths))]
    rows: list[list[int]] = []
    room: list[int] = []
    for i in sorted(range(len(lengths)), key=lambda i: -lengths[i]):
        for r, left in enumerate(room):
            if lengths[i] <= left:
                rows[r].append(i)
                room[r] -= lengths[i]
                break
        else:
            rows.append([i])
            room.append(row_tokens - lengths[i])
    return rows


def pack_examples(examples: list[dict[str, Any]], max_length: int | None, pad_id: int,
                  row_tokens: int = 0) -> dict[str, Any]:
    """The packed tensors of a batch of tokenized pairs (prompt_ids / chosen_ids / rejected_ids).

    pack_input_ids, pack_position_ids, pack_segment, pack_branch: [rows, T]. Positions restart at 0 at
    each pair; the rejected answer's positions continue from the prompt's end, as in its own row.
    pack_source: [N] flat index (row * T + column) of the hidden state that predicts each answer token;
    pack_labels: [N] that token; pack_owner: [N] the sequence it belongs to (pair i's chosen side is i,
    its rejected side B + i, TRL's order); pack_weight: [N] 1 for a real slot, 0 for an empty one.
    pack_num_tokens: [B] the tokens TRL's two rows of each pair hold (their sum is TRL's num_tokens).
    """
    import numpy as np
    import torch

    pieces = [pair_pieces(e, max_length) for e in examples]
    count = len(pieces)
    lengths = [len(p) + len(c) + len(r) for p, c, r in pieces]
    longest = round_up(max(max(lengths), 1), ROW_BUCKET)
    width = max(longest, round_up(row_tokens, ROW_BUCKET)) if row_tokens > 0 else longest
    layout = _rows(lengths, width if row_tokens > 0 else 0)
    rows = round_up(len(layout), ROWS_MULTIPLE) if row_tokens > 0 else len(layout)

    input_ids = np.full((rows, width), pad_id, dtype=np.int64)
    positions = np.zeros((rows, width), dtype=np.int64)
    segment = np.full((rows, width), -1, dtype=np.int64)
    branch = np.full((rows, width), PAD, dtype=np.int64)
    sources: list[np.ndarray] = []
    labels: list[np.ndarray] = []
    owners: list[np.ndarray] = []
    num_tokens = np.zeros(count, dtype=np.float32)
    for row, members in enumerate(layout):
        start = 0
        for i in members:
            prompt, chosen, rejected = pieces[i]
            p = len(prompt)
            num_tokens[i] = 2 * p + len(chosen) + len(rejected)
            base = row * width + start  # flat index of this pair's first token
            end = start + lengths[i]
            input_ids[row, start:end] = prompt + chosen + rejected
            segment[row, start:end] = i
            branch[row, start:start + p] = PROMPT
            branch[row, start + p:start + p + len(chosen)] = CHOSEN
            branch[row, start + p + len(chosen):end] = REJECTED
            positions[row, start:start + p + len(chosen)] = np.arange(p + len(chosen))
            positions[row, start + p + len(chosen):end] = np.arange(p, p + len(rejected))
            for side, answer, offset in ((i, chosen, p), (count + i, rejected, p + len(chosen))):
                if not answer:
                    continue
                # answer token k sits at sequence position p + k; it is predicted by position p + k - 1
                # of its own sequence: the prompt's last token for k = 0, else the answer's token k - 1.
                k = np.arange(len(answer))
                scored = (p + k) >= 1  # TRL never scores a sequence's first token
                k = k[scored]
                src = np.where(k == 0, p - 1, offset + k - 1)
                sources.append(base + src)
                labels.append(np.asarray(answer, dtype=np.int64)[k])
                owners.append(np.full(len(k), side, dtype=np.int64))
            start = end

    source = np.concatenate(sources) if sources else np.zeros(0, dtype=np.int64)
    slots = answer_capacity(len(source))
    filled = len(source)
    pad = slots - filled

    def padded(values: np.ndarray) -> Any:
        return torch.from_numpy(np.concatenate([values, np.zeros(pad, dtype=np.int64)]) if pad else values)

    weight = torch.zeros(slots, dtype=torch.float32)
    weight[:filled] = 1.0
    return {
        "pack_input_ids": torch.from_numpy(input_ids),
        "pack_position_ids": torch.from_numpy(positions),
        "pack_segment": torch.from_numpy(segment),
        "pack_branch": torch.from_numpy(branch),
        "pack_source": padded(source),
        "pack_labels": padded(np.concatenate(labels) if labels else np.zeros(0, dtype=np.int64)),
        "pack_owner": padded(np.concatenate(owners) if owners else np.zeros(0, dtype=np.int64)),
        "pack_weight": weight,
        "pack_num_tokens": torch.from_numpy(num_tokens),
    }


def attention_bias(segment: Any, branch: Any, dtype: Any) -> Any:
    """The additive attention mask [rows, 1, T, T] of a packed batch (0: attend, dtype's min: not):
    a token sees the earlier tokens of its own pair, except that a rejected answer never sees the
    chosen one. Padding sees earlier padding of its row (so no row of the mask is empty)."""
    import torch

    width = segment.shape[1]
    order = torch.arange(width, device=segment.device)
    causal = order[None, :, None] >= order[None, None, :]
    same_pair = segment[:, :, None] == segment[:, None, :]
    across = (branch[:, :, None] == REJECTED) & (branch[:, None, :] == CHOSEN)
    allowed = causal & same_pair & ~across
    bias = torch.zeros(allowed.shape, dtype=dtype, device=segment.device)
    bias.masked_fill_(~allowed, torch.finfo(dtype).min)
    return bias[:, None]


def applies(trainer: Any) -> bool:
    """Whether this trainer's training batches can be packed: recorded steps on (packing is their
    layout), TRL's preference collator and keep_start truncation (keep_end cuts each side's prompt
    differently), one process.

    The reference pass keeps TRL's two rows a pair: packed, it was measured slower (a forward-only pass
    weighs the packed rows' masked attention, rows up to twice as long with no flash kernel, more)."""
    from trl.trainer.dpo_trainer import DataCollatorForPreference

    args = trainer.args
    return (
        trainer.step_graphs is not None and args.world_size == 1
        and getattr(args, "truncation_mode", "keep_start") == "keep_start"
        and not getattr(args, "padding_free", False)
        and type(trainer.data_collator) is DataCollatorForPreference
    )


@dataclass
class PackingCollator:
    """TRL's preference collator's batch, plus the packed layout of the same pairs (KEYS), or of each
    part of them (PARTS) when the batch packs to more than `max_tokens` tokens."""

    base: Any  # TRL's DataCollatorForPreference
    max_length: int | None
    pad_id: int
    row_tokens: int = 0
    max_tokens: int = 0  # 0: never split (parts need a pair a row and reference log-probs in the batch)

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        batch = self.base(examples)
        bounds = [(0, len(examples))]
        if self.max_tokens > 0 and self.row_tokens <= 0 and all(k in batch for k in REFERENCE_KEYS):
            bounds = part_bounds([pair_length(e, self.max_length) for e in examples], self.max_tokens)
        if len(bounds) == 1:
            batch.update(pack_examples(examples, self.max_length, self.pad_id, self.row_tokens))
            return batch
        batch[PARTS] = [
            {**pack_examples(examples[a:b], self.max_length, self.pad_id),
             **{key: batch[key][a:b] for key in REFERENCE_KEYS}}
            for a, b in bounds
        ]
        return batch
