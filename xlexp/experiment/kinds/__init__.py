"""Task kinds as registered units: what a task type does once its rows are read. Each module in this
folder defines one :class:`TaskKind` subclass (decorated with :func:`register`) named like its task
type (``xlexp.tasks.types``, which reads the rows); modules are found by scanning the folder, and a
kind (with its type) may also be registered from outside the package, as a regime can. Adding a task
kind is one module (its type and its kind) plus a task YAML.

A kind owns the chain after reading: how examples become token ids (``tokenize``), which model and
head it trains (``build_model``), the training loss (``loss``, :mod:`xlexp.engine.losses`), how a
split is decoded and scored (``score``), how many examples a split holds (``n_examples``), how it is
subsampled and how few-shot draws its shots, which per-example predictions are kept, and which unit
executor runs it when its chain is not a classifier's (``executor``: retrieval, generation; see
:mod:`xlexp.experiment.executors`). Stages above ask the kind; none tests a task type. The
defaults are those of one label per example (sentence classification).

Kinds sit below the rest of experiment: they import data, engine, models and tasks, never the run
context, so ``ctx`` arguments are used by attribute only.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from xlexp.config.registry import Registry
from xlexp.data.tokenized import TokenizedSplit, tokenize_sequences
from xlexp.engine.inference import compute_metrics, label_counts, predict
from xlexp.engine.losses import LABELS, TrainLoss
from xlexp.models.encoders import load_classifier
from xlexp.tasks.readers import Example
from xlexp.tasks.spec import TaskSpec

TRANSFORMERS = ("encoder", "decoder", "seq2seq")  # every model family but the classical (scikit-learn) one


class TaskKind:
    name: ClassVar[str]  # the task type it carries (``type:`` in the task YAML)
    # a unit executor of its own (``xlexp.experiment.executors``), used unless the regime runs the kind
    # itself (``Regime.own_executor``); None: the regime's ``run_unit``
    executor: ClassVar[str | None] = None
    loss: ClassVar[TrainLoss] = LABELS  # the training loss; its ``classes`` says whether labels are classes
    pair: ClassVar[bool] = False  # two texts per example (premise/hypothesis): prompts, probe features
    generates: ClassVar[bool] = False  # the model writes text (decoding), it does not pick a label
    stacks: ClassVar[bool] = True  # trainer.sources_together may train its classifiers in one stack
    keeps_examples: ClassVar[bool] = False  # its splits carry their examples (QA: answers are scored on the text)
    sides: ClassVar[tuple[str, ...]] = ("",)  # what ``tokenize`` reads of each split (retrieval: the pivot side too)
    # the model families (model.family) that can carry it; None: every one. Checked with the settings.
    families: ClassVar[tuple[str, ...] | None] = None

    def refusal(self, task_name: str, family: str, model_name: str, able: list[str]) -> str:
        """The one line for a model family that cannot carry this kind (``able``: the kinds it can)."""
        example = (
            " (e.g. model=tiny_random, me5_small_offline, xlmr_base)" if "encoder" in (self.families or ()) else ""
        )
        return (
            f"model '{model_name}' (family {family}) does not run {self.name} tasks (task '{task_name}'); a "
            f"{family} model runs {', '.join(able)}; {self.name} needs model.family "
            f"{' or '.join(self.families or ())}{example}"
        )

    # -- tokenize -------------------------------------------------------------------------------
    def tokenize(
        self, spec: TaskSpec, tokenizer, examples: list[Example], max_length: int, side: str = ""
    ) -> TokenizedSplit:
        """One sequence per example (``side='pivot'``: the example's other text, for retrieval)."""
        texts = [e.text_pair if side == "pivot" else e.text for e in examples]
        return tokenize_sequences(tokenizer(texts, truncation=False)["input_ids"], examples, max_length)

    # -- head / model ---------------------------------------------------------------------------
    def build_model(self, model_settings, path: str, spec: TaskSpec) -> nn.Module:
        return load_classifier(model_settings, path, len(spec.labels), token_level=spec.token_level)

    # -- decode and score -----------------------------------------------------------------------
    def score(
        self,
        model,
        split: TokenizedSplit,
        spec: TaskSpec,
        batch_size: int,
        pad_id: int,
        device: torch.device,
        precision: str,
    ) -> tuple[Any, dict[str, float]]:
        preds = predict(model, split, batch_size, pad_id, device, precision)
        return preds, self.metrics(preds, split, spec)

    def metrics(self, preds, split: TokenizedSplit, spec: TaskSpec) -> dict[str, float]:
        """The task's metrics of ``preds`` (``score``, and the stacked trainer's own predictions)."""
        return compute_metrics(preds, split, spec.metrics, spec.labels)

    # -- examples ---------------------------------------------------------------------------------
    def n_examples(self, split: TokenizedSplit) -> int:
        """Examples (not windows) in a split: what a record's ``n_examples`` says."""
        return len(split)

    def subsample(self, split: TokenizedSplit, limit: int | None, seed: int) -> TokenizedSplit:
        """``limit`` examples drawn with ``seed`` (all of them when there are fewer)."""
        if limit is None or limit >= len(split):
            return split
        idx = np.sort(np.random.default_rng(seed).permutation(len(split))[:limit])
        return split.subset(idx)

    def shot_labels(self, pool: TokenizedSplit) -> np.ndarray:
        """What few-shot draws from, one label per drawable example (``xlexp.data.fewshot``)."""
        return pool.labels

    def shot_rows(self, pool: TokenizedSplit, ids) -> TokenizedSplit:
        """The rows of the drawn examples ``ids`` (training rows of a few-shot cell)."""
        return pool.subset(np.asarray(ids))

    # -- records ------------------------------------------------------------------------------------
    def label_counts(self, test: TokenizedSplit, preds) -> tuple[int, int] | None:
        """(labels macro-F1 averages over, labels in the gold) of a test cell; None: not per example."""
        return label_counts(test.labels, preds)

    def single_class(self, preds, split: TokenizedSplit, spec: TaskSpec) -> str | None:
        """The one label a model predicts for a whole split whose gold labels have several classes (a
        collapse to the majority class), else None."""
        if not spec.labels:
            return None
        preds = np.asarray(preds)
        if preds.ndim != 1 or len(preds) < 2 or len(np.unique(split.labels)) < 2 or len(np.unique(preds)) != 1:
            return None
        return str(spec.labels[int(preds[0])])

    def prediction_columns(self, test: TokenizedSplit, preds) -> dict[str, Any] | None:
        """The per-example test predictions kept beside the records (paired bootstrap), or None."""
        return {"example": test.example_ids, "label": test.labels, "pred": preds}


class WindowedKind(TaskKind):
    """Examples cut into windows (token tasks' long sentences, QA's long contexts): ``example_ids`` joins them."""

    def n_examples(self, split: TokenizedSplit) -> int:
        return len(np.unique(split.example_ids))

    def label_counts(self, test, preds):
        return None

    def single_class(self, preds, split, spec):
        return None


REGISTRY: Registry[TaskKind] = Registry("task kind", __name__, __path__)
register = REGISTRY.register  # class decorator: the chain of tasks of ``type: <cls.name>``
available = REGISTRY.names
get = REGISTRY.get


def of(spec: TaskSpec) -> TaskKind:
    """The kind of ``spec``'s task type."""
    return get(spec.type, f"task '{spec.name}' (type {spec.type}) has no task kind in xlexp.experiment.kinds")


def check_family(kind_name: str, task_name: str, family: str, model_name: str) -> None:
    """One line (exit 2) when model family ``family`` cannot carry tasks of ``kind_name``, naming the
    kinds it can; a type without a kind is refused here too, before any data is read."""
    from xlexp.errors import XlexpError

    kind = get(kind_name, f"task '{task_name}' has no task kind in xlexp.experiment.kinds")
    if kind.families is None or family in kind.families:
        return
    able = [n for n in available() if get(n).families is None or family in get(n).families]
    raise XlexpError(kind.refusal(task_name, family, model_name, able))
