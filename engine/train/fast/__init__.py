"""How a step is made cheaper without changing what it computes: steps recorded as CUDA graphs
(graphed_step), packed pairs (packing), unmasked right-padded rows (padding), lagged logs (lagged_log),
batched start-up passes (fast_prep) and compiled decoder layers (compiled_layers)."""
