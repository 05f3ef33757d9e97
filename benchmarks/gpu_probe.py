"""Exploratory GPU probe (standalone, no engine import): how fast does TRL 1.15 DPO train
SmolLM2-135M-Instruct under different pipeline settings? One variant per subprocess, so that peak
memory and time-to-first-step are each variant's own.

usage: python benchmarks/gpu_probe.py --gguf $DPO_GGUF --data .gpu/data/harmless-base-test.jsonl.gz \
          --variants trl_default,bs32,bs32_pre,bs32_pre_len --steps 12
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import subprocess
import sys
import time

T0 = time.time()

VARIANTS = {
    # name: (backend, micro-batch, accumulation, gradient checkpointing, precompute ref, group by length, optim)
    "trl_default": ("hf", 8, 4, True, False, False, "adamw_torch"),
    "bs8_nockpt": ("hf", 8, 4, False, False, False, "adamw_torch"),
    "bs32": ("hf", 32, 1, False, False, False, "adamw_torch"),
    "bs32_pre": ("hf", 32, 1, False, True, False, "adamw_torch"),
    "bs32_pre_len": ("hf", 32, 1, False, True, True, "adamw_torch_fused"),
    "bs32_len_ckpt": ("hf", 32, 1, True, True, True, "adamw_torch_fused"),
    "unsloth_nb": ("unsloth", 2, 16, "unsloth", False, False, "adamw_8bit"),
    "unsloth_bs8": ("unsloth", 8, 4, "unsloth", False, False, "adamw_torch"),
    "unsloth_fast": ("unsloth", 32, 1, False, True, True, "adamw_torch_fused"),
}


def hh_pairs(path, limit):
    rows = []
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            c, j = r["chosen"], r["rejected"]
            k = "\n\nAssistant:"
            ic, ij = c.rfind(k), j.rfind(k)
            if c[: ic + len(k)] != j[: ij + len(k)]:
                continue
            prompt, ch, rj = c[:ic], c[ic + len(k):].strip(), j[ij + len(k):].strip()
            if not ch or not rj or ch == rj:
                continue
            msgs = []
            for part in prompt.split("\n\nHuman: ")[1:]:
                if "\n\nAssistant: " in part:
                    h, a = part.split("\n\nAssistant: ", 1)
                    msgs += [{"role": "user", "content": h}, {"role": "assistant", "content": a}]
                else:
                    msgs.append({"role": "user", "content": part})
            if not msgs or msgs[-1]["role"] != "user":
                continue
            rows.append({"prompt": msgs, "chosen": [{"role": "assistant", "content": ch}],
                         "rejected": [{"role": "assistant", "content": rj}]})
            if len(rows) >= limit:
                break
    return rows


def convert(gguf, out):
    if os.path.exists(os.path.join(out, "config.json")):
        return
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, name = os.path.dirname(gguf), os.path.basename(gguf)
    t = time.time()
    tok = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.bfloat16)
    tok.eos_token = "<|im_end|>"
    tok.pad_token = "<|im_end|>"
    model.config.eos_token_id = tok.eos_token_id
    model.config.pad_token_id = tok.pad_token_id
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(out)
    tok.save_pretrained(out)
    print(f"converted in {time.time() - t:.1f}s; chat_template={'yes' if tok.chat_template else 'no'}", flush=True)


def run_variant(name, args):
    backend, bs, ga, ckpt, pre, bylen, optim = VARIANTS[name]
    if backend == "unsloth":
        import unsloth  # noqa: F401  (first, before trl/transformers)
        from unsloth import FastLanguageModel
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import DPOConfig, DPOTrainer

    t_import = time.time() - T0
    rows = hh_pairs(args.data, args.pairs)
    ds = Dataset.from_list(rows)
    if backend == "unsloth":
        model, tok = FastLanguageModel.from_pretrained(args.model_dir, max_seq_length=args.max_length, dtype=torch.bfloat16,
                                                       load_in_4bit=False)
        model = FastLanguageModel.get_peft_model(
            model, r=16, lora_alpha=32, lora_dropout=0, target_modules=["q_proj", "k_proj", "v_proj", "o_proj",
                                                                       "gate_proj", "up_proj", "down_proj"],
            use_gradient_checkpointing=ckpt if ckpt else False, random_state=42)
        peft_config = None
    else:
        tok = AutoTokenizer.from_pretrained(args.model_dir)
        model = AutoModelForCausalLM.from_pretrained(args.model_dir, dtype=torch.bfloat16, attn_implementation="sdpa").cuda()
        peft_config = LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, target_modules="all-linear", task_type="CAUSAL_LM")
    cfg = DPOConfig(
        output_dir=f"/tmp/probe-{name}", per_device_train_batch_size=bs, gradient_accumulation_steps=ga,
        learning_rate=args.lr, beta=0.1, max_length=args.max_length, max_steps=args.steps, logging_steps=1,
        report_to="none", disable_tqdm=True, bf16=True, gradient_checkpointing=bool(ckpt) and backend == "hf",
        precompute_ref_log_probs=pre, save_strategy="no", optim=optim, lr_scheduler_type="cosine",
        warmup_steps=0.05, seed=42,
        train_sampling_strategy="group_by_length" if bylen else "random",
    )
    times = []

    class CB(TrainerCallback):
        def on_log(self, a, state, control, logs=None, **kw):
            if logs and "loss" in logs:
                times.append((state.global_step, time.time(), dict(logs)))

    trainer_cls = DPOTrainer
    if bylen:
        class LenTrainer(DPOTrainer):
            def _get_train_sampler(self, train_dataset=None):
                from transformers.trainer_pt_utils import LengthGroupedSampler
                d = train_dataset if train_dataset is not None else self.train_dataset
                lengths = [len(p) + max(len(c), len(r)) for p, c, r in zip(d["prompt_ids"], d["chosen_ids"], d["rejected_ids"], strict=False)]
                return LengthGroupedSampler(self.args.train_batch_size * self.args.gradient_accumulation_steps, lengths=lengths)
        trainer_cls = LenTrainer
    trainer = trainer_cls(model=model, args=cfg, train_dataset=ds, processing_class=tok, peft_config=peft_config,
                          callbacks=[CB()])
    torch.cuda.reset_peak_memory_stats()
    t_train = time.time()
    trainer.train()
    first = times[0][1] - T0
    k = min(3, len(times) - 2)
    steady = (times[-1][0] - times[k][0]) * bs * ga / (times[-1][1] - times[k][1])
    last = times[-1][2]
    res = dict(variant=name, backend=backend, bs=bs, ga=ga, ckpt=str(ckpt), pre=pre, bylen=bylen, optim=optim,
               import_s=round(t_import, 1), first_step_s=round(first, 1), setup_s=round(t_train - T0, 1),
               pairs_per_s=round(steady, 1), peak_gib=round(torch.cuda.max_memory_allocated() / 2**30, 2),
               loss=round(last["loss"], 4), acc=round(last.get("rewards/accuracies", 0), 3),
               margin=round(last.get("rewards/margins", 0), 3))
    print("RESULT " + json.dumps(res), flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gguf")
    ap.add_argument("--model-dir", default="/tmp/smollm2-hf")
    ap.add_argument("--data", required=True)
    ap.add_argument("--variants", default="trl_default,bs32,bs32_pre,bs32_pre_len")
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--pairs", type=int, default=2000)
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--max-length", type=int, default=512)
    ap.add_argument("--one")
    args = ap.parse_args()
    if args.one:
        return run_variant(args.one, args)
    convert(args.gguf, args.model_dir)
    results = []
    for v in args.variants.split(","):
        cmd = [sys.executable, __file__, "--one", v, "--model-dir", args.model_dir, "--data", args.data,
               "--steps", str(args.steps), "--pairs", str(args.pairs), "--lr", str(args.lr),
               "--max-length", str(args.max_length)]
        p = subprocess.run(cmd, capture_output=True, text=True)
        line = [x for x in p.stdout.splitlines() if x.startswith("RESULT ")]
        if line:
            results.append(json.loads(line[-1][7:]))
            print(line[-1], flush=True)
        else:
            print(f"{v} FAILED rc={p.returncode}\n{p.stderr[-3000:]}", flush=True)
    keys = ["variant", "bs", "ga", "ckpt", "pre", "bylen", "optim", "first_step_s", "pairs_per_s", "peak_gib",
            "loss", "acc", "margin"]
    print(" | ".join(keys))
    for r in results:
        print(" | ".join(str(r[k]) for k in keys))


if __name__ == "__main__":
    main()
