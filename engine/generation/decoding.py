"""Token-by-token decoding: prompts, stop tokens, sampling, and the KV-cached rows (eager and
CUDA-graph replayed) both sides step through."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

from .results import GenerationSettings
from .strategies import model_device, row_scaled_adapter, stacked_adapter

# ---- prompts ----------------------------------------------------------------------------------------


def render_messages(tokenizer, messages: Sequence[dict]) -> str:
    """The prompt text for a conversation, ending where the assistant's answer starts."""
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=True)
    lines = [f"{m['role'].capitalize()}: {m['content']}" for m in messages]
    return "\n\n".join(lines) + "\n\nAssistant:"


def stop_token_ids(model, tokenizer) -> set[int]:
    ids: set[int] = set()
    for source in (getattr(tokenizer, "eos_token_id", None), getattr(model.generation_config, "eos_token_id", None)):
        if isinstance(source, int):
            ids.add(source)
        elif isinstance(source, (list, tuple)):
            ids.update(int(i) for i in source)
    return ids


# ---- the decode loop --------------------------------------------------------------------------------


def _pick(logits, settings: GenerationSettings, generator):
    """Next token per row: argmax, or temperature + top-p sampling (HF's order: temperature, then top-p)."""
    import torch

    if settings.greedy:
        return logits.argmax(-1)
    scores = logits.float() / settings.temperature
    if settings.top_p < 1.0:
        sorted_scores, order = scores.sort(-1, descending=True)
        cumulative = sorted_scores.softmax(-1).cumsum(-1)
        drop = cumulative - sorted_scores.softmax(-1) >= settings.top_p  # keep the smallest set reaching p
        sorted_scores = sorted_scores.masked_fill(drop, float("-inf"))
        scores = torch.full_like(scores, float("-inf")).scatter(-1, order, sorted_scores)
    probs = scores.softmax(-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


class _Rows:
    """A left-padded batch of prompts decoded together with one KV cache."""

    def __init__(self, model, tokenizer, prompts: list[str], adapter_names: list[str] | None, device):
        import torch

        self.model = model
        self.adapter_names = adapter_names
        encoded = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
        width = max(len(e) for e in encoded)
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        ids = torch.full((len(encoded), width), pad, dtype=torch.long)
        mask = torch.zeros((len(encoded), width), dtype=torch.long)
        for row, e in enumerate(encoded):
            ids[row, width - len(e) :] = torch.tensor(e, dtype=torch.long)
            mask[row, width - len(e) :] = 1
        self.ids = ids.to(device)
        self.mask = mask.to(device)
        self.positions = (self.mask.cumsum(-1) - 1).clamp(min=0)
        self.cache = None

    def _forward(self, ids, positions):
        kwargs = {}
        if self.adapter_names is not None:
            kwargs["adapter_names"] = self.adapter_names
        out = self.model(
            input_ids=ids,
            attention_mask=self.mask,
            position_ids=positions,
            past_key_values=self.cache,
            use_cache=True,
            logits_to_keep=1,
            **kwargs,
        )
        self.cache = out.past_key_values
        return out.logits[:, -1, :]

    def prefill(self):
        return self._forward(self.ids, self.positions)

    def step(self, tokens):
        import torch

        self.mask = torch.cat([self.mask, self.mask.new_ones((self.mask.shape[0], 1))], dim=1)
        self.positions = self.positions[:, -1:] + 1
        return self._forward(tokens[:, None], self.positions)


class _StaticRows(_Rows):
    """`_Rows` on a static KV cache, with each decode step replayed from a captured CUDA graph.

    A 135M model's decode step is a few hundred tiny kernels: eager PyTorch spends its time in Python
    and kernel launches (~10 tokens/s per side measured on an H100 host), a replayed graph does not.
    The adapter state (off for the base, on for the aligned side, or PEFT's per-row adapter_names)
    is whatever it was while capturing, so `context` wraps only the prefill and the capture; replays
    need no `disable_adapter()` at all. With `use_graph=False` the same static step runs eagerly
    (how the CPU tests check the cache and mask bookkeeping against `_Rows`).

    Two kinds of step, each captured at its first use: `step(tokens)` returns the logits (the host
    picks the next token), and `greedy(n)` runs n steps that pick their own tokens on the device.
    """

    def __init__(self, model, tokenizer, prompts, adapter_names, device, *, max_new_tokens: int,
                 context=contextlib.nullcontext, use_graph: bool = True, chunk: int = 1):
        import torch
        from transformers import StaticCache

        super().__init__(model, tokenizer, prompts, adapter_names, device)
        self.context = context
        self.use_graph = use_graph
        batch, length = self.ids.shape
        self.length = length
        # Room for the prompt, every new token and `chunk` more: a chunk of greedy steps may run up to
        # chunk - 1 steps past the last token needed (an EOS mid-chunk), and the capture's warm-up one more.
        self.max_len = length + max_new_tokens + max(chunk, 1)
        base = model.get_base_model() if hasattr(model, "get_base_model") else model
        self.cache = StaticCache(config=base.config, max_cache_len=self.max_len)
        valid = self.mask.bool()
        # Decode-time mask over the whole static cache: prompt tokens that are not padding, then each new token.
        self.mask4 = torch.zeros((batch, 1, 1, self.max_len), dtype=torch.bool, device=device)
        self.mask4[:, 0, 0, :length] = valid
        self.ids_buf = torch.zeros((batch, 1), dtype=torch.long, device=device)
        self.pos_buf = self.positions[:, -1:].clone()
        self.steps = 0  # tokens fed after the prompt: the next one goes to cache slot length + steps
        # For `greedy`: the cache slot the next picked token will take (a device counter the step
        # advances itself), and each slot's picked token.
        self.slot = torch.zeros(1, dtype=torch.long, device=device)
        self.picked = torch.zeros((batch, self.max_len), dtype=torch.long, device=device)
        self.graphs: dict = {}  # step function -> (CUDA graph, what the step returns)
        self.graph_error = ""

    @property
    def decode(self) -> str:
        if self.use_graph:
            return "cuda-graph"
        return f"static cache (no CUDA graph: {self.graph_error})" if self.graph_error else "static cache"

    def _static_forward(self, ids, positions, mask):
        kwargs = {}
        if self.adapter_names is not None:
            kwargs["adapter_names"] = self.adapter_names
        out = self.model(input_ids=ids, attention_mask=mask, position_ids=positions, past_key_values=self.cache,
                         use_cache=True, logits_to_keep=1, **kwargs)
        return out.logits[:, -1, :]

    def prefill(self):
        import torch

        batch, length = self.ids.shape
        causal = torch.ones((length, self.max_len), dtype=torch.bool, device=self.ids.device).tril()
        mask = causal[None, None] & self.mask4  # (batch, 1, length, max_len)
        # A padding row attends to itself only, so no softmax row is empty (an empty row gives NaN).
        eye = torch.eye(length, self.max_len, dtype=torch.bool, device=self.ids.device)
        mask = mask | eye[None, None]
        with self.context():
            return self._static_forward(self.ids, self.positions, mask)

    def _logits_step(self):
        """Decode the token in `ids_buf` (cache slot, position and mask already set): its logits."""
        return self._static_forward(self.ids_buf, self.pos_buf, self.mask4)

    def _greedy_step(self):
        """`_logits_step`, then everything the next step needs, on the device: no host in the loop."""
        token = self._logits_step().argmax(-1, keepdim=True)  # (rows, 1): what `_pick` picks when greedy
        self.ids_buf.copy_(token)
        self.picked.index_copy_(1, self.slot, token)
        self.pos_buf.add_(1)
        self.mask4.index_fill_(3, self.slot, True)  # the next step attends to the token's own slot
        self.slot.add_(1)
        return self.picked

    def _capture(self, step):
        """(CUDA graph of `step`, its output). Warm-up runs first, as CUDA graphs require; it really
        runs, so the buffers it changes are put back, the cache's `cumulative_length` included (the
        slots it wrote are masked and written again later)."""
        import torch

        buffers = [layer.cumulative_length for layer in self.cache.layers]
        buffers += [self.ids_buf, self.pos_buf, self.mask4, self.slot, self.picked]
        saved = [b.clone() for b in buffers]
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with self.context():
            try:
                with torch.cuda.stream(stream):
                    for _ in range(2):
                        step()
            finally:  # also when the warm-up fails: the eager fallback goes on from the same state
                torch.cuda.current_stream().wait_stream(stream)
                for b, value in zip(buffers, saved, strict=True):
                    b.copy_(value)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                out = step()
        return graph, out

    def _run(self, step):
        """One `step`: replayed from its graph (captured at first use), or eagerly."""
        if self.use_graph and step not in self.graphs:
            try:
                self.graphs[step] = self._capture(step)
            except Exception as exc:  # noqa: BLE001 - capture is an optimisation: fall back, and say why
                self.use_graph = False
                self.graph_error = f"{type(exc).__name__}: {exc}".splitlines()[0]
        if not self.use_graph:
            with self.context():
                return step()
        graph, out = self.graphs[step]
        graph.replay()
        return out

    @property
    def greedy_graph(self):
        """The captured CUDA graph of the greedy step (None before its first use, or without graphs)."""
        entry = self.graphs.get(self._greedy_step)
        return entry[0] if entry else None

    def feed(self, tokens) -> None:
        """Set up the next step to decode `tokens` (one per row) at the next cache slot."""
        self.mask4[:, 0, 0, self.length + self.steps] = True
        self.steps += 1
        self.ids_buf.copy_(tokens[:, None])
        self.pos_buf.add_(1)

    def step(self, tokens):
        self.feed(tokens)
        return self._run(self._logits_step)

    def greedy(self, n: int) -> list[list[int]]:
        """n greedy steps back to back, then each row's n tokens with ONE host sync.

        Each step decodes the token the previous one picked (the first: what `feed` was given), so
        after `feed`, keep calling `greedy`. On a GPU the host only queues n replays of one graph."""
        first = self.length + self.steps
        self.slot.fill_(first)  # no sync: the host count stays the reference
        for _ in range(n):
            self._run(self._greedy_step)
        self.steps += n
        return self.picked[:, first : first + n].tolist()


class _Decoder:
    """Incremental detokenisation of one side: emits only complete characters.

    Each push decodes a short window, not the whole answer (the prefix/read offsets of vLLM's
    detokenizer): `ids[prefix:read]` were emitted already and are decoded again only as context, so
    that what depends on the neighbours (a tokenizer's leading space, bytes of one character split
    across tokens) comes out as in a decode of the whole answer. A window that ends in an incomplete
    character ("\ufffd") waits for the next token. `read` moves only to a character boundary.
    """

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.ids: list[int] = []
        self.emitted = ""
        self.prefix = 0
        self.read = 0

    def _decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True)

    def push(self, token: int) -> str:
        self.ids.append(token)
        before = self._decode(self.ids[self.prefix : self.read])
        text = self._decode(self.ids[self.prefix :])
        if len(text) <= len(before) or text.endswith("\ufffd") or not text.startswith(before):
            return ""  # nothing new yet (the rest comes with a later token, or at the flush)
        delta = text[len(before) :]
        self.prefix, self.read = self.read, len(self.ids)
        self.emitted += delta
        return delta

    def flush(self) -> str:
        """What is left, from one decode of the whole answer (so the deltas add up to exactly it)."""
        text = self._decode(self.ids)
        delta = text[len(self.emitted) :] if text.startswith(self.emitted) else ""
        self.emitted = text
        return delta


def batched_rows(model, tokenizer, prompts: list[str], max_new_tokens: int, *, chunk: int = 1,
                 stacked: bool = False) -> _StaticRows:
    """The batched (or stacked) strategy's rows, base first, on a static cache; one CUDA graph per kind
    of step on a GPU. batched: the LoRA scaled by 0 on the base row and by 1 on the aligned row;
    stacked: each LoRA layer one batched matmul over (base weight, merged weight)."""
    device = model_device(model)
    keep: list = []
    adapter = stacked_adapter if stacked else row_scaled_adapter
    rows = _StaticRows(model, tokenizer, prompts, None, device, max_new_tokens=max_new_tokens, chunk=chunk,
                       use_graph=device.type == "cuda",
                       context=lambda: adapter(model, (False, True), keep))
    rows.keep = keep
    return rows


def _token_steps(rows, settings: GenerationSettings, generator, chunk: int) -> Iterator[list[int]]:
    """Each decode step's tokens, one per row, the prefill's first; it decodes only as it is iterated.

    Greedy on a static cache, the steps after the first run in chunks (`_StaticRows.greedy`): one host
    sync per chunk instead of one per token, same tokens. Chunks end at multiples of `chunk` tokens
    (the sequential strategy's turns) and at max_new_tokens, never later. Otherwise each token is
    picked on the host from the step's logits (sampling, the dynamic cache, chunk 1).
    """
    tokens = _pick(rows.prefill(), settings, generator)
    yield tokens.tolist()
    if settings.greedy and isinstance(rows, _StaticRows) and chunk > 1:
        rows.feed(tokens)
        done = 1
        while done < settings.max_new_tokens:
            n = min(chunk - done % chunk, settings.max_new_tokens - done)
            done += n
            yield from (list(step) for step in zip(*rows.greedy(n), strict=True))
        return
    while True:
        tokens = _pick(rows.step(tokens), settings, generator)
        yield tokens.tolist()

