"""DPO training. A run (run.py) is planned once (plan.py: backend, device, precision, compiled layers,
recorded steps, packing, from the config and the machine), its DPOConfig built from config + plan
(args.py), its pairs read (pairs.py, cached by pairs_cache.py), trained by TRL's DPOTrainer or ours
(trainer.py, with the cheaper steps of fast/) on a backend (backends/: hf, unsloth), its events written by
callback.py and its files by artifacts.py; launch.py runs it on several processes."""
