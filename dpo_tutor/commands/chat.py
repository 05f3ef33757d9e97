"""`dpo-tutor chat`: answer one prompt from the base and the aligned model."""

from __future__ import annotations

import argparse
import json
import sys

from ..engine.generation import STRATEGIES


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "chat",
        help="answer one prompt from the base and the aligned model",
        description="Load a run's base model with its LoRA adapter (one model in memory) and answer a prompt "
        "twice: with the adapter off (base) and on (aligned). Strategies: 'stacked' answers both in one batch "
        "of two rows, each LoRA layer one batched matmul over the base weight and the merged weight (CUDA "
        "graph; ~200 tokens/s per side on an H100); 'batched' the same batch with the LoRA scaled 0/1 per row; "
        "'mixed' uses PEFT's per-row adapter_names (plain PEFT models only); 'sequential' steps the two in "
        "turn with the adapter disabled for the base (any model, Unsloth included). 'auto': stacked on a "
        "GPU where it applies, else sequential.",
    )
    p.add_argument("run", metavar="RUN", help="a run folder, or a run name under the runs folder")
    p.add_argument("--prompt", action="append", required=True, metavar="TEXT",
                   help="the user's message; repeat for a multi-turn conversation (each side keeps its own answers)")
    p.add_argument("--json", action="store_true",
                   help="print {base, aligned, base_tokens_per_s, aligned_tokens_per_s, ...}")
    p.add_argument("--strategy", choices=STRATEGIES, default="auto",
                   help="how the two answers are generated (see above; default: auto)")
    p.add_argument("--max-new-tokens", type=int, default=256, metavar="N",
                   help="stop each answer after N new tokens (default: 256)")
    p.add_argument("--temperature", type=float, default=0.0, metavar="T", help="0 = greedy (default)")
    p.add_argument("--top-p", type=float, default=1.0, metavar="P",
                   help="sampling only: keep the smallest set of tokens whose probabilities add up to P "
                   "(default: 1.0, all)")
    p.add_argument("--seed", type=int, default=0, help="sampling only: the random seed, so a run repeats (default: 0)")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda when available)")
    p.add_argument("--runs-dir", metavar="DIR", default=argparse.SUPPRESS,
                   help="where runs live (default: $DPO_TUTOR_RUNS_DIR or ./runs)")


def blank_note(tokens: int, model: str) -> str:
    """What to print for an answer with no visible text (a random `tiny` model greedily writes newlines)."""
    why = "; the 'tiny' model has random weights, so its text is noise" if model == "tiny" else ""
    return f"(no visible text: {tokens} tokens of whitespace{why})"


def run(args: argparse.Namespace) -> int:
    from dpo_tutor.engine.errors import UserError
    from dpo_tutor.engine.generation import GenerationSettings, TwoSidedChat
    from dpo_tutor.engine.models import load_aligned
    from dpo_tutor.engine.runs import resolve_run

    try:
        run_dir = resolve_run(args.run, getattr(args, "runs_dir", None))
        device = args.device
        if device is None:
            import torch

            device = "cuda" if torch.cuda.is_available() else None
        model, tokenizer, config = load_aligned(run_dir, device=device)
        chat = TwoSidedChat(model, tokenizer, strategy=args.strategy)
        settings = GenerationSettings(
            max_new_tokens=args.max_new_tokens, temperature=args.temperature, top_p=args.top_p, seed=args.seed
        )
        turns = []
        for prompt in args.prompt:
            result = chat.answer(prompt, settings)
            turns.append(result.to_dict() | {"prompt": prompt})
    except UserError as e:
        print(f"dpo-tutor chat: {e.one_line()}", file=sys.stderr)
        return 2
    if args.json:
        out = dict(turns[-1])
        out["run"] = str(run_dir)
        if len(turns) > 1:
            out["turns"] = turns
        print(json.dumps(out, ensure_ascii=False))
        return 0
    for turn in turns:
        print(f"> {turn['prompt']}")
        for side in ("base", "aligned"):
            print(f"\n[{side}] ({turn[f'{side}_tokens']} tokens, {turn[f'{side}_tokens_per_s']:.1f} tokens/s)")
            print(turn[side].strip() or blank_note(turn[f"{side}_tokens"], getattr(config, "model", "")))
        print()
    print(f"strategy: {turns[-1]['strategy']}")
    return 0
