"""Training batches without a padding mask: TRL's preference collator pads every row on the RIGHT
(prompt + answer, then padding), so under causal attention no real token ever sees a padding token,
and dropping the mask changes nothing a loss or a metric reads: real positions keep their positions
(0, 1, 2 ... with or without the mask), their attention (only earlier, real tokens), and padding is
already out of every sum (labels -100, completion mask 0).

What it buys: with no mask the model asks for plain causal attention, which runs FlashAttention
kernels on a GPU instead of a masked kernel (cuDNN or memory-efficient attention, whose mask is built
and expanded every step), and transformers builds no 4-D mask at all.

Only while `active()` is entered (the trainer's loss and its reference pass, whose batches come from
that collator): generation and evaluation elsewhere pad on the left and keep their masks. The
`drop_padding_mask` switch turns it off (how the benchmarks measure it).
"""

from __future__ import annotations

import contextlib


def decoder_stack(model):
    """The module that receives `attention_mask` from the causal-LM head (LlamaModel for Llama), under
    any PEFT wrapper; None when it cannot be found."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    get_decoder = getattr(base, "get_decoder", None)
    decoder = get_decoder() if callable(get_decoder) else None
    return decoder if decoder is not None and decoder is not base else None


class RightPaddedBatches:
    """A forward pre-hook on the decoder stack that drops `attention_mask` while `active()` is entered."""

    def __init__(self, model):
        self.depth = 0
        self.dropped = 0  # how many forwards ran without their mask (the tests read it)
        self.handle = None
        decoder = decoder_stack(model)
        if decoder is not None:
            self.handle = decoder.register_forward_pre_hook(self._pre_hook, with_kwargs=True)

    @property
    def installed(self) -> bool:
        return self.handle is not None

    def _pre_hook(self, module, args, kwargs):
        if self.depth and kwargs.get("attention_mask") is not None:
            kwargs["attention_mask"] = None
            self.dropped += 1
            return args, kwargs
        return None

    @contextlib.contextmanager
    def active(self):
        self.depth += 1
        try:
            yield
        finally:
            self.depth -= 1

    def remove(self) -> None:
        if self.handle is not None:
            self.handle.remove()
            self.handle = None
