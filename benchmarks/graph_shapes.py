"""How many CUDA-graph shapes a packed run records, and what replaying a roomier recorded shape costs in
tokens: the real pairs with a model's tokenizer (cut as TRL cuts them, `padding.py`), batches from
transformers' LengthGroupedSampler as the trainer makes them, each batch's packed shape as
engine/train/packing.py buckets it, and graphed_step's rule for reusing a recorded shape up to R x as
long. Prints a table (no GPU needed: shapes and tokens only).

usage: python benchmarks/graph_shapes.py --data ../shared/data/hh-rlhf/harmless-base-test.jsonl.gz
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


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2-gguf")
    ap.add_argument("--data", required=True)
    ap.add_argument("--max-length", type=int, default=512)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--steps", default="36,128", help="run lengths to count, comma-separated")
    ap.add_argument("--seed", type=int, default=42)
    args = ap.parse_args(argv)
    from dpo_tutor.engine.train.fast import graphed_step

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
