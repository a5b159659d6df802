"""Generation metrics through sacrebleu: chrF++ (chrF with word bigrams, Popović 2017) and BLEU, corpus
level, with sacrebleu's signature (version, tokenisation, smoothing...) kept beside every number so a
score can be compared with a published one only when the signatures agree (Post, WMT 2018).

Metric names are ``chrf_<direction>`` / ``bleu_<direction>`` (``xlexp.tasks.types.generation``);
values are sacrebleu's 0-100 scores.
"""

from __future__ import annotations

from xlexp.errors import XlexpError

KINDS = ("chrf", "bleu")


def _metric(kind: str):
    try:
        from sacrebleu.metrics import BLEU, CHRF
    except ImportError as e:
        raise XlexpError(f"generation metrics need the sacrebleu package ({e}); `pip install sacrebleu`") from None
    return CHRF(word_order=2) if kind == "chrf" else BLEU()


def generation_scores(
    hypotheses: list[str], references: list[str], kinds: tuple[str, ...] = KINDS
) -> tuple[dict[str, float], dict[str, str]]:
    """({kind: corpus score}, {kind: sacrebleu signature}) for ``kinds`` among chrf (chrF++) and bleu."""
    if len(hypotheses) != len(references):
        raise ValueError("generation_scores: as many hypotheses as references")
    scores, signatures = {}, {}
    for kind in kinds:
        if kind not in KINDS:
            raise XlexpError(f"unknown generation metric '{kind}'; known: chrf (chrF++), bleu")
        metric = _metric(kind)
        scores[kind] = float(metric.corpus_score(hypotheses, [references]).score)
        signatures[kind] = str(metric.get_signature())
    return scores, signatures
