"""How much of a batch is padding: real tokens / computed tokens for random batches and for
length-grouped ones (transformers' LengthGroupedSampler: groups of 50 batches sorted by length), with
a model's tokenizer and chat template, as DPO training pads them (prompt + answer, cut at max_length;
chosen and rejected of a pair in one batch). Then the packed layout (engine/train/packing.py: one row
a pair, [prompt, chosen, rejected], rows padded to a multiple of 64): the tokens it computes against
TRL's two rows, and the share of prompt and answer tokens. Prints tables.

usage: python benchmarks/padding.py --model smollm2-gguf --data ../shared/data/hh-rlhf/harmless-base-test.jsonl.gz
"""

from __future__ import annotations

import argparse
import random
import statistics


def piece_lengths(model: str, data: str, max_length: int) -> list[tuple[int, int, int]]:
    """(prompt, chosen, rejected) tokens of each usable pair, cut as TRL's collator cuts them
    (keep_start: the prompt first, the answers get what is left of max_length)."""
    from dpo_tutor.engine.data.load import load_triplets
    from dpo_tutor.engine.data.render import render_pair
    from dpo_tutor.engine.models import model_location, resolve_model
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_location(resolve_model(model)))

    def count(text: str) -> int:
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    pieces = []
    for triplet in load_triplets(data).triplets:
        prompt, chosen, rejected = render_pair(triplet, tokenizer)
        p = min(count(prompt), max_length)
        if p >= max_length:
            continue  # TRL drops pairs whose prompt fills max_length
        room = max_length - p
        pieces.append((p, min(count(chosen), room), min(count(rejected), room)))
    return pieces


def packed_tokens(pieces: list[tuple[int, int, int]], batches: list[list[int]], bucket: int = 64) -> int:
    """Tokens the packed layout computes: each batch's rows padded to its longest pair, in buckets."""
    return sum(len(batch) * -(-max(sum(pieces[i]) for i in batch) // bucket) * bucket for batch in batches)


def two_row_tokens(pairs: list[tuple[int, int]], batches: list[list[int]]) -> int:
    return sum(2 * len(batch) * max(max(pairs[i]) for i in batch) for batch in batches)


def efficiency(pairs: list[tuple[int, int]], batches: list[list[int]]) -> float:
    real = sum(sum(pairs[i]) for batch in batches for i in batch)
    return real / two_row_tokens(pairs, batches)


def random_batches(n: int, size: int, rng: random.Random) -> list[list[int]]:
    order = list(range(n))
    rng.shuffle(order)
    return [order[i : i + size] for i in range(0, n - size + 1, size)]


def grouped_batches(pairs: list[tuple[int, int]], size: int, rng: random.Random) -> list[list[int]]:
    order = list(range(len(pairs)))
    rng.shuffle(order)
    group = 50 * size
    batches = []
    for start in range(0, len(order), group):
        chunk = sorted(order[start : start + group], key=lambda i: -max(pairs[i]))
        batches += [chunk[i : i + size] for i in range(0, len(chunk) - size + 1, size)]
    return batches


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2-gguf")
    ap.add_argument("--data", required=True)
    ap.add_argument("--max-length", type=int, default=512)
    ap.add_argument("--batch-sizes", default="8,16,32,64")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    pieces = piece_lengths(args.model, args.data, args.max_length)
    pairs = [(p + c, p + r) for p, c, r in pieces]
    flat = [x for pair in pairs for x in pair]
    print(f"{len(pairs)} pairs; sequence length mean {statistics.fmean(flat):.1f}, median "
          f"{statistics.median(flat):.0f}, max {max(flat)} tokens (max_length {args.max_length})")
    print("| pairs per batch | real tokens, random batches | real tokens, length-grouped |")
    print("|---:|---:|---:|")
    for size in map(int, args.batch_sizes.split(",")):
        rng = random.Random(args.seed)
        shuffled = efficiency(pairs, random_batches(len(pairs), size, rng))
        grouped = efficiency(pairs, grouped_batches(pairs, size, rng))
        print(f"| {size} | {shuffled:.1%} | {grouped:.1%} |")
    prompt = sum(p for p, _, _ in pieces)
    answers = sum(c + r for _, c, r in pieces)
    print(f"\npacked (prompt once): a pair's tokens are {prompt / (prompt + answers):.1%} prompt, "
          f"{answers / (prompt + answers):.1%} answers (what the head scores); TRL's two rows "
          f"hold {(2 * prompt + answers) / (prompt + answers):.2f}x the packed row's real tokens")
    print("| pairs per batch | computed tokens, two rows (grouped) | packed (grouped, 64-token buckets) | two rows / packed |")
    print("|---:|---:|---:|---:|")
    for size in map(int, args.batch_sizes.split(",")):
        batches = grouped_batches(pairs, size, random.Random(args.seed))
        two, packed = two_row_tokens(pairs, batches), packed_tokens(pieces, batches)
        print(f"| {size} | {two:,} | {packed:,} | {two / packed:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
