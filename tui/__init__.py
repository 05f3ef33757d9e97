"""The dpo-tutor terminal UI: a Textual client of `dpo_tutor.engine`."""
