"""One experiment: settings -> plan -> data -> model -> regime units -> records (-> tracker).

``run_experiment`` takes the composed Hydra config, resolves it ONCE into typed settings
(:func:`resolve_settings`), and returns the run's objective (the mean primary test metric under the
regime's selection rule), as lightning-hydra-template's pipelines return the optimised metric. What a
unit does is its regime's business (``xlexp.experiment.regimes``); retrieval tasks and classical
models have their own unit executors (``retrieval``, ``classical``). The run prints its own matrix
from the records it holds in memory; the store is read only for the units it skips because their
complete records are already there (resume by content, ``xlexp.experiment.resume``).

May import: everything below experiment (tracking, views, engine, models, data, tasks, results, config).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from dataclasses import asdict, replace

import pandas as pd
import torch
from omegaconf import DictConfig, OmegaConf

from xlexp.config.schema import Settings, resolve
from xlexp.data.tokenized import TokenCache
from xlexp.data.vocab import VocabTrim, plan_trim
from xlexp.engine import distributed
from xlexp.engine.hardware import peak_memory_mb, resolve_device, resolve_precision
from xlexp.engine.selection import remove_orphans
from xlexp.errors import XlexpError, require_extra
from xlexp.experiment import classical, regimes, retrieval
from xlexp.experiment.context import RunContext, RunHooks, UnitOutput, seed_everything, training_texts
from xlexp.experiment.plan import Plan, TrainingUnit, make_plan
from xlexp.experiment.resume import Resume, fault_point
from xlexp.models.encoders import load_tokenizer, resolve_model_path
from xlexp.results.store import check_writable, new_run_id, run_config_hash, without_run_noise, write_predictions, write_records
from xlexp.tasks.spec import TaskSpec, load_split
from xlexp.tracking.base import NullTracker, check_tracker_config, make_tracker
from xlexp.views import console
from xlexp.views.progress import progress_bar, progress_enabled

__all__ = ["RunHooks", "run_experiment", "resolve_settings"]

log = logging.getLogger(__name__)


def resolve_settings(cfg: DictConfig) -> Settings:
    """The composed config as typed settings, checked: one XlexpError naming the first bad key,
    before any work. Sweeps and ``xlexp reproduce`` call this for their pre-flight checks."""
    from omegaconf.errors import OmegaConfBaseException

    try:
        raw = OmegaConf.to_container(cfg, resolve=True)
    except OmegaConfBaseException as e:
        raise XlexpError(f"cannot resolve the config: {str(e).strip().splitlines()[0]}") from None
    settings = resolve(raw, regimes.settings_class)
    check_tracker_config(settings.tracker)  # tracker options fail here, before any work
    if settings.tracker.name == "wandb":  # optional extras: one line naming `pip install 'xlexp[...]'`, before any work
        require_extra("wandb")
    if getattr(settings.model, "peft", None):
        require_extra("peft")
    regime = regimes.get(settings.regime.name)
    if settings.classical and not regime.classical:
        usable = [name for name in regimes.available() if regimes.get(name).classical]
        raise XlexpError(f"model '{settings.model.name}' (family classical) runs regime {', '.join(usable)}; "
                         f"regime {regime.name} continues training on K shots, which a fitted scikit-learn "
                         f"model does not do here")
    return settings


def read_needed_splits(ctx: RunContext) -> list:
    """Read, validate and (for encoders) tokenize every split the plan needs, before any training: a
    bad row in a target's test file fails in seconds with its file and line, not after hours of
    training. Cached, so the units read them again for free."""
    started, s, out = time.perf_counter(), ctx.settings, []
    for lang, split in ctx.plan.needs:
        if ctx.cache is None:  # classical models read the rows themselves: validate them here
            load_split(ctx.spec, lang, split, s.paths.data_dir, s.data.source)
            continue
        out.append(ctx.cache.get(lang, split))
        if not ctx.spec.trains:
            out.append(ctx.cache.get(lang, split, side="pivot"))
    log.info("read and checked %d split(s) of %d language(s) before training in %.1fs", len(ctx.plan.needs),
             len({lang for lang, _ in ctx.plan.needs}), time.perf_counter() - started)
    return out


def trim_vocabulary(ctx: RunContext, splits: list) -> VocabTrim:
    """Keep the ids of every split the plan reads (and the specials); renumber the cache."""
    tokenizer = ctx.cache.tokenizer
    trim = plan_trim(splits, tokenizer, max(len(tokenizer), max(tokenizer.all_special_ids) + 1))
    ctx.cache.remap(trim.old_to_new)
    log.info("trim_vocab: keeping %s of %s token ids (%.1f%%) used by %d split(s) of %d language(s)", f"{trim.size:,}",
             f"{trim.original_size:,}", 100 * trim.size / trim.original_size, len(splits), len(ctx.plan.languages))
    return trim


def _model_and_cache(s: Settings, spec: TaskSpec, plan: Plan) -> tuple[str, TokenCache | None]:
    """The folder or hub id the encoder loads from, and the token cache over its tokenizer; for a
    classical model, its description and no cache."""
    data_dir, cache_dir = s.paths.data_dir, s.paths.cache_dir
    if s.classical:  # scikit-learn baselines: no encoder, no token cache
        return classical.prepare(s, spec, plan), None
    texts = training_texts(spec, plan, data_dir, s.data.source) if s.model.source == "tiny_random" else None
    if texts is not None and not texts:
        raise XlexpError("model tiny_random trains its tokenizer on the plan's train splits, and there are none here")
    with distributed.main_first():  # under torchrun rank 0 builds a cached model folder, the others reuse it
        model_path = resolve_model_path(s.model, cache_dir, texts, s.seed)
    tokenizer = load_tokenizer(s.model, model_path)
    if tokenizer.pad_token_id is None:
        raise XlexpError(f"tokenizer of model '{s.model.name}' has no pad token")
    return model_path, TokenCache(spec, tokenizer, s.data.max_length, data_dir, cache_dir, s.data.source)


def run_experiment(cfg: DictConfig, hooks: RunHooks | None = None) -> float:
    s = resolve_settings(cfg)
    check_writable(hooks.records_dir if hooks and hooks.records_dir else s.paths.results_dir,  # before any work
                   s.paths.cache_dir / "checkpoints")
    if s.langpair.budget is not None:  # active filling: N one-source runs chosen in turn, the other rows predicted
        from xlexp.experiment import fill

        return fill.run(cfg, s, hooks or RunHooks(), run_experiment)
    spec = TaskSpec.from_config(s.task)
    regime = regimes.get(s.regime.name)
    plan = make_plan(regime, s.regime, s.langpair.sources, s.langpair.targets, spec, s.paths.data_dir, s.data.source,
                     s.seeds)
    log.info("plan: %s, %d training unit(s), sources %s -> %d target(s), seeds %s", plan.regime, len(plan.units),
             list(plan.sources), len(plan.targets), list(s.seeds))

    device = distributed.setup(resolve_device(s.trainer.device))  # under torchrun: join the group, this rank's GPU
    hooks = hooks or RunHooks()
    resume = Resume.of(s, plan, hooks)  # after setup: rank 0 decides what to skip, for every rank
    if resume.all_done:  # nothing to train: no model to load, no data to tokenize
        objective = show_and_score(pd.concat(resume.skipped_records(), ignore_index=True), spec, s, hooks.show_matrix)
        log.info("all %d unit(s) were complete in the store: nothing trained; mean test %s (%s) = %.4f",
                 len(plan.units), spec.primary_metric, s.regime.selection, objective)
        return objective
    if s.trainer.num_threads:
        torch.set_num_threads(s.trainer.num_threads)
    model_path, cache = _model_and_cache(s, spec, plan)
    resolved = without_run_noise(s.resolved)
    ctx = RunContext(
        settings=s, spec=spec, plan=plan, cache=cache, model_path=model_path, device=device,
        precision="fp32" if cache is None else resolve_precision(s.trainer.precision, device),  # classical: float32
        run_id=distributed.broadcast_object(new_run_id()), config_hash=run_config_hash(resolved),
        tracker=make_tracker(s.tracker) if distributed.is_main() else NullTracker(), hooks=hooks,
    )
    ctx.hooks.run_id = ctx.run_id
    log.info("run %s: experiment %s, model %s (%s) on %s, precision %s; results -> %s", ctx.run_id, s.experiment,
             s.model.name, model_path, device, ctx.precision, s.paths.results_dir.resolve())
    if distributed.is_main():
        for folder in remove_orphans(s.paths.cache_dir / "checkpoints"):
            log.info("removed checkpoints of a run that no longer exists: %s", folder)
    needed = read_needed_splits(ctx)
    if cache is not None and s.model.trim_vocab:
        ctx.trim = trim_vocabulary(ctx, needed)

    files, records = [], []
    out_dir = ctx.hooks.records_dir or s.paths.results_dir
    with progress_bar(progress_enabled(s.trainer.progress) and distributed.is_main()) as progress:
        ctx.progress = progress
        units_bar = progress.add_task("training units", total=len(plan.units), info="")
        queue, deferred = list(range(len(plan.units))), set()
        while queue:  # a unit another run trains now (its claim is held) comes last, then is waited for
            i = queue.pop(0)
            unit = plan.units[i]
            claim = "done" if resume.skip(i) else resume.claim(i, wait=i in deferred)
            if claim == "busy":
                queue.append(i)
                deferred.add(i)
                continue
            if claim == "done":
                progress.advance(units_bar)
                continue
            started = time.perf_counter()
            ctx.tracker.start_unit(f"{s.experiment}/{unit.source}/seed{unit.seed}", resolved)
            resume.started(i, ctx.run_id)
            try:
                out = run_unit(ctx, regime, unit, i)
            except BaseException as e:  # SIGTERM and errors: the ledger says why; the records say nothing
                resume.failed(i, e, time.perf_counter() - started)
                resume.release(i)
                raise
            out.stamp_peak_memory()
            out.records = [replace(r, unit_key=resume.keys[i]) for r in out.records]
            stem = f"{ctx.run_id}-{i:04d}-{unit.source}-s{unit.seed}-u{resume.keys[i]}"
            records.extend(out.records)
            if distributed.is_main():  # under torchrun every rank holds the same records; rank 0 writes them
                if out.predictions:
                    write_predictions(pd.concat(out.predictions, ignore_index=True), out_dir, stem)
                fault_point("before-records", i)
                try:
                    files.append(write_records(out.records, out_dir, stem))  # last: a file = a finished unit
                finally:
                    resume.release(i)
                resume.done_unit(i, time.perf_counter() - started, files[-1])
            resume.release(i)
            ctx.tracker.log_records(out.records)
            ctx.tracker.finish_unit()
            log.info("unit %d/%d (source %s, seed %d) done in %.1fs -> %s", i + 1, len(plan.units), unit.source,
                     unit.seed, time.perf_counter() - started, files[-1] if files else "-")
            progress.advance(units_bar)

    df = pd.concat([pd.DataFrame([asdict(r) for r in records]), *resume.skipped_records()], ignore_index=True)
    objective = show_and_score(df, spec, s, ctx.hooks.show_matrix)
    log.info("records: %d file(s) under %s (run id %s); mean test %s (%s) = %.4f; peak memory %.0f MiB", len(files),
             Path(out_dir).resolve() / "runs", ctx.run_id, spec.primary_metric, s.regime.selection,
             objective, peak_memory_mb(device))
    return objective


def show_and_score(df: pd.DataFrame, spec: TaskSpec, s: Settings, show: bool) -> float:
    """Print the run's matrix (rank 0, unless the caller is a sweep) and return the run's objective: the
    mean test primary metric under the regime's selection rule."""
    if distributed.is_main() and show:
        console.show_run(df, list(spec.metrics), s.paths.results_dir)
    chosen = df[(df["split"] == "test") & (df["metric"] == spec.primary_metric) & (df["selection"] == s.regime.selection)]
    return float(chosen["value"].mean())


def run_unit(ctx: RunContext, regime: regimes.Regime, unit: TrainingUnit, index: int) -> UnitOutput:
    """One unit's records: classical models and retrieval tasks have their own executors; every other
    unit is its regime's."""
    out = UnitOutput(ctx, unit)
    seed_everything(unit.seed)
    if ctx.settings.classical:
        classical.run_unit(ctx, unit, index, out)
    elif not ctx.spec.trains:
        retrieval.run_unit(ctx, unit, index, out)
    elif ctx.spec.type == "generation" and getattr(regime, "trains", True):  # regime=icl scores without training
        from xlexp.experiment import generation

        generation.run_unit(ctx, unit, index, out)
    else:
        regime.run_unit(ctx, unit, index, out)
    return out
