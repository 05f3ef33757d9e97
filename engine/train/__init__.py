"""DPO training: backends (unsloth, hf), the event callback, and the run driver."""
