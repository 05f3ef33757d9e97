"""Which two-sided strategy a model allows, and the adapter tricks behind them: per-row scaled
LoRA (batched) and stacked base/merged weights (stacked). The package docstring compares them."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

from .results import STRATEGIES


def model_device(model):
    return next(model.parameters()).device


# ---- what the model is ------------------------------------------------------------------------------


def is_unsloth_model(model) -> bool:
    """Whether Unsloth patched this model (its LoRA kernels ignore per-row adapter_names)."""
    candidates = [model]
    if hasattr(model, "get_base_model"):
        candidates.append(model.get_base_model())
    for m in candidates:
        if "unsloth" in type(m).__module__.lower():
            return True
        if getattr(getattr(m, "config", None), "unsloth_version", None):
            return True
        if "unsloth" in getattr(type(m).forward, "__module__", "").lower():
            return True
    return False


def has_adapter(model) -> bool:
    return hasattr(model, "disable_adapter") and bool(getattr(model, "peft_config", None))


def mixed_supported(model) -> tuple[bool, str]:
    """(can the mixed-adapter batch be used, why not)."""
    if not has_adapter(model):
        return False, "the model has no LoRA adapter"
    if is_unsloth_model(model):
        return False, "Unsloth's LoRA kernels ignore per-row adapter_names (every row would get the adapter)"
    config = model.peft_config.get(getattr(model, "active_adapter", "default"))
    if config is None:
        return False, "no active adapter"
    if getattr(config, "use_dora", False):
        return False, "PEFT's mixed batches do not support DoRA"
    for module in model.modules():
        if getattr(module, "merged", False):
            return False, "the adapter is merged into the weights"
    return True, ""


def _lora_layers(model) -> list:
    from peft.tuners.lora import LoraLayer

    return [m for m in model.modules() if isinstance(m, LoraLayer)]


def batched_supported(model) -> tuple[bool, str]:
    """(can the row-scaled batch be used, why not)."""
    ok, why = mixed_supported(model)
    if not ok:
        return ok, why
    from peft.tuners.lora import Linear

    for layer in _lora_layers(model):
        if not isinstance(layer, Linear):
            return False, f"a LoRA on a {type(layer).__name__} layer (only linear layers are row-scaled)"
        if getattr(layer, "lora_variant", None):
            return False, "a LoRA variant (DoRA, aLoRA ...) is in use"
    return True, ""


@contextlib.contextmanager
def row_scaled_adapter(model, rows_on: Sequence[bool], keep: list):
    """While inside, each LoRA layer's scaling is a (rows, 1, 1) tensor: scale where on, 0 where off.

    The tensors are appended to `keep`: a CUDA graph captured inside reads them at every replay."""
    import torch

    saved = []
    try:
        for layer in _lora_layers(model):
            for name in layer.active_adapters:
                if name not in layer.scaling or name not in layer.lora_B:
                    continue
                value = layer.scaling[name]
                weight = layer.lora_B[name].weight
                mask = torch.tensor([float(on) for on in rows_on], dtype=weight.dtype, device=weight.device)
                scaled = (mask * value).view(-1, 1, 1)
                keep.append(scaled)
                saved.append((layer, name, value))
                layer.scaling[name] = scaled
        yield
    finally:
        for layer, name, value in saved:
            layer.scaling[name] = value


def stacked_supported(model) -> tuple[bool, str]:
    """(can each LoRA layer become one batched matmul over stacked weights, why not)."""
    ok, why = batched_supported(model)
    if not ok:
        return ok, why
    import torch

    for layer in _lora_layers(model):
        if type(layer.get_base_layer()) is not torch.nn.Linear:
            return False, f"a LoRA over a {type(layer.get_base_layer()).__name__} (only plain nn.Linear is stacked)"
        if getattr(layer, "fan_in_fan_out", False):
            return False, "a fan-in-fan-out LoRA layer"
        if any(layer.lora_B[name].bias is not None for name in layer.active_adapters if name in layer.lora_B):
            return False, "a LoRA with its own bias"
    return True, ""


def stacked_extra_bytes(model) -> int:
    """Memory the stacked strategy adds while answering: one merged copy of every adapted weight (the
    base row's copy is a second one too: `torch.stack` copies both)."""
    weights = [layer.get_base_layer().weight for layer in _lora_layers(model)]
    return sum(2 * w.numel() * w.element_size() for w in weights)


def stacked_fits(model, free_bytes: int) -> bool:
    """Whether the stacks take at most half of the free device memory (auto's rule; else batched)."""
    return stacked_extra_bytes(model) <= free_bytes // 2


def _merged_weight(layer):
    """The layer's weight with its active adapters merged in: summed in float32, in the weight's dtype.

    Not PEFT's `get_delta_weight`, which multiplies B @ A in the weight's dtype (bf16) on a GPU."""
    weight = layer.get_base_layer().weight
    merged = weight.float()
    for name in layer.active_adapters:
        if name in layer.lora_A and name in layer.scaling:
            a, b = layer.lora_A[name].weight.float(), layer.lora_B[name].weight.float()
            merged = merged + (b @ a) * float(layer.scaling[name])
    return merged.to(weight.dtype)


@contextlib.contextmanager
def stacked_adapter(model, rows_on: Sequence[bool], keep: list):
    """While inside, each LoRA linear layer computes ONE batched matmul for all rows: row r against the
    base weight (off) or the merged weight (on). Inputs must be (rows, tokens, features).

    The stacked weights are built at the first entry and kept in `keep` (a CUDA graph captured inside
    reads them at every replay; later entries reuse them)."""
    import torch

    patched = []
    layers = _lora_layers(model)
    if not keep:
        for layer in layers:
            base = layer.get_base_layer()
            merged = _merged_weight(layer) if any(rows_on) else None
            # (rows, out, in) -> a (rows, in, out) view: x (rows, T, in) @ it is one bmm.
            keep.append(torch.stack([merged if on else base.weight.detach() for on in rows_on]).transpose(1, 2))
    try:
        for layer, stacked in zip(layers, keep, strict=True):
            bias = layer.get_base_layer().bias

            def forward(x, *args, _w=stacked, _b=bias, **kwargs):
                out = torch.matmul(x, _w)
                return out if _b is None else out + _b

            layer.forward = forward  # an instance attribute: nn.Module.__call__ runs it
            patched.append(layer)
        yield
    finally:
        for layer in patched:
            del layer.forward  # back to the class's forward


def resolve_strategy(model, requested: str = "auto") -> str:
    if requested not in STRATEGIES:
        raise ValueError(f"strategy must be one of {', '.join(STRATEGIES)}")
    ok, why = mixed_supported(model)
    if requested == "mixed" and not ok:
        from ..errors import UserError

        raise UserError(f"the mixed-adapter strategy cannot be used here: {why}", remedy="use --strategy sequential")
    if requested in ("batched", "stacked"):
        ok_b, why_b = (batched_supported if requested == "batched" else stacked_supported)(model)
        if not ok_b:
            from ..errors import UserError

            raise UserError(f"the {requested} strategy cannot be used here: {why_b}", remedy="use --strategy sequential")
    if requested == "auto":
        device = model_device(model)
        if device.type == "cuda":
            import torch

            if stacked_supported(model)[0] and stacked_fits(model, torch.cuda.mem_get_info(device)[0]):
                return "stacked"
            if batched_supported(model)[0]:
                return "batched"
        # Two single-row streams in turn beat the mixed batch on a CPU (benchmarks/chat_bench.py), replay
        # CUDA graphs on a GPU, which the mixed batch cannot, and work on Unsloth too.
        return "sequential"
    return requested


