"""Exact match and F1 of extractive QA answers, as plain functions.

``squad``: the official SQuAD v1.1 evaluation (``evaluate-v1.1.py``): lower case, drop ASCII
punctuation, drop the English articles a/an/the, collapse whitespace; F1 over whitespace tokens;
the max over the gold answers. XTREME scores XQuAD with it in every language.

``mlqa``: MLQA's evaluation (``mlqa_evaluation_v1.py``): every Unicode punctuation character is
dropped, articles are removed per language (en, es, de, vi, ar; none for hi and zh), and Chinese is
split into single CJK characters (its "mixed segmentation"), so F1 is character-level there. A
language outside MLQA's seven gets whitespace tokens and no article removal.

Scores are fractions in [0, 1] (the SQuAD script prints 100x these). An empty prediction scores
F1 = 0 and EM = 1 only if a gold answer also normalises to the empty string (as in the script).
"""

from __future__ import annotations

import re
import string
import sys
import unicodedata
from collections import Counter
from collections.abc import Iterable
from functools import lru_cache

MODES = ("squad", "mlqa")

_SQUAD_PUNCT = frozenset(string.punctuation)
_MLQA_ARTICLES = {
    "en": r"\b(a|an|the)\b",
    "es": r"\b(un|una|unos|unas|el|la|los|las)\b",
    "vi": r"\b(của|là|cái|chiếc|những)\b",
    "de": r"\b(ein|eine|einen|einem|eines|einer|der|die|das|den|dem|des)\b",
    "ar": r"\sال^|ال",
}
_CJK = re.compile(r"[\u4e00-\u9fa5]")


@lru_cache(maxsize=1)
def _unicode_punct() -> frozenset[str]:
    return (
        frozenset(chr(i) for i in range(sys.maxunicode + 1) if unicodedata.category(chr(i)).startswith("P"))
        | _SQUAD_PUNCT
    )


def _base(lang: str) -> str:
    """'zh-Hant' / 'zh_hant' / 'zh' -> 'zh'."""
    return re.split(r"[-_]", lang or "", maxsplit=1)[0].lower()


def _mixed_segmentation(text: str, punct: frozenset[str]) -> list[str]:
    """MLQA's Chinese segmentation: each CJK character and punctuation mark alone, the rest by spaces."""
    out, buf = [], ""
    for ch in text:
        if _CJK.search(ch) or ch in punct:
            out.extend(buf.split())
            buf = ""
            out.append(ch)
        else:
            buf += ch
    out.extend(buf.split())
    return out


def normalize_answer(text: str, mode: str = "squad", lang: str = "en") -> str:
    """The normalised answer; tokens are the result's whitespace-separated parts."""
    if mode == "squad":
        text = "".join(ch for ch in text.lower() if ch not in _SQUAD_PUNCT)
        text = re.sub(r"\b(a|an|the)\b", " ", text)
        return " ".join(text.split())
    if mode != "mlqa":
        raise ValueError(f"unknown QA normalisation '{mode}'; use one of {', '.join(MODES)}")
    base = _base(lang)
    punct = _unicode_punct()
    text = "".join(ch for ch in text.lower() if ch not in punct)
    if base in _MLQA_ARTICLES:
        text = re.sub(_MLQA_ARTICLES[base], " ", text)
    tokens = _mixed_segmentation(text, punct) if base == "zh" else text.split()
    return " ".join(t for t in tokens if t.strip())


def exact_match(prediction: str, gold: str, mode: str = "squad", lang: str = "en") -> float:
    return float(normalize_answer(prediction, mode, lang) == normalize_answer(gold, mode, lang))


def f1(prediction: str, gold: str, mode: str = "squad", lang: str = "en") -> float:
    pred_tokens = normalize_answer(prediction, mode, lang).split()
    gold_tokens = normalize_answer(gold, mode, lang).split()
    same = sum((Counter(pred_tokens) & Counter(gold_tokens)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred_tokens), same / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def score(prediction: str, golds: Iterable[str], mode: str = "squad", lang: str = "en") -> tuple[float, float]:
    """(exact match, F1) of one prediction: each the max over the gold answers (0 with none)."""
    golds = list(golds)
    if not golds:
        return 0.0, 0.0
    return (
        max(exact_match(prediction, g, mode, lang) for g in golds),
        max(f1(prediction, g, mode, lang) for g in golds),
    )


def corpus_scores(
    predictions: Iterable[str], golds: Iterable[Iterable[str]], mode: str = "squad", lang: str = "en"
) -> dict[str, float]:
    """Mean exact match and F1 over questions (fractions; the SQuAD script's numbers / 100)."""
    pairs = [score(p, g, mode, lang) for p, g in zip(predictions, golds)]
    n = max(len(pairs), 1)
    return {"exact_match": sum(e for e, _ in pairs) / n, "f1": sum(f for _, f in pairs) / n}
