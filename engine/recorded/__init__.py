"""A real recorded run (events.jsonl) shipped for classrooms without a GPU."""
