"""How many CUDA-graph shapes a packed run records, and what replaying a roomier recorded shape costs in
tokens: the real pairs with a model's tokenizer (cut as TRL cuts them, `padding.py`), batches from
transformers' LengthGroupedSampler as the trainer makes them, each batch's packed shape as
engine/train/packing.py buckets it, and graphed_step's rule for reusing a recorded shape up to R x as
long. Prints a table (no GPU needed: shapes and tokens only).

usage: python benchmarks/graph_shapes.py --data ../shared/data/hh-rlhf/harmless-base-test.jsonl.gz

--per-step 60 --max-pairs 1920: instead, each of a run's first 60 batches (the pairs a run with
--max-pairs 1920 trains: its split) with its packed shape, TRL's token count (the run's `tokens_seen`
grows by it: a check that these are the run's batches) and the parts the plan's `--step-tokens` makes.
"""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path


def load_padding():
    spec = importlib.util.spec_from_file_location("padding", Path(__file__).with_name("padding.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def sampled_batches(pieces: list[tuple[int, int, int]], batch: int, steps: int, seed: int) -> list[list[int]]:
    """`steps` batches in the trainer's order: LengthGroupedSampler over the pair lengths, one epoch
    after another (the trainer seeds it with the run's seed)."""
    import torch
    from dpo_tutor.engine.train.fast.fast_prep import pair_lengths
    from transformers.trainer_pt_utils import LengthGroupedSampler

    lengths = pair_lengths({"prompt_ids": [[0] * p for p, _, _ in pieces],
                            "chosen_ids": [[0] * c for _, c, _ in pieces],
                            "rejected_ids": [[0] * r for _, _, r in pieces]})
    out: list[list[int]] = []
    epoch = 0
    while len(out) < steps:
        order = list(LengthGroupedSampler(batch, lengths=lengths, generator=torch.Generator().manual_seed(seed + epoch)))
        out += [order[i:i + batch] for i in range(0, len(order) - batch + 1, batch)]
        epoch += 1
    return out[:steps]


def packed_shape(pieces: list[tuple[int, int, int]], members: list[int]) -> tuple:
    """The recorded-shape key of a batch as packing.pack_examples lays it out (a pair a row)."""
    from dpo_tutor.engine.train.fast import packing

    examples = [{"prompt_ids": [1] * p, "chosen_ids": [1] * c, "rejected_ids": [1] * r}
                for p, c, r in (pieces[i] for i in members)]
    packed = packing.pack_examples(examples, None, 0)  # the pieces are cut already
    return ("packed", *packed["pack_input_ids"].shape, packed["pack_source"].shape[0], len(members))


def replay(shapes: list[tuple], rows_ratio: float, slots_ratio: float) -> tuple[int, int]:
    """(recordings, row tokens computed) when each batch replays `graphed_step.roomier_shape` of the
    shapes recorded so far (rows at most rows_ratio x as long), else records its own."""
    from dpo_tutor.engine.train.fast.graphed_step import roomier_shape

    recorded: set[tuple] = set()
    tokens = 0
    for key in shapes:
        shape = roomier_shape(key, recorded, rows_ratio, slots_ratio) if key not in recorded else key
        recorded.add(shape)
        tokens += shape[1] * shape[2]
    return len(recorded), tokens


def run_pieces(model: str, data: str, max_length: int, max_pairs: int) -> list[tuple[int, int, int]]:
    """(prompt, chosen, rejected) tokens of the pairs a run with --max-pairs trains, in its order (its
    held-out split taken off), cut as TRL cuts them."""
    from dpo_tutor.engine.config import TrainConfig
    from dpo_tutor.engine.data.render import render_pair
    from dpo_tutor.engine.data.split import split_for_run
    from dpo_tutor.engine.models import model_location, resolve_model
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_location(resolve_model(model)))
    _, train, _ = split_for_run(TrainConfig(data=data, max_pairs=max_pairs, max_length=max_length))
    pieces = []
    for triplet in train:
        prompt, chosen, rejected = (len(tokenizer(text, add_special_tokens=False)["input_ids"])
                                    for text in render_pair(triplet, tokenizer))
        if prompt >= max_length:
            continue  # TRL drops pairs whose prompt fills max_length
        room = max_length - prompt
        pieces.append((prompt, min(chosen, room), min(rejected, room)))
    return pieces


def per_step(pieces: list[tuple[int, int, int]], batch: int, steps: int, seed: int, step_tokens: int) -> None:
    from dpo_tutor.engine.train.fast import packing

    print(f"{len(pieces)} pairs, batches of {batch}, seed {seed}, parts above {step_tokens:,} tokens")
    print("| step | rows x row length | tokens | TRL's tokens | parts |")
    print("|---:|---|---:|---:|---|")
    for number, members in enumerate(sampled_batches(pieces, batch, steps, seed), start=1):
        key = packed_shape(pieces, members)
        trl = sum(2 * p + c + r for p, c, r in (pieces[i] for i in members))
        bounds = packing.part_bounds([sum(pieces[i]) for i in members], step_tokens)
        parts = " + ".join(str(b - a) for a, b in bounds) if len(bounds) > 1 else "whole"
        print(f"| {number} | {key[1]} x {key[2]} | {key[1] * key[2]:,} | {trl:,} | {parts} |")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2-gguf")
    ap.add_argument("--data", required=True)
    ap.add_argument("--max-length", type=int, default=512)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--steps", default="36,128", help="run lengths to count, comma-separated")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--per-step", type=int, default=0, help="list each of a run's first N batches instead")
    ap.add_argument("--max-pairs", type=int, default=0, help="with --per-step: the run's --max-pairs (0: all)")
    ap.add_argument("--step-tokens", type=int, default=20_480, help="with --per-step: the plan's limit")
    args = ap.parse_args(argv)
    from dpo_tutor.engine.train.fast import graphed_step

    if args.per_step:
        pieces = run_pieces(args.model, args.data, args.max_length, args.max_pairs)
        per_step(pieces, args.batch_size, args.per_step, args.seed, args.step_tokens)
        return 0

    pieces = load_padding().piece_lengths(args.model, args.data, args.max_length)
    print(f"{len(pieces)} pairs, batches of {args.batch_size}, seed {args.seed}")
    print("| steps | rows up to x as long | recordings | row tokens computed | x every shape recorded |")
    print("|---:|---:|---:|---:|---:|")
    for steps in map(int, args.steps.split(",")):
        shapes = [packed_shape(pieces, b) for b in sampled_batches(pieces, args.batch_size, steps, args.seed)]
        _, exact = replay(shapes, 1.0, 1.0)
        for ratio in (1.0, graphed_step.ROOMIER_ROWS, 1.25, 1.5):
            slots = graphed_step.ROOMIER_SLOTS if ratio > 1 else 1.0
            recordings, tokens = replay(shapes, ratio, slots)
            print(f"| {steps} | {ratio:g} | {recordings} | {tokens:,} | {tokens / exact:.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
