"""What every training unit of one run shares (``RunContext``), what a caller may hook into
(``RunHooks``), and how a unit's cells become records (``UnitOutput``).

The context holds typed settings (``xlexp.config.schema.Settings``), never the Hydra config: the
stages below (engine, models, data) are called with plain values and settings objects. What depends
on the task's type (its model, scores, example counts, kept predictions) is asked of its task kind
(``ctx.kind``, :mod:`xlexp.experiment.kinds`).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from xlexp.config.schema import Settings
from xlexp.data.tokenized import TokenCache, TokenizedSplit
from xlexp.data.vocab import VocabTrim, count_parameters, trim_embeddings
from xlexp.engine.hardware import peak_memory_mb
from xlexp.engine.loop import TrainSettings
from xlexp.experiment import kinds
from xlexp.experiment.plan import Plan, TrainingUnit
from xlexp.models import finetune
from xlexp.models.encoders import load_encoder
from xlexp.results.languages import normalize_tag
from xlexp.results.store import Record, git_commit, now_iso
from xlexp.tasks.spec import TaskSpec, load_split
from xlexp.tracking.base import Tracker

log = logging.getLogger(__name__)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def training_texts(spec: TaskSpec, plan: Plan, data_dir: Path, source: str) -> list[str]:
    """Train-split text of every plan language that has one (for the tiny model's tokenizer)."""
    texts: list[str] = []
    split = "train" if spec.trains else "test"  # retrieval has no training data
    for lang in plan.languages:
        if spec.has_split(lang, split, data_dir, source):
            # a target-only language's train split is read for the vocabulary only: empty is fine there
            for e in load_split(spec, lang, split, data_dir, source, allow_empty=(lang, split) not in plan.needs):
                texts.extend(t for t in (e.text, e.text_pair, " ".join(e.tokens)) if t)
    return texts


@dataclass
class RunHooks:
    """How a caller (e.g. the sweep driver) watches a run without the runner knowing about it.

    ``on_eval(unit, step, metrics)`` gets every dev evaluation (``metrics[lang][metric]``) and may
    raise to stop the run (e.g. ``optuna.TrialPruned``); ``tags`` are written into every record
    (``study``, ``trial``); ``run_id`` is filled in when the run starts; ``show_matrix=False`` keeps
    the end-of-run matrix off the terminal (a sweep trial prints its trial line only); ``records_dir``
    sends the record files elsewhere (see :func:`xlexp.results.pending.promote`).
    """

    on_eval: Callable[[TrainingUnit, int, dict[str, dict[str, float]]], None] | None = None
    tags: dict[str, object] = field(default_factory=dict)
    run_id: str | None = None
    show_matrix: bool = True
    # where the run's record and prediction files go instead of ``paths.results_dir`` (a sweep trial
    # writes to a pending folder that only a COMPLETE trial promotes into the store)
    records_dir: Path | None = None


@dataclass
class RunContext:
    """What every unit of one run shares. Built once by the runner; only ``progress`` and
    ``model_info`` change while the run goes on."""

    settings: Settings
    spec: TaskSpec
    plan: Plan
    cache: TokenCache | None  # None for classical (scikit-learn) models, which need no tokenizer
    model_path: str
    device: torch.device
    precision: str
    run_id: str
    config_hash: str
    tracker: Tracker
    hooks: RunHooks = field(default_factory=RunHooks)
    trim: VocabTrim | None = None  # model.trim_vocab: the kept ids (the cache serves renumbered splits)
    progress: object = None
    model_info: dict = field(default_factory=dict)  # parameter counts of the last model built, for the records

    @property
    def kind(self) -> kinds.TaskKind:
        """The task's kind: its model, loss, scores and example counts."""
        return kinds.of(self.spec)

    @property
    def cache_dir(self) -> Path:
        return self.settings.paths.cache_dir

    @property
    def pad_id(self) -> int:
        return self.cache.pad_id

    def build_classifier(self) -> torch.nn.Module:
        """The task model as configured: encoder (+ checkpoint), trimmed vocabulary, frozen parts or
        LoRA, gradient checkpointing; on the run's device."""
        m = self.settings.model
        model = self.kind.build_model(m, self.model_path, self.spec)
        if self.trim is not None:
            trim_embeddings(model.encoder, self.trim)
        model = finetune.prepare(model, m).to(self.device)
        total, trainable = count_parameters(model)
        if self.model_info.get("params") != total:  # log once per run, not per unit
            log.info("model: %s parameters, %s trainable (%s)", f"{total:,}", f"{trainable:,}", m.finetune)
        self.model_info = {"params": total, "trainable_params": trainable}
        return model

    def build_encoder(self) -> torch.nn.Module:
        encoder = load_encoder(self.settings.model, self.model_path)
        if self.trim is not None:
            trim_embeddings(encoder, self.trim)
        encoder = encoder.to(self.device)
        total, _ = count_parameters(encoder)
        self.model_info = {"params": total, "trainable_params": 0}
        return encoder

    def train_settings(self, seed: int, epochs: int | None = None, batch_size: int | None = None) -> TrainSettings:
        s = self.settings
        return TrainSettings(
            epochs=epochs or s.trainer.epochs,
            batch_size=batch_size or s.data.batch_size,
            eval_batch_size=s.data.eval_batch_size,
            group_by_length=s.data.group_by_length,
            eval_every=s.trainer.eval_every,
            precision=self.precision,
            seed=seed,
            grad_accum_steps=s.trainer.grad_accum_steps,
            compile=s.trainer.compile,
            sampling=s.data.sampling,
        )

    def split(self, lang: str, name: str, seed: int) -> TokenizedSplit:
        d = self.settings.data
        limit = d.max_train_examples if name == "train" else d.max_eval_examples
        return self.kind.subsample(self.cache.get(lang, name), limit, seed)

    def score(self, model, split: TokenizedSplit) -> tuple[np.ndarray, dict[str, float]]:
        """Decode ``split`` with ``model`` and score it, as the task kind does."""
        return self.kind.score(
            model, split, self.spec, self.settings.data.eval_batch_size, self.pad_id, self.device, self.precision
        )

    def metrics(self, preds, split: TokenizedSplit) -> dict[str, float]:
        """The task's metrics of ``preds`` (``score`` and the stacked trainer)."""
        return self.kind.metrics(preds, split, self.spec)


@dataclass
class UnitOutput:
    """Records and per-example test predictions of one unit, built up cell by cell."""

    ctx: RunContext
    unit: TrainingUnit
    records: list[Record] = field(default_factory=list)
    predictions: list[pd.DataFrame] = field(default_factory=list)

    def add(
        self,
        target: str,
        split: str,
        metrics: dict[str, float],
        n: int,
        selection: str,
        step: int | None,
        k: int | None = None,
        shot_set: int | None = None,
        n_labels: int | None = None,
    ) -> None:
        """One record per metric; ``n_labels`` (sentence tasks) goes on the macro-F1 record only."""
        ctx, s = self.ctx, self.ctx.settings
        for metric, value in metrics.items():
            self.records.append(
                Record(
                    experiment=s.experiment,
                    run_id=ctx.run_id,
                    model=s.model.name,
                    task=ctx.spec.name,
                    regime=s.regime.name,
                    source=self.unit.source,
                    target=target,
                    target_tag=ctx.spec.tags.get(target) or normalize_tag(target),
                    split=split,
                    metric=metric,
                    value=value,
                    n_examples=n,
                    seed=self.unit.seed,
                    selection=selection,
                    config_hash=ctx.config_hash,
                    git_commit=git_commit(),
                    timestamp=now_iso(),
                    k=k,
                    shot_set=shot_set,
                    step=step,
                    finetune=s.model.finetune,
                    precision=ctx.precision,
                    family=s.model.family,
                    n_labels=n_labels if metric == "macro_f1" else None,
                    primary_metric=ctx.spec.primary_metric,
                    **ctx.model_info,
                    **ctx.hooks.tags,
                )
            )

    def stamp_peak_memory(self) -> None:
        """Peak memory of the run so far, on every record of this unit (known only at its end)."""
        mb = round(peak_memory_mb(self.ctx.device), 1)
        self.records = [replace(r, peak_memory_mb=mb) for r in self.records]

    def add_test(
        self,
        target: str,
        test: TokenizedSplit,
        preds: np.ndarray,
        metrics: dict[str, float],
        selection: str,
        step: int | None,
        k: int | None = None,
        shot_set: int | None = None,
    ) -> None:
        kind = self.ctx.kind
        n_labels = None
        if "macro_f1" in metrics and (counts := kind.label_counts(test, preds)) is not None:
            n_labels, in_gold = counts
            _warn_missing_labels(self.ctx, target, in_gold)
        self.add(target, "test", metrics, kind.n_examples(test), selection, step, k, shot_set, n_labels)
        columns = kind.prediction_columns(test, preds)
        if columns is not None:
            self.predictions.append(
                pd.DataFrame(
                    {
                        "experiment": self.ctx.settings.experiment,
                        "run_id": self.ctx.run_id,
                        "source": self.unit.source,
                        "target": target,
                        "split": "test",
                        "selection": selection,
                        "seed": self.unit.seed,
                        "k": k,
                        "shot_set": shot_set,
                        **columns,
                    }
                )
            )


_warned_labels: set[tuple[str, str]] = set()


def _warn_missing_labels(ctx: RunContext, target: str, in_gold: int) -> None:
    """Once per (run, target): the target's test gold lacks some of the task's labels, so its macro-F1
    averages over fewer labels than the task has (the count is on the record: ``n_labels``)."""
    total = len(ctx.spec.labels)
    if in_gold < total and (ctx.run_id, target) not in _warned_labels:
        _warned_labels.add((ctx.run_id, target))
        log.warning(
            "target %s: its test gold has %d of the task's %d labels; macro-F1 averages over the labels "
            "present in its gold or predictions (n_labels on each record; docs/metrics.md)",
            target,
            in_gold,
            total,
        )
