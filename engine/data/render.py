"""Turning a triplet into text for a model: the one place training and evaluation both use.

`to_trl_record()` gives TRL's conversational explicit-prompt record; `render_prompt()` the prompt as the
tokenizer's chat template renders it (with the generation prompt), or a plain "User: ...\\nAssistant:"
text when the tokenizer has no template; `render_pair()` the prompt and both completions.
"""

from __future__ import annotations

from typing import Any

from .triplet import Triplet

PLAIN_ROLES = {"user": "User", "assistant": "Assistant", "system": "System"}


def to_trl_record(t: Triplet) -> dict[str, Any]:
    return {
        "prompt": [dict(m) for m in t.prompt],
        "chosen": [{"role": "assistant", "content": t.chosen}],
        "rejected": [{"role": "assistant", "content": t.rejected}],
    }


def has_chat_template(tokenizer: Any) -> bool:
    return bool(getattr(tokenizer, "chat_template", None))


def plain_prompt(t: Triplet) -> str:
    lines = [f"{PLAIN_ROLES.get(m['role'], m['role'].title())}: {m['content']}" for m in t.prompt]
    return "\n".join(lines) + "\nAssistant:"


def render_prompt(t: Triplet, tokenizer: Any) -> str:
    if tokenizer is not None and has_chat_template(tokenizer):
        return tokenizer.apply_chat_template([dict(m) for m in t.prompt], tokenize=False, add_generation_prompt=True)
    return plain_prompt(t)


def render_pair(t: Triplet, tokenizer: Any) -> tuple[str, str, str]:
    """(prompt_text, chosen_text, rejected_text); prompt_text + chosen_text is the whole chosen sequence.

    With a chat template the completions are the template's rendering of the assistant turn after the
    prompt (so they end with its end-of-turn marker); without one they are " " + reply.
    """
    prompt_text = render_prompt(t, tokenizer)
    if tokenizer is None or not has_chat_template(tokenizer):
        return prompt_text, " " + t.chosen, " " + t.rejected
    return prompt_text, _completion(t, t.chosen, prompt_text, tokenizer), _completion(
        t, t.rejected, prompt_text, tokenizer
    )


def _completion(t: Triplet, reply: str, prompt_text: str, tokenizer: Any) -> str:
    messages = [dict(m) for m in t.prompt] + [{"role": "assistant", "content": reply}]
    full = tokenizer.apply_chat_template(messages, tokenize=False)
    if full.startswith(prompt_text):
        return full[len(prompt_text):]
    return reply  # a template that renders the prompt differently once a reply follows
