"""Chat benchmark: tokens/s per side and time to first token, for both two-sided strategies.

    python benchmarks/chat_bench.py                       # CPU, the tiny random model
    python benchmarks/chat_bench.py --model smollm2-gguf  # SmolLM2-135M (GPU when there is one)
    python benchmarks/chat_bench.py --run runs/<run>      # a trained run's base + adapter

Without --run, the model gets a LoRA (r 16, all linear layers) with random B weights, so that base and
aligned really differ, as after training. Each strategy streams both sides at once (exactly what the
Chat screen does); "single" is one side alone with transformers' own `generate`, for scale.
On CUDA it also times one captured decode step of the batched strategy on the device alone (the
graph replayed back to back, one sync): no host work at all, so 1 / that time is the ceiling for
tokens/s per side. Prints a table (and --json PATH writes the numbers).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

PROMPT = "Write a long, detailed story about a dragon who learns to bake bread."


def build(args):
    import torch
    from dpo_tutor.engine.models import load_aligned, load_model_and_tokenizer

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if args.run:
        model, tokenizer, _ = load_aligned(args.run, device=device)
        return model, tokenizer, device, f"run {args.run}"
    from peft import LoraConfig, get_peft_model

    base, tokenizer = load_model_and_tokenizer(args.model, device=device)
    model = get_peft_model(base, LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, target_modules="all-linear"))
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.copy_((torch.randn(param.shape, generator=generator) * 0.01).to(param))
    model.eval()
    return model, tokenizer, device, f"{args.model} + random LoRA r16"


def sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def bench_strategy(model, tokenizer, strategy: str, tokens: int, repeats: int, device: str,
                   static: bool | None = None, chunk: int = 1) -> dict:
    from dpo_tutor.engine.generation import GenerationSettings, TwoSidedChat

    settings = GenerationSettings(max_new_tokens=tokens)
    TwoSidedChat(model, tokenizer, strategy=strategy, static=static, chunk=chunk).answer("Hi", GenerationSettings(8))
    rows = []
    for _ in range(repeats):
        sync(device)
        result = TwoSidedChat(model, tokenizer, strategy=strategy, static=static, chunk=chunk).answer(PROMPT, settings)
        rows.append(result)
    chunked = strategy != "sequential" and rows[0].decode != "eager"  # greedy chunks run on static rows only
    label = f"{strategy} ({rows[0].decode}{f', chunk {chunk}' if chunked else ''})"
    return {
        "strategy": label,
        "chunk": chunk,
        "decode": rows[0].decode,
        "texts": {"base": rows[0].base.text, "aligned": rows[0].aligned.text},
        "base_tokens": statistics.mean(r.base.tokens for r in rows),
        "aligned_tokens": statistics.mean(r.aligned.tokens for r in rows),
        "base_tokens_per_s": statistics.median(r.base.tokens_per_s for r in rows),
        "aligned_tokens_per_s": statistics.median(r.aligned.tokens_per_s for r in rows),
        "base_first_token_s": statistics.median(r.base.first_token_s or 0 for r in rows),
        "aligned_first_token_s": statistics.median(r.aligned.first_token_s or 0 for r in rows),
    }


def bench_single(model, tokenizer, tokens: int, repeats: int, device: str) -> dict:
    """One side alone through transformers' generate (adapter off): the ceiling for one stream."""
    import torch
    from dpo_tutor.engine.generation import render_messages

    text = render_messages(tokenizer, [{"role": "user", "content": PROMPT}])
    ids = tokenizer(text, add_special_tokens=False, return_tensors="pt").to(device)
    rates = []
    with torch.inference_mode(), model.disable_adapter():
        model.generate(**ids, max_new_tokens=8, do_sample=False)
        for _ in range(repeats):
            sync(device)
            start = time.perf_counter()
            out = model.generate(**ids, max_new_tokens=tokens, do_sample=False)
            sync(device)
            rates.append((out.shape[1] - ids["input_ids"].shape[1]) / (time.perf_counter() - start))
    rate = statistics.median(rates)
    return {"strategy": "single (HF generate, base only)", "base_tokens_per_s": rate, "aligned_tokens_per_s": None,
            "base_tokens": tokens, "aligned_tokens": None, "base_first_token_s": None, "aligned_first_token_s": None}


def bench_step_device(model, tokenizer, tokens: int, repeats: int, strategy: str = "batched") -> dict | None:
    """Device time of one captured greedy decode step of the batched or stacked strategy (both rows),
    or None where there is no such graph (CPU, or a model the strategy cannot run).

    Per repeat: fresh rows, prefill, one step (which captures the graph), then the graph replayed for the
    rest of a `tokens`-token answer (the same cache size and slots as a real answer), timed with CUDA
    events around the replays: one sync, divided by the number of replays."""
    import torch
    from dpo_tutor.engine.generation import (
        batched_rows,
        batched_supported,
        render_messages,
        stacked_supported,
    )

    if not torch.cuda.is_available() or next(model.parameters()).device.type != "cuda":
        return None
    supported = stacked_supported if strategy == "stacked" else batched_supported
    if not supported(model)[0] or tokens < 3:
        return None
    prompt = render_messages(tokenizer, [{"role": "user", "content": PROMPT}])
    replays = tokens - 2  # the first token comes from the prefill, the second from the capturing step
    times_ms = []
    with torch.inference_mode():
        for _ in range(repeats + 1):  # the first repeat is a warm-up
            rows = batched_rows(model, tokenizer, [prompt, prompt], tokens, stacked=strategy == "stacked")
            rows.feed(rows.prefill().argmax(-1))
            rows.greedy(1)
            graph = rows.greedy_graph
            if graph is None:
                return None  # the capture failed: nothing to time (the streams say why)
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            torch.cuda.synchronize()
            start.record()
            for _ in range(replays):
                graph.replay()
            end.record()
            torch.cuda.synchronize()
            times_ms.append(start.elapsed_time(end) / replays)
    step_ms = statistics.median(times_ms[1:])
    return {"strategy": strategy, "step_ms": step_ms, "ceiling_tokens_per_s": 1000.0 / step_ms, "replays": replays}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="tiny", help="tiny (default), smollm2-gguf, a folder, a .gguf or hub id")
    parser.add_argument("--run", help="benchmark a run's base + adapter instead")
    parser.add_argument("--device", help="cpu, cuda (default: cuda when available)")
    parser.add_argument("--tokens", type=int, default=128, help="max new tokens per side (default 128)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--strategies", default="mixed,sequential")
    parser.add_argument("--chunk", default="1",
                        help="greedy tokens per host sync, batched/mixed (default 1; a list like 1,8 compares)")
    parser.add_argument("--json", metavar="PATH", help="also write the numbers as JSON")
    parser.add_argument("--no-eager", action="store_true", help="on a GPU, skip the eager (no CUDA graph) rows")
    args = parser.parse_args(argv)

    import torch

    t0 = time.perf_counter()
    model, tokenizer, device, what = build(args)
    load_s = time.perf_counter() - t0
    hardware = torch.cuda.get_device_name(0) if device.startswith("cuda") else f"CPU ({torch.get_num_threads()} threads)"
    dtype = str(next(model.parameters()).dtype).replace("torch.", "")
    chunks = [int(c) for c in args.chunk.split(",")]
    strategies = args.strategies.split(",")
    # The chunk matters only where greedy steps run in chunks on static rows: batched, and mixed on CUDA
    # (the sequential strategy's chunk is its block).
    chunked = {"batched", "stacked"} | ({"mixed"} if device.startswith("cuda") else set())
    variants = [(s, None, c) for s in strategies for c in (chunks if s in chunked else chunks[-1:])]
    if device.startswith("cuda") and not args.no_eager:
        variants += [(s, False, chunks[-1]) for s in strategies]  # the eager loop, for comparison
    results = [bench_strategy(model, tokenizer, s, args.tokens, args.repeats, device, static, chunk)
               for s, static, chunk in variants]
    results.append(bench_single(model, tokenizer, args.tokens, args.repeats, device))
    steps = [step for kind in ("batched", "stacked")
             if (step := bench_step_device(model, tokenizer, args.tokens, args.repeats, kind)) is not None]

    print(f"chat benchmark: {what}, {dtype}, on {hardware}; loaded in {load_s:.1f} s; "
          f"up to {args.tokens} new tokens per side, median of {args.repeats}")
    print(f"{'strategy (decode)':<34} {'base tok/s':>10} {'aligned tok/s':>13} {'TTFT base':>10} {'TTFT aligned':>12} "
          f"{'tokens b/a':>11}")

    def fmt(value, spec):
        width = "".join(ch for ch in spec.split(".")[0] if ch.isdigit())
        return format(value, spec) if value is not None else format("-", f">{width or 0}")

    for r in results:
        tokens = f"{fmt(r['base_tokens'], '.0f')}/{fmt(r['aligned_tokens'], '.0f')}"
        print(f"{r['strategy']:<34} {fmt(r['base_tokens_per_s'], '10.1f')} {fmt(r['aligned_tokens_per_s'], '13.1f')} "
              f"{fmt(r['base_first_token_s'], '10.3f')} {fmt(r['aligned_first_token_s'], '12.3f')} {tokens:>11}")
    for step in steps:
        print(f"one {step['strategy']} decode step on the device alone (graph replayed {step['replays']} times, "
              f"one sync): {step['step_ms']:.3f} ms -> ceiling {step['ceiling_tokens_per_s']:.1f} tokens/s per side")
    streamed = [r for r in results if "texts" in r]
    for other in streamed[1:]:
        for side in ("base", "aligned"):
            a, b = streamed[0]["texts"][side], other["texts"][side]
            same = "identical" if a == b else f"differ after {next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))} characters"
            print(f"{side}: {streamed[0]['strategy']} vs {other['strategy']} greedy answers {same}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"model": what, "dtype": dtype, "hardware": hardware, "tokens": args.tokens,
                       "results": results, "step_device": steps}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
