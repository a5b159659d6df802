"""One experiment: settings -> plan -> data -> model -> regime units -> records (-> tracker).

``run_experiment`` takes the composed Hydra config, resolves it ONCE into typed settings
(:func:`resolve_settings`), and returns the run's objective (the mean primary test metric under the
regime's selection rule), as lightning-hydra-template's pipelines return the optimised metric. What a
unit does is its regime's business (``xlexp.experiment.regimes``), or the unit executor that its task
kind or model family names (``xlexp.experiment.executors``: retrieval, generation, classical); what
depends on the task's type is its kind's (``xlexp.experiment.kinds``). The run prints its own matrix
from the records it holds in memory; the store is read only for the units it skips because their
complete records are already there (resume by content, ``xlexp.experiment.resume``).
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
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
from xlexp.experiment import classical, executors, kinds, regimes, together
from xlexp.experiment.context import RunContext, RunHooks, UnitOutput, seed_everything, training_texts
from xlexp.experiment.plan import Plan, TrainingUnit, make_plan
from xlexp.experiment.resume import Resume, fault_point
from xlexp.models.encoders import load_tokenizer, resolve_model_path
from xlexp.results.query import TRANSFER_MEAN, default_selection, k_value, matrix_of
from xlexp.results.store import (
    check_writable,
    new_run_id,
    run_config_hash,
    without_run_noise,
    write_predictions,
    write_records,
)
from xlexp.tasks.spec import TaskSpec, load_split
from xlexp.tracking.base import NullTracker, check_tracker_config, make_tracker
from xlexp.views import console
from xlexp.views.progress import progress_bar, progress_enabled

__all__ = ["RunHooks", "run_experiment", "run_settings", "resolve_settings"]

log = logging.getLogger(__name__)


def resolve_settings(cfg: DictConfig) -> Settings:
    """The composed config as typed settings, checked: one XlexpError naming the first bad key,
    before any work. Sweeps and ``xlexp reproduce`` call this for their pre-flight checks."""
    from omegaconf.errors import OmegaConfBaseException

    try:
        raw = OmegaConf.to_container(cfg, resolve=True)
    except OmegaConfBaseException as e:
        raise XlexpError(f"cannot resolve the config: {str(e).strip().splitlines()[0]}") from None
    # the task file's keys, metrics and options are refused here, before any work, and parsed this once
    settings = resolve(raw, regimes.settings_class, TaskSpec.from_config)
    check_tracker_config(settings.tracker)  # tracker options fail here, before any work
    if settings.tracker.name == "wandb":  # optional extras: one line naming `pip install 'xlexp[...]'`, before any work
        require_extra("wandb")
    if not settings.classical and settings.model.peft:
        require_extra("peft")
    regime = regimes.get(settings.regime.name)
    regimes.check_compatible(regime.name, settings.task.name, settings.task.type, settings.model.family)
    kinds.check_family(
        settings.task.type, settings.task.name, settings.model.family, settings.model.name
    )  # e.g. generation needs a decoder
    if settings.classical and not regime.classical:
        usable = [name for name in regimes.available() if regimes.get(name).classical]
        raise XlexpError(
            f"model '{settings.model.name}' (family classical) runs regime {', '.join(usable)}; "
            f"regime {regime.name} continues training on K shots, which a fitted scikit-learn "
            f"model does not do here"
        )
    return settings


def read_needed_splits(ctx: RunContext) -> list:
    """Read, validate and (for encoders) tokenize every split the plan needs, before any training: a
    bad row in a target's test file fails in seconds with its file and line, not after hours of
    training. Cached, so the units read them again for free."""
    started, s, out = time.perf_counter(), ctx.settings, []
    tokenizes = regimes.get(s.regime.name).tokenizes  # regime=probe reads vectors, not token ids
    for lang, split in ctx.plan.needs:
        if (
            ctx.cache is None or not tokenizes
        ):  # classical models (and the probe) read the rows themselves: validate them here
            load_split(ctx.spec, lang, split, s.paths.data_dir, s.data.source)
            continue
        out.extend(ctx.cache.get(lang, split, side=side) for side in ctx.kind.sides)  # retrieval: both sides
    log.info(
        "read and checked %d split(s) of %d language(s) before training in %.1fs",
        len(ctx.plan.needs),
        len({lang for lang, _ in ctx.plan.needs}),
        time.perf_counter() - started,
    )
    return out


def trim_vocabulary(ctx: RunContext, splits: list) -> VocabTrim:
    """Keep the ids of every split the plan reads (and the specials); renumber the cache."""
    tokenizer = ctx.cache.tokenizer
    trim = plan_trim(splits, tokenizer, max(len(tokenizer), max(tokenizer.all_special_ids) + 1))
    ctx.cache.remap(trim.old_to_new)
    log.info(
        "trim_vocab: keeping %s of %s token ids (%.1f%%) used by %d split(s) of %d language(s)",
        f"{trim.size:,}",
        f"{trim.original_size:,}",
        100 * trim.size / trim.original_size,
        len(splits),
        len(ctx.plan.languages),
    )
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
    return model_path, TokenCache(
        spec, tokenizer, s.data.max_length, data_dir, cache_dir, s.data.source, kind=kinds.of(spec)
    )


def run_experiment(cfg: DictConfig, hooks: RunHooks | None = None) -> float:
    """The composed config's run: :func:`resolve_settings`, then :func:`run_settings`. Active filling
    (``langpair.budget``) is the stage above (``xlexp.fill``, which ``xlexp run`` dispatches to)."""
    s = resolve_settings(cfg)
    if s.langpair.budget is not None:
        if hooks is not None and (hooks.on_eval is not None or hooks.records_dir is not None):
            raise XlexpError(
                "langpair.budget is for `xlexp run`, not for sweep trials: drop it from the sweep's overrides"
            )
        raise XlexpError(
            "langpair.budget (active filling) is the stage above one experiment: run it with `xlexp run`, "
            "or call xlexp.fill.run(resolve_settings(cfg)); or drop langpair.budget"
        )
    return run_settings(s, hooks)


def run_settings(s: Settings, hooks: RunHooks | None = None) -> float:
    """One experiment from typed settings (:func:`resolve_settings`): every unit of its plan, trained
    or skipped (resume by content), its records written; returns the run's objective. The stages
    above (``xlexp.fill``) call this with settings of their own making."""
    if s.langpair.budget is not None:
        raise XlexpError("langpair.budget (active filling) is run by xlexp.fill.run, not by one experiment")
    check_writable(
        hooks.records_dir if hooks and hooks.records_dir else s.paths.results_dir,  # before any work
        s.paths.cache_dir / "checkpoints",
    )
    spec = s.task
    regime = regimes.get(s.regime.name)
    regime.check(s, spec)  # the regime's task-kind and model checks, before the data is looked at
    plan = make_plan(
        regime, s.regime, s.langpair.sources, s.langpair.targets, spec, s.paths.data_dir, s.data.source, s.seeds
    )
    regime.preflight(s, spec, plan)  # the regime's checks of the plan's data, before any work
    # the sources the units train on (an in-language regime narrowed to some targets trains only those)
    used = {lang for u in plan.units for lang in u.train_languages}
    log.info(
        "plan: %s, %d training unit(s), sources %s -> %d target(s), seeds %s",
        plan.regime,
        len(plan.units),
        [x for x in plan.sources if x in used] if used else list(plan.sources),
        len(plan.targets),
        list(s.seeds),
    )

    device = distributed.setup(resolve_device(s.trainer.device))  # under torchrun: join the group, this rank's GPU
    together.check(s, spec, regime)  # trainer.sources_together>1 with what it cannot stack: one line, before any work
    hooks = hooks or RunHooks()
    resume = Resume.of(s, plan, hooks)  # after setup: rank 0 decides what to skip, for every rank
    if resume.all_done:  # nothing to train: no model to load, no data to tokenize
        objective = show_and_score(pd.concat(resume.skipped_records(), ignore_index=True), spec, s, hooks.show_matrix)
        log.info(
            "all %d unit(s) were complete in the store: nothing trained; test %s (%s), %s = %.4f",
            len(plan.units),
            spec.primary_metric,
            s.regime.selection,
            objective.label,
            objective.value,
        )
        return objective.value
    if s.trainer.num_threads:
        torch.set_num_threads(s.trainer.num_threads)
    model_path, cache = _model_and_cache(s, spec, plan)
    resolved = without_run_noise(s.resolved)
    ctx = RunContext(
        settings=s,
        spec=spec,
        plan=plan,
        cache=cache,
        model_path=model_path,
        device=device,
        precision="fp32" if cache is None else resolve_precision(s.trainer.precision, device),  # classical: float32
        run_id=distributed.broadcast_object(new_run_id()),
        config_hash=run_config_hash(resolved),
        tracker=make_tracker(s.tracker) if distributed.is_main() else NullTracker(),
        hooks=hooks,
    )
    ctx.hooks.run_id = ctx.run_id
    log.info(
        "run %s: experiment %s, model %s (%s) on %s, precision %s; results -> %s",
        ctx.run_id,
        s.experiment,
        s.model.name,
        model_path,
        device,
        ctx.precision,
        s.paths.results_dir.resolve(),
    )
    if distributed.is_main():
        for folder in remove_orphans(s.paths.cache_dir / "checkpoints"):
            log.info("removed checkpoints of a run that no longer exists: %s", folder)
    needed = read_needed_splits(ctx)
    if cache is not None and s.model.trim_vocab and needed:
        ctx.trim = trim_vocabulary(ctx, needed)

    files, records = [], []
    out_dir = ctx.hooks.records_dir or s.paths.results_dir
    with progress_bar(progress_enabled(s.trainer.progress) and distributed.is_main()) as progress:
        ctx.progress = progress
        units_bar = progress.add_task("training units", total=len(plan.units), info="")
        for group in claimed_groups(
            resume, len(plan.units), s.trainer.sources_together, lambda: progress.advance(units_bar)
        ):
            started = time.perf_counter()
            if len(group) == 1:
                ctx.tracker.start_unit(
                    f"{s.experiment}/{plan.units[group[0]].source}/seed{plan.units[group[0]].seed}", resolved
                )
            for i in group:
                resume.started(i, ctx.run_id)
            try:
                outs = run_units(ctx, regime, group)
            except BaseException as e:  # SIGTERM and errors: the ledger says why; the records say nothing
                for i in group:
                    resume.failed(i, e, time.perf_counter() - started)
                    resume.release(i)
                raise
            for i, out in zip(group, outs):
                unit = plan.units[i]
                elapsed = (time.perf_counter() - started) / len(group)  # a stack's time, shared by its units
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
                    resume.done_unit(i, elapsed, files[-1])
                resume.release(i)
                ctx.tracker.log_records(out.records)
                if len(group) == 1:
                    ctx.tracker.finish_unit()
                log.info(
                    "unit %d/%d (source %s, seed %d) done in %.1fs -> %s",
                    i + 1,
                    len(plan.units),
                    unit.source,
                    unit.seed,
                    time.perf_counter() - started,
                    files[-1] if files else "-",
                )
                progress.advance(units_bar)

    df = pd.concat([pd.DataFrame([asdict(r) for r in records]), *resume.skipped_records()], ignore_index=True)
    objective = show_and_score(df, spec, s, ctx.hooks.show_matrix)
    log.info(
        "records: %d file(s) under %s (run id %s); test %s (%s), %s = %.4f; peak memory %.0f MiB",
        len(files),
        Path(out_dir).resolve() / "runs",
        ctx.run_id,
        spec.primary_metric,
        s.regime.selection,
        objective.label,
        objective.value,
        peak_memory_mb(device),
    )
    return objective.value


@dataclass(frozen=True)
class Objective:
    value: float
    label: str  # query.TRANSFER_MEAN, or "in-language mean" for a matrix of in-language cells only


def show_and_score(df: pd.DataFrame, spec: TaskSpec, s: Settings, show: bool) -> Objective:
    """Print the run's matrix (rank 0, unless the caller is a sweep) and return the run's objective: the
    matrix mean of the test primary metric under the regime's selection rule (the rule its cells were
    recorded under when the regime chose none, e.g. in-context cells), as every view defines it
    (``Matrix.transfer_mean``: cross-lingual cells only), or the in-language mean when it has no other cell.
    Cells with shots (K > 0) are left out, as in the matrix."""
    if distributed.is_main() and show:
        console.show_run(df, list(spec.metrics), s.paths.results_dir)
    test = df[(df["split"] == "test") & (df["metric"] == spec.primary_metric)]
    test = test[test["k"].map(k_value).isna()] if "k" in test else test
    rules = set(test["selection"])
    rule = s.regime.selection if s.regime.selection in rules or not rules else default_selection(rules)
    chosen = test[test["selection"] == rule]
    if chosen.empty:
        return Objective(float("nan"), TRANSFER_MEAN)
    m = matrix_of(chosen, s.experiment, spec.primary_metric)
    transfer = m.transfer_mean()
    if np.isnan(transfer):
        return Objective(float(np.nanmean(m.mean.to_numpy(dtype=float))), "in-language mean")
    return Objective(transfer, TRANSFER_MEAN)


def claimed_groups(resume: Resume, n_units: int, together: int, skipped):
    """The units this run trains, ``together`` at a time (``trainer.sources_together``), each claimed
    first (``Resume.claim``): a unit in the store, or finished by another run meanwhile, is skipped
    (``skipped()`` is called); one another live run trains now goes to the back of the queue and is
    waited for when its turn comes again — never while this run holds claims of a group it has not
    trained yet, so two runs of one config never wait on each other."""
    queue, deferred = list(range(n_units)), set()
    while queue:
        group: list[int] = []
        while queue and len(group) < together and not (group and queue[0] in deferred):
            i = queue.pop(0)
            claim = "done" if resume.skip(i) else resume.claim(i, wait=i in deferred)
            if claim == "busy":
                queue.append(i)
                deferred.add(i)
            elif claim == "done":
                skipped()
            else:
                group.append(i)
        if group:
            yield group


def run_units(ctx: RunContext, regime: regimes.Regime, group: list[int]) -> list[UnitOutput]:
    """One unit as before; several (``trainer.sources_together>1``) in one stacked pass of the regime's."""
    if len(group) == 1:
        return [run_unit(ctx, regime, ctx.plan.units[group[0]], group[0])]
    units = [ctx.plan.units[i] for i in group]
    outs = [UnitOutput(ctx, u) for u in units]
    regime.run_units_together(ctx, units, group, outs)
    return outs


def run_unit(ctx: RunContext, regime: regimes.Regime, unit: TrainingUnit, index: int) -> UnitOutput:
    """One unit's records, by the executor its model family or task kind names, else by its regime
    (``executors.for_unit``)."""
    out = UnitOutput(ctx, unit)
    seed_everything(unit.seed)
    executors.for_unit(ctx.settings, ctx.kind, regime)(ctx, unit, index, out)
    return out
