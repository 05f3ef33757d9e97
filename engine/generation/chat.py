"""Both sides answering: `stream_both` interleaves their tokens, `TwoSidedChat` keeps a history
per side."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator

from .decoding import (
    _Decoder,
    _Rows,
    _StaticRows,
    _token_steps,
    batched_rows,
    render_messages,
    stop_token_ids,
)
from .results import BASE_ADAPTER, SIDES, ChatResult, Delta, GenerationSettings
from .strategies import has_adapter, model_device, resolve_strategy


def stream_both(
    model,
    tokenizer,
    prompts: dict[str, str],
    settings: GenerationSettings,
    *,
    strategy: str = "auto",
    stop: threading.Event | None = None,
    block: int = 8,
    chunk: int = 1,
    static: bool | None = None,
    info: dict | None = None,
) -> Iterator[Delta]:
    """Stream both sides' answers to their own prompt texts (already rendered with the chat template).

    prompts: {"base": text, "aligned": text}. Yields Delta events in the order tokens are produced;
    each side ends with one `done=True` event. block: tokens per side per turn (sequential strategy).
    chunk: greedy tokens decoded per host sync on a static cache (stacked, batched and mixed strategies;
    the sequential strategy syncs once per block); 1 syncs every token. Default 1: the replayed step is
    bound by the GPU, so larger chunks gain little and would make a stop lag by up to `chunk` tokens.
    static: decode on a static KV cache, replaying CUDA graphs on a GPU (default: on CUDA only).
    info: filled with {"decode": how the steps ran} when given.
    """
    import torch

    strategy = resolve_strategy(model, strategy)
    device = model_device(model)
    stops = stop_token_ids(model, tokenizer)
    generator = None
    if not settings.greedy:
        generator = torch.Generator(device=device)
        generator.manual_seed(settings.seed if settings.seed is not None else int(time.time()))
    if static is None:
        static = device.type == "cuda"
    info = info if info is not None else {}
    info["decode"] = "eager"

    made: list[_Rows] = []

    def make_rows(prompt_list, names, context=contextlib.nullcontext, rows_chunk=1):
        if not static:
            rows = _Rows(model, tokenizer, prompt_list, names, device)
        else:
            # No CUDA graph for the mixed batch: PEFT's per-row forward indexes with Python lists (host
            # copies, not capturable), and a forward that raises leaves PEFT's adapter_names hooks behind.
            rows = _StaticRows(model, tokenizer, prompt_list, names, device, max_new_tokens=settings.max_new_tokens,
                               context=context, use_graph=device.type == "cuda" and names is None, chunk=rows_chunk)
        made.append(rows)
        return rows

    decoders = {side: _Decoder(tokenizer) for side in SIDES}
    counts = dict.fromkeys(SIDES, 0)
    finished: dict[str, str] = {}
    start = time.perf_counter()
    was_training = model.training
    model.eval()

    def emit(side: str, token: int) -> Iterator[Delta]:
        if side in finished:
            return
        if token in stops:
            finished[side] = "eos"
            yield Delta(side, decoders[side].flush(), counts[side], time.perf_counter() - start, True, "eos")
            return
        counts[side] += 1
        text = decoders[side].push(token)
        length_done = counts[side] >= settings.max_new_tokens
        if length_done:
            text += decoders[side].flush()
            finished[side] = "length"
        yield Delta(side, text, counts[side], time.perf_counter() - start, length_done, "length" if length_done else "")

    def finish_stopped() -> Iterator[Delta]:
        for side in SIDES:
            if side not in finished:
                finished[side] = "stopped"
                yield Delta(side, decoders[side].flush(), counts[side], time.perf_counter() - start, True, "stopped")

    try:
        with torch.inference_mode():
            if settings.max_new_tokens <= 0:
                yield from finish_stopped()
                return
            if strategy in ("mixed", "batched", "stacked"):
                if strategy == "mixed":
                    active = getattr(model, "active_adapter", "default")
                    rows = make_rows([prompts["base"], prompts["aligned"]], [BASE_ADAPTER, active], rows_chunk=chunk)
                else:
                    rows = batched_rows(model, tokenizer, [prompts["base"], prompts["aligned"]],
                                        settings.max_new_tokens, chunk=chunk, stacked=strategy == "stacked")
                    made.append(rows)
                # A finished row keeps decoding (its output is ignored): the batch stays rectangular.
                for tokens in _token_steps(rows, settings, generator, chunk):
                    if stop is not None and stop.is_set():  # per token, even inside a greedy chunk
                        yield from finish_stopped()
                        return
                    for side, token in zip(SIDES, tokens, strict=True):
                        yield from emit(side, token)
                    if len(finished) == len(SIDES):
                        return
            else:
                # PEFT's disable_adapter() surveys every module on entry (~20 ms on a 30-layer model), so
                # each side takes `block` tokens per turn inside one context, and the deltas are handed out
                # after the context closes: the model is never left with its adapter off between yields.
                contexts = {
                    "base": (lambda: model.disable_adapter()) if has_adapter(model) else contextlib.nullcontext,
                    "aligned": contextlib.nullcontext,
                }
                # Greedy on static rows, a turn's `block` tokens are one chunk: one host sync per turn.
                steps = {side: _token_steps(make_rows([prompts[side]], None, contexts[side], block), settings,
                                            generator, block) for side in SIDES}
                # Static rows switch the adapter themselves (only while prefilling and capturing).
                outer = {side: (contextlib.nullcontext if static else contexts[side]) for side in SIDES}
                while len(finished) < len(SIDES):
                    for side in SIDES:
                        if side in finished:
                            continue
                        if stop is not None and stop.is_set():
                            yield from finish_stopped()
                            return
                        pending: list[Delta] = []
                        with outer[side]():
                            for _ in range(block):
                                pending.extend(emit(side, next(steps[side])[0]))
                                if side in finished or (stop is not None and stop.is_set()):
                                    break
                        yield from pending
    finally:
        model.train(was_training)
        if made:
            info["decode"] = " / ".join(sorted({getattr(r, "decode", "eager") for r in made}))


class TwoSidedChat:
    """A conversation held twice: the base's and the aligned model's histories, one model in memory."""

    def __init__(self, model, tokenizer, *, strategy: str = "auto", system: str | None = None, block: int = 8,
                 chunk: int = 1, static: bool | None = None):
        self.model = model
        self.block = block
        self.chunk = chunk
        self.static = static
        self.tokenizer = tokenizer
        self.strategy = resolve_strategy(model, strategy)
        self.system = system
        self.history: dict[str, list[dict[str, str]]] = {side: [] for side in SIDES}
        self.last: ChatResult | None = None

    def reset(self) -> None:
        self.history = {side: [] for side in SIDES}

    def messages(self, side: str, prompt: str) -> list[dict[str, str]]:
        head = [{"role": "system", "content": self.system}] if self.system else []
        return head + self.history[side] + [{"role": "user", "content": prompt}]

    def stream(
        self, prompt: str, settings: GenerationSettings, stop: threading.Event | None = None
    ) -> Iterator[Delta]:
        """Answer `prompt` on both sides, yielding deltas; when done, each side's history gains the turn."""
        prompts = {side: render_messages(self.tokenizer, self.messages(side, prompt)) for side in SIDES}
        result = ChatResult(strategy=self.strategy, settings=settings)
        texts = {side: [] for side in SIDES}
        info: dict = {}
        for delta in stream_both(self.model, self.tokenizer, prompts, settings, strategy=self.strategy, stop=stop,
                                 block=self.block, chunk=self.chunk, static=self.static, info=info):
            side = result.side(delta.side)
            texts[delta.side].append(delta.text)
            side.tokens = delta.tokens
            side.elapsed_s = delta.elapsed
            if side.first_token_s is None and delta.tokens > 0:
                side.first_token_s = delta.elapsed
            if delta.done:
                side.reason = delta.reason
            yield delta
        result.decode = info.get("decode", "")
        for name in SIDES:
            side = result.side(name)
            side.text = "".join(texts[name])
            self.history[name].append({"role": "user", "content": prompt})
            self.history[name].append({"role": "assistant", "content": side.text})
        self.last = result

    def answer(self, prompt: str, settings: GenerationSettings, stop: threading.Event | None = None) -> ChatResult:
        for _ in self.stream(prompt, settings, stop):
            pass
        assert self.last is not None
        return self.last


def answer_once(model, tokenizer, prompt: str, settings: GenerationSettings, *, strategy: str = "auto") -> ChatResult:
    """One single-turn question to both sides (no history kept)."""
    return TwoSidedChat(model, tokenizer, strategy=strategy).answer(prompt, settings)
