"""Prompts for in-context transfer (``regime=icl``): a template, a verbaliser per label, an optional
instruction and the separator between demonstrations, from the task YAML's ``prompt`` key, optionally
per language.

Why in the task YAML: the template and verbalisers are part of what the task *is* for a model that is
not fine-tuned (which words name the labels, in which language), the same way label lists are. A
language's entry under ``prompt.languages`` overrides any key for demonstrations or queries in that
language, so a study can keep English instructions everywhere (the default) or localise them::

    prompt:
      instruction: "Classify the sentiment of each text."
      template: "Text: {text}\\nSentiment: {label}"     # {text}, {text_pair}; {label} last
      separator: "\\n\\n"
      verbalizers: {negative: negative, neutral: neutral, positive: positive}   # default: the label names
      languages:
        ind: {verbalizers: {negative: negatif, neutral: netral, positive: positif}}
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from xlexp.errors import XlexpError

DEFAULT_TEMPLATE = "{text}\nLabel: {label}"
DEFAULT_PAIR_TEMPLATE = "{text}\nQuestion: {text_pair} Answer: {label}"
KEYS = ("instruction", "template", "separator", "verbalizers", "languages")


@dataclass(frozen=True)
class Prompt:
    """One language's prompt: ``render(example)`` is the template up to the label (the context), and
    each label's continuation is what follows it (a leading space moved onto the continuation, as
    lm-eval does, so the context never ends in a space)."""

    instruction: str
    template: str
    separator: str
    verbalizers: tuple[str, ...]  # in label order

    def context(self, text: str, text_pair: str | None = None) -> str:
        head = self.template.split("{label}", 1)[0]
        return head.format(text=text, text_pair=text_pair or "").rstrip(" ")

    def continuations(self) -> list[str]:
        head = self.template.split("{label}", 1)[0]
        space = " " if head.endswith(" ") else ""
        return [space + v for v in self.verbalizers]

    def demonstration(self, text: str, text_pair: str | None, label: int) -> str:
        return self.template.format(text=text, text_pair=text_pair or "", label=self.verbalizers[label])


def prompt_for(
    options: Mapping[str, Any] | None, language: str, labels: tuple[str, ...], task: str, pair: bool = False
) -> Prompt:
    raw = dict((options or {}).get("prompt") or {})
    unknown = [k for k in raw if k not in KEYS]
    if unknown:
        raise XlexpError(f"task '{task}': prompt.{unknown[0]} is not a prompt key; known: {', '.join(KEYS)}")
    per_language = raw.pop("languages", None) or {}
    own = per_language.get(language) or {}
    bad = [k for k in own if k not in KEYS or k == "languages"]
    if bad:
        raise XlexpError(f"task '{task}': prompt.languages.{language}.{bad[0]} is not a prompt key")
    merged = {**raw, **own}
    template = str(merged.get("template") or (DEFAULT_PAIR_TEMPLATE if pair else DEFAULT_TEMPLATE))
    if template.count("{label}") != 1 or not template.rstrip().endswith("{label}"):
        raise XlexpError(f"task '{task}': prompt.template must end with {{label}} (once), got {template!r}")
    verbal = dict(merged.get("verbalizers") or {})
    missing = [label for label in labels if label not in verbal] if verbal else []
    if missing:
        raise XlexpError(f"task '{task}': prompt.verbalizers (language {language}) has no word for label(s) {missing}")
    words = tuple(str(verbal.get(label, label)) for label in labels)
    if len(set(words)) != len(words):
        raise XlexpError(
            f"task '{task}': prompt.verbalizers (language {language}) give two labels the same word: {words}"
        )
    return Prompt(str(merged.get("instruction") or ""), template, str(merged.get("separator", "\n\n")), words)
