"""Train one unit's model and test every target under every checkpoint-selection rule.

Zero-shot, multi-source, full fine-tuning and the few-shot regime's source model all do this:
train on the unit's train languages, evaluate the source (and watched target) dev splits at every
evaluation step, keep only the checkpoints some rule currently prefers, then test each target once
per distinct chosen checkpoint. The rules are post-hoc: one training gives source_dev, target_dev
and last.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import numpy as np
from torch import nn

from xlexp.data.tokenized import TokenizedSplit
from xlexp.engine import distributed
from xlexp.engine.loop import train
from xlexp.engine.selection import CheckpointKeeper, steps_by_rule, target_key
from xlexp.experiment.context import RunContext, UnitOutput
from xlexp.experiment.plan import TrainingUnit
from xlexp.views.progress import PhaseLog

log = logging.getLogger(__name__)

Weights = Callable[[list[int]], np.ndarray | None]


def train_unit(
    ctx: RunContext,
    unit: TrainingUnit,
    index: int,
    model: nn.Module,
    out: UnitOutput,
    k: int | None = None,
    weights: Weights | None = None,
    keep: Callable[[CheckpointKeeper], None] | None = None,
) -> None:
    """Train and test with a checkpoint keeper that is always cleaned up; ``keep(keeper)`` runs
    before the cleanup (e.g. to load and cache the source_dev checkpoint)."""
    log.info("training source model %s (seed %d) on %s", unit.source, unit.seed, "+".join(unit.train_languages))
    keeper = CheckpointKeeper(ctx.cache_dir / "checkpoints" / f"{ctx.run_id}-{index:04d}{distributed.rank_suffix()}")
    try:
        train_and_test(ctx, unit, model, keeper, out, k, weights)
        if keep is not None:
            keep(keeper)
    finally:
        keeper.cleanup()


def examples_per_eval(settings, n_train: int) -> int:
    """Training examples seen between two dev evaluations (an epoch, or ``eval_every`` steps)."""
    if settings.eval_every is None:
        return n_train
    return settings.eval_every * settings.batch_size * settings.grad_accum_steps


def target_dev_sets(ctx: RunContext, unit: TrainingUnit, train_per_eval: int) -> dict[str, TokenizedSplit]:
    """The watched targets' dev splits, budgeted by examples: with many targets, evaluating every full
    dev split at every evaluation costs more than the training between two evaluations (14 targets x
    1,000 dev texts after 2,000 training texts). Each target gets the same seeded subsample size,
    ``regime.target_dev_budget`` x the training examples per evaluation split over the targets, but
    at least ``regime.target_dev_min`` (fewer is too noisy to pick a checkpoint on). The dev records'
    ``n_examples`` carry the size used. Source dev splits (the source_dev rule) are never subsampled."""
    regime = ctx.settings.regime
    targets = [t for t in unit.dev_targets if t not in unit.select_languages]
    full = {t: ctx.split(t, "dev", unit.seed) for t in targets}
    if not targets or regime.target_dev_budget is None:
        return full
    per_target = max(int(regime.target_dev_min), int(regime.target_dev_budget * train_per_eval) // len(targets))
    out = {t: ctx.kind.subsample(split, per_target, unit.seed) for t, split in full.items()}
    before, after = (sum(ctx.kind.n_examples(s) for s in d.values()) for d in (full, out))
    if after < before:
        log.info(
            "target dev: %d target(s), at most %d dev example(s) each: %d of %d per evaluation "
            "(regime.target_dev_budget=%g x %d training examples per evaluation; "
            "regime.target_dev_budget=null evaluates the full dev splits)",
            len(targets),
            per_target,
            after,
            before,
            regime.target_dev_budget,
            train_per_eval,
        )
    return out


def train_and_test(
    ctx: RunContext,
    unit: TrainingUnit,
    model: nn.Module,
    keeper: CheckpointKeeper,
    out: UnitOutput,
    k: int | None = None,
    weights: Weights | None = None,
) -> None:
    """Train one unit, watching source and target dev splits; test every target under every rule.
    ``weights(sizes)`` gives per-example sampling probabilities when the unit trains on several
    languages (multi-source sampling); None trains on the plain union."""
    spec = ctx.spec
    parts = [ctx.split(lang, "train", unit.seed) for lang in unit.train_languages]
    sample_weights = weights([len(p) for p in parts]) if weights is not None and len(parts) > 1 else None
    train_split = TokenizedSplit.concat(parts)
    settings = ctx.train_settings(unit.seed)
    dev_sets = {lang: ctx.split(lang, "dev", unit.seed) for lang in unit.select_languages}
    dev_sets |= target_dev_sets(ctx, unit, examples_per_eval(settings, len(train_split)))
    primary = spec.primary_metric

    collapsed: dict[int, list[tuple[str, str]]] = {}  # step -> [(source dev language, the one label predicted)]

    def on_eval(step: int, epoch: float) -> None:
        started = time.perf_counter()
        scored = {}  # one dev set at a time: a bar on a terminal, a log line at most every LOG_EVERY_S seconds
        dev_log = PhaseLog(log, f"dev evaluation at step {step}", len(dev_sets), "dev set(s)", start=False, last=False)
        dev_bar = ctx.progress.add_task(f"dev step {step}", total=len(dev_sets), info="")
        for lang, dev in dev_sets.items():
            scored[lang] = ctx.score(model, dev)
            ctx.progress.update(dev_bar, advance=1, info=lang)
            dev_log.advance(1, lang)
        ctx.progress.remove_task(dev_bar)
        eval_s = time.perf_counter() - started
        metrics = {lang: m for lang, (_, m) in scored.items()}
        collapsed[step] = [
            (lang, one)
            for lang in unit.select_languages
            if (one := ctx.kind.single_class(scored[lang][0], dev_sets[lang], spec)) is not None
        ]
        scores = {"source_dev": float(np.mean([metrics[lang][primary] for lang in unit.select_languages]))}
        scores |= {target_key(t): metrics[t][primary] for t in unit.dev_targets}
        keeper.observe(step, scores, model)
        for lang, m in metrics.items():
            out.add(lang, "dev", m, len(set(dev_sets[lang].example_ids.tolist())), "eval", step, k=k)
        ctx.tracker.log_metrics({f"dev/{lang}/{name}": v for lang, m in metrics.items() for name, v in m.items()}, step)
        if ctx.hooks.on_eval:
            ctx.hooks.on_eval(unit, step, metrics)
        watched = [metrics[t][primary] for t in unit.dev_targets]
        log.info(
            "step %d (epoch %.2f): source dev %s %.4f%s (dev evaluation %.1fs)",
            step,
            epoch,
            primary,
            scores["source_dev"],
            f"; mean dev over {len(watched)} target(s) {np.mean(watched):.4f}" if watched else "",
            eval_s,
        )

    total_steps = settings.epochs * settings.steps_per_epoch(len(train_split))
    bar = ctx.progress.add_task(f"train {unit.source}", total=total_steps, info="")
    train_log = PhaseLog(log, f"train {unit.source}", total_steps, "steps", start=False, last=False)

    def on_step(step: int, loss: float, lr: float) -> None:
        ctx.progress.update(bar, advance=1, info=f"loss {loss:.3f}")
        train_log.advance(1, f"loss {loss:.3f}")
        ctx.tracker.log_metrics({"train/loss": loss, "train/lr": lr}, step)

    result = train(
        model,
        train_split,
        ctx.settings.optimizer,
        settings,
        ctx.pad_id,
        ctx.device,
        on_eval,
        on_step,
        sample_weights,
        loss=ctx.kind.loss,
    )
    ctx.progress.remove_task(bar)
    log.info(
        "source %s: best source dev %s %.4f at step %d of %d",
        unit.source,
        primary,
        keeper.best["source_dev"][0],
        keeper.step_for("source_dev"),
        result.steps,
    )
    for lang, label in collapsed.get(keeper.step_for("source_dev"), []):
        log.warning(
            "source %s (seed %d): the selected model predicts only '%s' on the %s dev split (the gold labels have "
            "several classes): training collapsed to one class; try a lower optimizer.lr, "
            "optimizer.class_weights=balanced or data.sampling=balanced",
            unit.source,
            unit.seed,
            label,
            lang,
        )

    # the final model is in memory: test 'last' first, then load each other chosen checkpoint once
    cells = steps_by_rule(keeper, unit.targets, result.steps, set(unit.dev_targets))
    bar = ctx.progress.add_task(f"test {unit.source}", total=sum(len(v) for v in cells.values()), info="")
    n_tests = sum(len({target for target, _ in v}) for v in cells.values())  # (checkpoint, target) test passes
    test_log = PhaseLog(log, f"test {unit.source}", n_tests, f"target test(s) at {len(cells)} checkpoint(s)")
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
            test_log.advance(1, f"{target} at step {step}")
    ctx.progress.remove_task(bar)
