"""``generation`` (machine translation): a seq2seq or decoder model fine-tuned on token-level targets
and scored by decoding (chrF++/BLEU), in its own unit executor (:mod:`xlexp.experiment.generation`);
``regime=icl`` prompts a frozen decoder with demonstrations instead. Its splits are tokenized as
sentences (the source side) only to check and cache them before any training."""

from __future__ import annotations

from xlexp.experiment.kinds import TaskKind, register


@register
class Generation(TaskKind):
    name = "generation"
    executor = "generation"
    generates = True
    stacks = False
    families = ("seq2seq", "decoder")

    def refusal(self, task_name, family, model_name, able):
        return (
            f"task '{task_name}' (type generation) needs a seq2seq or decoder model (model=tiny_random_seq2seq, "
            f"mt5_small, nllb_600m, qwen2_5_0_5b...); model '{model_name}' is {family}"
        )
