"""One experiment: plan -> data -> model -> train -> evaluate -> records (-> tracker).

``run_experiment`` takes a composed config and returns the run's objective (the mean primary test
metric under the regime's selection rule), as lightning-hydra-template's pipelines return the
optimised metric.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch
from omegaconf import DictConfig, OmegaConf

from xlexp.engine import distributed
from xlexp.views import console as matrix_view
from xlexp.config.schema import validate
from xlexp.data.tokenized import TokenCache, TokenizedSplit
from xlexp.errors import XlexpError
from xlexp.engine.predict import compute_metrics, encode, predict, retrieval_accuracy
from xlexp.models import finetune
from xlexp.engine.hardware import peak_memory_mb, resolve_device, resolve_precision
from xlexp.data.fewshot import ShotSet, load_shot_file, sample_shots, save_shot_set
from xlexp.results.languages import normalize_tag
from xlexp.models.encoders import load_classifier, load_encoder, load_tokenizer, resolve_model_path
from xlexp.experiment.plan import Plan, TrainingUnit, make_plan
from xlexp.views.progress import progress_bar, progress_enabled
from xlexp.results.store import (Record, git_commit, new_run_id, now_iso, run_config_hash, without_run_noise,
                           write_predictions, write_records)
from xlexp.engine.selection import CheckpointKeeper, steps_by_rule, target_key
from xlexp.tasks.spec import TaskSpec, load_split
from xlexp.tracking.base import NullTracker, Tracker, make_tracker
from xlexp.engine.loop import TrainSettings, compile_setting, train
from xlexp.data.vocab import VocabTrim, count_parameters, plan_trim, trim_embeddings

log = logging.getLogger(__name__)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def subsample(split: TokenizedSplit, limit: int | None, seed: int) -> TokenizedSplit:
    if limit is None or limit >= len(split):
        return split
    idx = np.sort(np.random.default_rng(seed).permutation(len(split))[:limit])
    return split.subset(idx)


def sampling_weights(sizes: list[int], mode: str, temperature: float) -> np.ndarray | None:
    """Per-example probabilities for multi-source training: language l gets p_l ~ n_l^(1/T)."""
    if mode == "proportional":
        return None
    if mode == "uniform":
        lang_p = np.ones(len(sizes))
    elif mode == "temperature":
        if temperature <= 0:
            raise XlexpError(f"regime.temperature must be > 0, got {temperature}")
        lang_p = np.asarray(sizes, dtype=float) ** (1.0 / temperature)
    else:
        raise XlexpError(f"regime.sampling must be proportional, uniform or temperature; got '{mode}'")
    lang_p /= lang_p.sum()
    return np.concatenate([np.full(n, p / n) for n, p in zip(sizes, lang_p)])


def _training_texts(spec: TaskSpec, plan: Plan, data_dir: Path, source: str) -> list[str]:
    """Train-split text of every plan language that has one (for the tiny model's tokenizer)."""
    texts: list[str] = []
    split = "train" if spec.trains else "test"  # retrieval has no training data
    for lang in plan.languages:
        if spec.has_split(lang, split, data_dir, source):
            for e in load_split(spec, lang, split, data_dir, source):
                texts.extend(t for t in (e.text, e.text_pair, " ".join(e.tokens)) if t)
    return texts


@dataclass
class RunHooks:
    """How a caller (e.g. the sweep driver) watches a run without the pipeline knowing about it.

    ``on_eval(unit, step, metrics)`` gets every dev evaluation (``metrics[lang][metric]``) and may
    raise to stop the run (e.g. ``optuna.TrialPruned``); ``tags`` are written into every record
    (``study``, ``trial``); ``run_id`` is filled in when the run starts; ``show_matrix=False`` keeps
    the end-of-run matrix off the terminal (a sweep trial prints its trial line only).
    """

    on_eval: Callable[[TrainingUnit, int, dict[str, dict[str, float]]], None] | None = None
    tags: dict[str, object] = field(default_factory=dict)
    run_id: str | None = None
    show_matrix: bool = True


@dataclass
class RunContext:
    """What every unit of one run shares."""

    cfg: DictConfig
    spec: TaskSpec
    plan: Plan
    cache: TokenCache | None    # None for classical (scikit-learn) models, which need no tokenizer
    model_path: str
    device: torch.device
    precision: str
    run_id: str
    config_hash: str
    tracker: Tracker
    cache_dir: Path
    hooks: RunHooks = field(default_factory=RunHooks)
    progress: object = None
    finetune: str | None = None     # full | lora-r8 | freeze-emb ... (None for classical models)
    trim: VocabTrim | None = None   # model.trim_vocab: the kept ids (the cache serves renumbered splits)
    experiment: str = ""            # cfg.name, plus the fine-tuning method when it is not full fine-tuning
    model_info: dict = field(default_factory=dict)  # parameter counts of the last model built, for the records

    @property
    def pad_id(self) -> int:
        return self.cache.pad_id

    def build_classifier(self) -> torch.nn.Module:
        """The task model as configured: encoder (+ checkpoint), trimmed vocabulary, frozen parts or
        LoRA, gradient checkpointing; on the run's device."""
        c = self.cfg
        model = load_classifier(c.model, self.model_path, len(self.spec.labels),
                                token_level=self.spec.type == "token_classification")
        if self.trim is not None:
            trim_embeddings(model.encoder, self.trim)
        model = finetune.prepare(model, c.model).to(self.device)
        total, trainable = count_parameters(model)
        if self.model_info.get("params") != total:  # log once per run, not per unit
            log.info("model: %s parameters, %s trainable (%s)", f"{total:,}", f"{trainable:,}",
                     finetune.describe(c.model))
        self.model_info = {"params": total, "trainable_params": trainable}
        return model

    def build_encoder(self) -> torch.nn.Module:
        encoder = load_encoder(self.cfg.model, self.model_path)
        if self.trim is not None:
            trim_embeddings(encoder, self.trim)
        encoder = encoder.to(self.device)
        total, _ = count_parameters(encoder)
        self.model_info = {"params": total, "trainable_params": 0}
        return encoder

    def settings(self, seed: int, epochs: int | None = None, batch_size: int | None = None) -> TrainSettings:
        c = self.cfg
        return TrainSettings(
            epochs=epochs or c.trainer.epochs, batch_size=batch_size or c.data.batch_size,
            eval_batch_size=c.data.eval_batch_size, group_by_length=c.data.group_by_length,
            eval_every=c.trainer.eval_every, precision=self.precision, seed=seed,
            grad_accum_steps=int(c.trainer.get("grad_accum_steps") or 1), compile=compile_setting(c.trainer.get("compile")),
        )

    def split(self, lang: str, name: str, seed: int) -> TokenizedSplit:
        limit = self.cfg.data.max_train_examples if name == "train" else self.cfg.data.max_eval_examples
        return subsample(self.cache.get(lang, name), limit, seed)

    def score(self, model, split: TokenizedSplit) -> tuple[np.ndarray, dict[str, float]]:
        preds = predict(model, split, self.cfg.data.eval_batch_size, self.pad_id, self.device, self.precision)
        return preds, compute_metrics(preds, split, self.spec.metrics, self.spec.labels)


@dataclass
class UnitOutput:
    """Records and per-example test predictions of one unit, built up cell by cell."""

    ctx: RunContext
    unit: TrainingUnit
    records: list[Record] = field(default_factory=list)
    predictions: list[pd.DataFrame] = field(default_factory=list)

    def add(self, target: str, split: str, metrics: dict[str, float], n: int, selection: str, step: int | None,
            k: int | None = None, shot_set: int | None = None) -> None:
        c = self.ctx.cfg
        for metric, value in metrics.items():
            self.records.append(Record(
                experiment=self.ctx.experiment, run_id=self.ctx.run_id, model=c.model.name, task=self.ctx.spec.name,
                regime=c.regime.name, source=self.unit.source, target=target,
                target_tag=self.ctx.spec.tags.get(target) or normalize_tag(target),
                split=split, metric=metric, value=value, n_examples=n, seed=self.unit.seed, selection=selection,
                config_hash=self.ctx.config_hash, git_commit=git_commit(), timestamp=now_iso(), k=k,
                shot_set=shot_set, step=step, finetune=self.ctx.finetune, precision=self.ctx.precision,
                **self.ctx.model_info, **self.ctx.hooks.tags,
            ))

    def stamp_peak_memory(self) -> None:
        """Peak memory of the run so far, on every record of this unit (known only at its end)."""
        mb = round(peak_memory_mb(self.ctx.device), 1)
        self.records = [replace(r, peak_memory_mb=mb) for r in self.records]

    def add_test(self, target: str, test: TokenizedSplit, preds: np.ndarray, metrics: dict[str, float],
                 selection: str, step: int | None, k: int | None = None, shot_set: int | None = None) -> None:
        n = len(set(test.example_ids.tolist())) if test.token_labels is not None else len(test)
        self.add(target, "test", metrics, n, selection, step, k, shot_set)
        if test.token_labels is not None:
            return  # per-example predictions are kept for sentence tasks (paired bootstrap) only
        c = self.ctx.cfg
        self.predictions.append(pd.DataFrame({
            "experiment": self.ctx.experiment, "run_id": self.ctx.run_id, "source": self.unit.source, "target": target,
            "split": "test", "selection": selection, "seed": self.unit.seed, "k": k, "shot_set": shot_set,
            "example": test.example_ids, "label": test.labels, "pred": preds,
        }))


def run_experiment(cfg: DictConfig, hooks: RunHooks | None = None) -> float:
    validate(cfg)
    spec = TaskSpec.from_config(cfg.task)
    data_dir = Path(cfg.paths.data_dir)
    cache_dir = Path(cfg.paths.cache_dir).expanduser()
    seeds = list(cfg.regime.get("seeds") or [cfg.seed])
    plan = make_plan(cfg.regime.name, cfg.langpair.sources, cfg.langpair.targets, spec, data_dir, cfg.data.source,
                     seeds, cfg.regime.get("dev_targets", "auto"))
    log.info("plan: %s, %d training unit(s), sources %s -> %d target(s), seeds %s", plan.regime, len(plan.units),
             list(plan.sources), len(plan.targets), seeds)

    device = distributed.setup(resolve_device(cfg.trainer.device))  # under torchrun: join the group, this rank's GPU
    if cfg.trainer.num_threads:
        torch.set_num_threads(int(cfg.trainer.num_threads))
    if cfg.model.get("family") == "classical":  # scikit-learn baselines: no encoder, no token cache
        from xlexp.models.classical import prepare

        model_path, cache = prepare(cfg, spec, plan, data_dir, cache_dir), None
    else:
        texts = _training_texts(spec, plan, data_dir, cfg.data.source) if cfg.model.source == "tiny_random" else None
        if texts is not None and not texts:
            raise XlexpError("model tiny_random trains its tokenizer on the plan's train splits, and there are none here")
        with distributed.main_first():  # under torchrun rank 0 builds a cached model folder, the others reuse it
            model_path = resolve_model_path(cfg.model, cache_dir, texts, cfg.seed)
        tokenizer = load_tokenizer(cfg.model, model_path)
        if tokenizer.pad_token_id is None:
            raise XlexpError(f"tokenizer of model '{cfg.model.name}' has no pad token")
        cache = TokenCache(spec, tokenizer, cfg.data.max_length, data_dir, cache_dir, cfg.data.source)

    resolved = without_run_noise(OmegaConf.to_container(cfg, resolve=True))
    ctx = RunContext(
        cfg=cfg, spec=spec, plan=plan, cache=cache,
        model_path=model_path, device=device,
        precision="fp32" if cache is None else resolve_precision(cfg.trainer.precision, device),  # classical: float32
        run_id=distributed.broadcast_object(new_run_id()),
        config_hash=run_config_hash(resolved),
        tracker=make_tracker(cfg.tracker) if distributed.is_main() else NullTracker(), cache_dir=cache_dir,
        hooks=hooks or RunHooks(), experiment=experiment_name(cfg),
        finetune=None if cache is None else finetune.describe(cfg.model),
    )
    ctx.hooks.run_id = ctx.run_id
    log.info("run %s: experiment %s, model %s (%s) on %s, precision %s; results -> %s", ctx.run_id, ctx.experiment,
             cfg.model.name, model_path, device, ctx.precision, Path(cfg.paths.results_dir).resolve())
    if cache is not None and cfg.model.get("trim_vocab"):
        ctx.trim = trim_vocabulary(ctx)

    files, records = [], []
    with progress_bar(progress_enabled(cfg.trainer.progress) and distributed.is_main()) as progress:
        ctx.progress = progress
        units_bar = progress.add_task("training units", total=len(plan.units), info="")
        for i, unit in enumerate(plan.units):
            started = time.perf_counter()
            ctx.tracker.start_unit(f"{ctx.experiment}/{unit.source}/seed{unit.seed}", resolved)
            out = run_unit(ctx, unit, i)
            out.stamp_peak_memory()
            stem = f"{ctx.run_id}-{i:04d}-{unit.source}-s{unit.seed}"
            records.extend(out.records)
            if distributed.is_main():  # under torchrun every rank holds the same records; rank 0 writes them
                if out.predictions:
                    write_predictions(pd.concat(out.predictions, ignore_index=True), cfg.paths.results_dir, stem)
                files.append(write_records(out.records, cfg.paths.results_dir, stem))  # last: a file = a finished unit
            ctx.tracker.log_records(out.records)
            ctx.tracker.finish_unit()
            log.info("unit %d/%d (source %s, seed %d) done in %.1fs -> %s", i + 1, len(plan.units), unit.source,
                     unit.seed, time.perf_counter() - started, files[-1] if files else "-")
            progress.advance(units_bar)

    if distributed.is_main():
        matrix_view.show_run(cfg.paths.results_dir, ctx.run_id, spec.metrics)
    df = pd.DataFrame([asdict(r) for r in records])  # what the files hold, on every rank
    chosen = df[(df["split"] == "test") & (df["metric"] == spec.primary_metric) & (df["selection"] == cfg.regime.selection)]
    objective = float(chosen["value"].mean())
    log.info("records: %d file(s) under %s (run id %s); mean test %s (%s) = %.4f; peak memory %.0f MiB", len(files),
             Path(cfg.paths.results_dir).resolve() / "runs", ctx.run_id, spec.primary_metric, cfg.regime.selection,
             objective, peak_memory_mb(device))
    return objective


def experiment_name(cfg: DictConfig) -> str:
    """``cfg.name``, with the fine-tuning method appended when it is not full fine-tuning (e.g.
    ``quickstart+lora-r8``), so LoRA and full fine-tuning runs form separate, comparable matrices."""
    if cfg.model.get("family") == "classical":
        return cfg.name
    method = finetune.describe(cfg.model)
    return cfg.name if method == "full" else f"{cfg.name}+{method}"


def trim_vocabulary(ctx: RunContext) -> VocabTrim:
    """Keep the ids of every split of every plan language (and the specials); renumber the cache."""
    splits = []
    for lang in ctx.plan.languages:
        for split in ("train", "dev", "test"):
            if ctx.spec.has_split(lang, split, Path(ctx.cfg.paths.data_dir), ctx.cfg.data.source):
                splits.append(ctx.cache.get(lang, split))
                if not ctx.spec.trains:
                    splits.append(ctx.cache.get(lang, split, side="pivot"))
    tokenizer = ctx.cache.tokenizer
    trim = plan_trim(splits, tokenizer, max(len(tokenizer), max(tokenizer.all_special_ids) + 1))
    ctx.cache.remap(trim.old_to_new)
    log.info("trim_vocab: keeping %s of %s token ids (%.1f%%) used by %d split(s) of %d language(s)", f"{trim.size:,}",
             f"{trim.original_size:,}", 100 * trim.size / trim.original_size, len(splits), len(ctx.plan.languages))
    return trim


def run_unit(ctx: RunContext, unit: TrainingUnit, index: int) -> UnitOutput:
    cfg = ctx.cfg
    out = UnitOutput(ctx, unit)
    seed_everything(unit.seed)
    if cfg.model.get("family") == "classical":
        from xlexp.models.classical import classical_cells

        classical_cells(ctx, unit, out)
        return out
    if not ctx.spec.trains:
        retrieval_cells(ctx, unit, out)
        return out
    model = ctx.build_classifier()
    few_shot = cfg.regime.name == "few_shot"
    k0 = 0 if few_shot else None  # in the few-shot regime the source model's cells are K = 0
    cached = _source_model_file(ctx, unit) if few_shot else None
    if cached is not None and cached.exists():
        log.info("few-shot: reusing the cached source model for %s (seed %d): %s", unit.source, unit.seed, cached)
        model.load_state_dict(torch.load(cached, map_location="cpu", weights_only=True))
        for target in unit.targets:
            test = ctx.split(target, "test", unit.seed)
            preds, metrics = ctx.score(model, test)
            out.add_test(target, test, preds, metrics, cfg.regime.selection, None, k=k0)
    else:
        log.info("training source model %s (seed %d) on %s", unit.source, unit.seed, "+".join(unit.train_languages))
        keeper = CheckpointKeeper(ctx.cache_dir / "checkpoints" / f"{ctx.run_id}-{index:04d}{distributed.rank_suffix()}")
        try:
            train_and_test(ctx, unit, model, keeper, out, k0)
            if few_shot:
                keeper.load(keeper.step_for("source_dev"), model)
                if distributed.is_main():
                    _save_atomic({k: v.cpu() for k, v in model.state_dict().items()}, cached)
                log.info("few-shot: source model %s (seed %d) cached at %s", unit.source, unit.seed, cached)
        finally:
            keeper.cleanup()
    if few_shot:
        few_shot_cells(ctx, unit, model, out)
    return out


def train_and_test(ctx: RunContext, unit: TrainingUnit, model, keeper: CheckpointKeeper, out: UnitOutput,
                   k: int | None) -> None:
    """Train one unit, watching source and target dev splits; test every target under every rule."""
    cfg, spec = ctx.cfg, ctx.spec
    parts = [ctx.split(lang, "train", unit.seed) for lang in unit.train_languages]
    weights = None
    if len(parts) > 1:
        weights = sampling_weights([len(p) for p in parts], cfg.regime.get("sampling", "proportional"),
                                   float(cfg.regime.get("temperature", 1.0)))
    train_split = TokenizedSplit.concat(parts)
    dev_sets = {lang: ctx.split(lang, "dev", unit.seed) for lang in dict.fromkeys((*unit.select_languages, *unit.dev_targets))}
    settings = ctx.settings(unit.seed)
    primary = spec.primary_metric

    def on_eval(step: int, epoch: float) -> None:
        metrics = {lang: ctx.score(model, dev)[1] for lang, dev in dev_sets.items()}
        scores = {"source_dev": float(np.mean([metrics[lang][primary] for lang in unit.select_languages]))}
        scores |= {target_key(t): metrics[t][primary] for t in unit.dev_targets}
        keeper.observe(step, scores, model)
        for lang, m in metrics.items():
            out.add(lang, "dev", m, len(set(dev_sets[lang].example_ids.tolist())), "eval", step, k=k)
        ctx.tracker.log_metrics({f"dev/{lang}/{name}": v for lang, m in metrics.items() for name, v in m.items()}, step)
        if ctx.hooks.on_eval:
            ctx.hooks.on_eval(unit, step, metrics)
        watched = [metrics[t][primary] for t in unit.dev_targets]
        log.info("step %d (epoch %.2f): source dev %s %.4f%s", step, epoch, primary, scores["source_dev"],
                 f"; mean dev over {len(watched)} target(s) {np.mean(watched):.4f}" if watched else "")

    bar = ctx.progress.add_task(f"train {unit.source}", total=settings.epochs * settings.steps_per_epoch(len(train_split)), info="")

    def on_step(step: int, loss: float, lr: float) -> None:
        ctx.progress.update(bar, advance=1, info=f"loss {loss:.3f}")
        ctx.tracker.log_metrics({"train/loss": loss, "train/lr": lr}, step)

    result = train(model, train_split, cfg.optimizer, settings, ctx.pad_id, ctx.device, on_eval, on_step, weights)
    ctx.progress.remove_task(bar)
    log.info("source %s: best source dev %s %.4f at step %d of %d", unit.source, primary,
             keeper.best["source_dev"][0], keeper.step_for("source_dev"), result.steps)

    # the final model is in memory: test 'last' first, then load each other chosen checkpoint once
    cells = steps_by_rule(keeper, unit.targets, result.steps, set(unit.dev_targets))
    bar = ctx.progress.add_task(f"test {unit.source}", total=sum(len(v) for v in cells.values()), info="")
    for step in sorted(cells, key=lambda s: (s != result.steps, s)):
        if step != result.steps:
            keeper.load(step, model)
        by_target: dict[str, list[str]] = {}
        for target, rule in cells[step]:
            by_target.setdefault(target, []).append(rule)
        for target, rules in by_target.items():
            test = ctx.split(target, "test", unit.seed)
            preds, metrics = ctx.score(model, test)
            for rule in rules:
                out.add_test(target, test, preds, metrics, rule, step, k=k)
            ctx.progress.update(bar, advance=len(rules), info=target)
    ctx.progress.remove_task(bar)


def retrieval_cells(ctx: RunContext, unit: TrainingUnit, out: UnitOutput) -> None:
    """No training: encode both sides of every target's parallel test set and search by cosine.
    Every distinct token sequence is encoded once (pivot sentences repeat across language pairs),
    in one length-sorted pass over all targets."""
    encoder = ctx.build_encoder()
    layer = ctx.spec.layer
    sides = {t: (ctx.cache.get(t, "test"), ctx.cache.get(t, "test", side="pivot")) for t in unit.targets}
    row_of: dict[bytes, int] = {}
    unique: list[np.ndarray] = []
    for pair in sides.values():
        for split in pair:
            for ids in split.input_ids:
                key = ids.tobytes()
                if key not in row_of:
                    row_of[key] = len(unique)
                    unique.append(ids)
    log.info("retrieval: %s, mean-pooled layer %s, %d target(s), %d distinct sentences, no training",
             ctx.cfg.model.name, layer if layer is not None else "last", len(unit.targets), len(unique))
    everything = TokenizedSplit(unique, np.zeros(len(unique), dtype=np.int64))
    emb = encode(encoder, everything, ctx.cfg.data.eval_batch_size, ctx.pad_id, ctx.device, ctx.precision, layer,
                 progress=ctx.progress)
    for target, (xx, pivot) in sides.items():
        rows = [[row_of[ids.tobytes()] for ids in split.input_ids] for split in (xx, pivot)]
        out.add(target, "test", retrieval_accuracy(emb[rows[0]], emb[rows[1]]), len(xx), ctx.cfg.regime.selection, None)


def few_shot_cells(ctx: RunContext, unit: TrainingUnit, model, out: UnitOutput) -> None:
    """Continue from the source model on K shots of each target: one fine-tuning per (target, K,
    shot set), the unit's seed; test on the target's test split."""
    cfg, fs = ctx.cfg, ctx.cfg.regime
    source_state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    opt_cfg = OmegaConf.merge(cfg.optimizer, {"lr": fs.finetune.lr})
    settings = ctx.settings(unit.seed, epochs=fs.finetune.epochs, batch_size=fs.finetune.batch_size)
    ks = [int(k) for k in fs.k if int(k) > 0]
    n_cells = len(unit.targets) * len(ks) * (fs.shot_sets if not fs.shots_file else 1)
    bar = ctx.progress.add_task(f"few-shot from {unit.source}", total=n_cells, info="")
    for target in unit.targets:
        pool = ctx.cache.get(target, "train")  # shots come from the full train split
        test = ctx.split(target, "test", unit.seed)
        dev = ctx.split(target, "dev", unit.seed) if fs.use_target_dev else None
        for k in ks:
            for shots in _shot_sets(ctx, target, k, pool):
                if distributed.is_main():
                    save_shot_set(shots, cfg.paths.results_dir)
                model.load_state_dict(source_state)
                seed_everything(unit.seed)
                keeper = CheckpointKeeper(ctx.cache_dir / "checkpoints" /
                                          f"{ctx.run_id}-fs-{target}-{k}-{shots.index}{distributed.rank_suffix()}")

                def on_eval(step: int, epoch: float, dev=dev, keeper=keeper) -> None:
                    keeper.observe(step, {"target_dev": ctx.score(model, dev)[1][ctx.spec.primary_metric]}, model)

                result = train(model, pool.subset(np.asarray(shots.ids)), opt_cfg, settings, ctx.pad_id, ctx.device,
                               on_eval if dev is not None else None)
                rule, step = "last", result.steps
                if dev is not None:
                    rule, step = "target_dev", keeper.step_for("target_dev")
                    keeper.load(step, model)
                    keeper.cleanup()
                preds, metrics = ctx.score(model, test)
                out.add_test(target, test, preds, metrics, rule, step, k=k, shot_set=shots.index)
                ctx.progress.update(bar, advance=1, info=f"{target} K={k} set {shots.index}")
        log.info("few-shot %s -> %s: %s", unit.source, target, ", ".join(
            f"K={k}: {np.mean([r.value for r in out.records if r.target == target and r.k == k and r.metric == ctx.spec.primary_metric and r.split == 'test']):.4f}"
            for k in ks))
    ctx.progress.remove_task(bar)


def _shot_sets(ctx: RunContext, target: str, k: int, pool: TokenizedSplit) -> list[ShotSet]:
    fs = ctx.cfg.regime
    if fs.shots_file:
        return load_shot_file(fs.shots_file, ctx.spec.name, target, k, len(pool))
    return [sample_shots(pool.labels, ctx.spec.labels, ctx.spec.name, target, k, fs.k_per, i, int(fs.sampling_seed))
            for i in range(int(fs.shot_sets))]


def _source_model_file(ctx: RunContext, unit: TrainingUnit) -> Path:
    """Content address of a source model: everything that changes its weights, nothing else."""
    c = ctx.cfg
    key = {
        "model": OmegaConf.to_container(c.model, resolve=True), "model_path": ctx.model_path,
        "task": [ctx.spec.name, ctx.spec.fingerprint()], "train": list(unit.train_languages),
        "select": list(unit.select_languages), "optimizer": OmegaConf.to_container(c.optimizer, resolve=True),
        "seed": unit.seed, "tokenizer": ctx.cache.fingerprint, "precision": ctx.precision,
        "vocab": ctx.trim.digest if ctx.trim is not None else None,
        "data": {k: c.data[k] for k in ("batch_size", "max_length", "max_train_examples", "max_eval_examples", "group_by_length")},
        "trainer": {k: c.trainer.get(k) for k in ("epochs", "eval_every", "grad_accum_steps")},
        "sampling": [c.regime.get("sampling"), c.regime.get("temperature")],
    }
    digest = hashlib.sha1(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return ctx.cache_dir / "source_models" / f"{c.model.name}-{ctx.spec.name}-{unit.source}-s{unit.seed}-{digest}.pt"


def _save_atomic(state: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)
