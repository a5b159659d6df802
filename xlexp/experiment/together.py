"""Several training units in one stacked pass (``trainer.sources_together=N``).

The runner hands a regime that allows it (zero-shot, full fine-tuning, multi-source: each unit is
one :func:`xlexp.experiment.transfer.train_unit`) up to N of the run's pending units at once. Each
unit gets what it gets when trained alone, in the same order: its model built right after
``seed_everything(unit.seed)``, its own dropout generator (the global generator's state after that
build, which is what the one-at-a-time run trains with), its training split, sampling weights,
settings, source and target dev splits (the target-dev budget is per unit, as alone), its own
checkpoint keeper and selection rules; the stacked engine (:mod:`xlexp.engine.stacked`) trains them
with per-model data order, AdamW state and schedule. So every unit's records equal its one-at-a-time
records (fp32, within float rounding: ``tests/engine/test_together.py``).

Evaluation is batched: at a step where several models evaluate, each dev split that several of
them read (the same watched target with the same examples) is one pass with every such model; at
test time each target's test split is one pass per checkpoint round (the last model, then each
model's next chosen checkpoint) over every model that tests it in that round.

The vocabulary trim (``model.trim_vocab``) is the run's (the kept ids of every split the plan reads),
so the stack shares it. Not stacked (one line each, before any work): few-shot (its units go on to
train per target), classical models, retrieval and generation tasks, span QA, other optimizers than
AdamW, ``trainer.compile``, LoRA, gradient checkpointing, torchrun, a tracker (its runs are per unit).
"""

from __future__ import annotations

import logging
import time

import numpy as np

from xlexp.data.tokenized import TokenizedSplit
from xlexp.engine import distributed, stacked, stacked_models
from xlexp.engine.selection import CheckpointKeeper, steps_by_rule, target_key
from xlexp.errors import XlexpError
from xlexp.experiment import kinds
from xlexp.experiment.context import RunContext, UnitOutput, seed_everything
from xlexp.experiment.plan import TrainingUnit
from xlexp.experiment.transfer import Weights, examples_per_eval, target_dev_sets

log = logging.getLogger(__name__)

SETTING = stacked.SETTING


def check(ctx_settings, spec, regime) -> None:
    """``trainer.sources_together>1`` with what it cannot stack: one line naming the fix, before any work."""
    s = ctx_settings
    if s.trainer.sources_together <= 1:
        return
    fix = f"or set {SETTING}=1"
    if s.classical:
        raise XlexpError(
            f"{SETTING}>1 stacks transformer encoders; model '{s.model.name}' is a classical model "
            f"(it fits in seconds): {SETTING}=1"
        )
    kind = kinds.of(spec)
    if not spec.trains or not kind.stacks:
        raise XlexpError(
            f"{SETTING}>1 stacks classifier training; task '{spec.name}' ({spec.type}) does not train one: {SETTING}=1"
        )
    if not regime.together:
        raise XlexpError(
            f"{SETTING}>1: regime {regime.name} does not train its units in a stack (each unit does more "
            f"than one training); use regime=zero_shot, full or multi_source, {fix}"
        )
    if s.tracker.name != "none":
        raise XlexpError(
            f"{SETTING}>1 does not log to a tracker yet (tracker runs are per unit): set tracker=none {fix}"
        )
    if s.model.family != "encoder":
        raise XlexpError(
            f"{SETTING}>1 stacks encoders (BERT, XLM-R shapes); model '{s.model.name}' is a "
            f"{s.model.family}: {SETTING}=1"
        )
    stacked.check_supported(
        s.optimizer,
        s.trainer.compile,
        not kind.loss.classes,
        s.model.peft is not None,
        bool(s.model.gradient_checkpointing),
        distributed.info().enabled,
    )


def train_units(
    ctx: RunContext,
    units: list[TrainingUnit],
    indices: list[int],
    outs: list[UnitOutput],
    weights: Weights | None = None,
) -> None:
    """Train ``units`` in one stack and test each one under every selection rule into its ``outs``."""
    s, spec = ctx.settings, ctx.spec
    models, generators = [], []
    for unit in units:  # as run_unit + the regime do for one unit: seed, then build
        seed_everything(unit.seed)
        models.append(ctx.build_classifier())
        generators.append(stacked.generator_after_seeding(ctx.device))
    settings = [ctx.train_settings(u.seed) for u in units]
    stack = stacked_models.StackedModels(models)
    sizes = stacked.model_sizes(models[0])
    del models
    log.info(
        "training %d source models together in one stack: %s",
        len(units),
        ", ".join(f"{u.source} (seed {u.seed})" for u in units),
    )

    primary = spec.primary_metric
    members, dev_sets, keepers = [], [], []
    collapsed: list[dict[int, list[tuple[str, str]]]] = [{} for _ in units]
    for unit, index, setting, generator in zip(units, indices, settings, generators):
        parts = [ctx.split(lang, "train", unit.seed) for lang in unit.train_languages]
        sample_weights = weights([len(p) for p in parts]) if weights is not None and len(parts) > 1 else None
        train_split = TokenizedSplit.concat(parts)
        dev = {lang: ctx.split(lang, "dev", unit.seed) for lang in unit.select_languages}
        dev |= target_dev_sets(ctx, unit, examples_per_eval(setting, len(train_split)))
        dev_sets.append(dev)
        keepers.append(
            CheckpointKeeper(ctx.cache_dir / "checkpoints" / f"{ctx.run_id}-{index:04d}{distributed.rank_suffix()}")
        )
        members.append(stacked.Member(unit.source, train_split, setting, generator, sample_weights))
    total_steps = sum(m.settings.epochs * m.settings.steps_per_epoch(len(m.split)) for m in members)
    bar = ctx.progress.add_task(f"train {len(units)} sources together", total=total_steps, info="")
    for m in members:
        m.on_step = lambda step, loss, lr: ctx.progress.update(bar, advance=1, info=f"loss {loss:.3f}")

    def on_eval(step: int, due: list[int]) -> None:
        started = time.perf_counter()
        wanted = [(i, lang, split) for i in due for lang, split in dev_sets[i].items()]
        scored = score_together(ctx, stack, wanted)
        eval_s = time.perf_counter() - started
        for i in due:
            unit, out = units[i], outs[i]
            metrics = {lang: scored[(i, lang)][1] for lang in dev_sets[i]}
            collapsed[i][step] = [
                (lang, one)
                for lang in unit.select_languages
                if (one := ctx.kind.single_class(scored[(i, lang)][0], dev_sets[i][lang], spec)) is not None
            ]
            scores = {"source_dev": float(np.mean([metrics[lang][primary] for lang in unit.select_languages]))}
            scores |= {target_key(t): metrics[t][primary] for t in unit.dev_targets}
            keepers[i].observe(step, scores, stack.slot(i))
            for lang, m in metrics.items():
                out.add(lang, "dev", m, len(set(dev_sets[i][lang].example_ids.tolist())), "eval", step)
            if ctx.hooks.on_eval:
                ctx.hooks.on_eval(unit, step, metrics)
            epoch = step / members[i].settings.steps_per_epoch(len(members[i].split))
            log.info(
                "source %s, step %d (epoch %.2f): source dev %s %.4f",
                unit.source,
                step,
                epoch,
                primary,
                scores["source_dev"],
            )
        log.info("step %d: dev evaluation of %d model(s) together in %.1fs", step, len(due), eval_s)

    try:
        result = stacked.train_together(stack, members, s.optimizer, ctx.pad_id, ctx.device, on_eval, sizes)
        ctx.progress.remove_task(bar)
        for i, unit in enumerate(units):
            log.info(
                "source %s: best source dev %s %.4f at step %d of %d",
                unit.source,
                primary,
                keepers[i].best["source_dev"][0],
                keepers[i].step_for("source_dev"),
                result.steps[i],
            )
            for lang, label in collapsed[i].get(keepers[i].step_for("source_dev"), []):
                log.warning(
                    "source %s (seed %d): the selected model predicts only '%s' on the %s dev split (the gold "
                    "labels have several classes): training collapsed to one class; try a lower optimizer.lr, "
                    "optimizer.class_weights=balanced or data.sampling=balanced",
                    unit.source,
                    unit.seed,
                    label,
                    lang,
                )
        test_together(ctx, stack, units, keepers, result.steps, outs)
    finally:
        for keeper in keepers:
            keeper.cleanup()


def _split_key(lang: str, split: TokenizedSplit) -> tuple:
    """Two units read the same split when language and examples agree (a subsample depends on the seed)."""
    return lang, len(split), split.example_ids.tobytes()


def score_together(
    ctx: RunContext, stack: stacked_models.StackedModels, wanted: list[tuple[int, str, TokenizedSplit]]
) -> dict[tuple[int, str], tuple]:
    """(model, language) -> (predictions, metrics), each distinct split read once by all models that want it."""
    groups: dict[tuple, tuple[TokenizedSplit, list[tuple[int, str]]]] = {}
    for i, lang, split in wanted:
        groups.setdefault(_split_key(lang, split), (split, []))[1].append((i, lang))
    out = {}
    for split, who in groups.values():
        preds = stacked.predict_together(
            stack, [i for i, _ in who], split, ctx.settings.data.eval_batch_size, ctx.pad_id, ctx.device, ctx.precision
        )
        for (i, lang), p in zip(who, preds):
            out[(i, lang)] = (p, ctx.metrics(p, split))
    return out


def test_together(
    ctx: RunContext,
    stack: stacked_models.StackedModels,
    units: list[TrainingUnit],
    keepers: list[CheckpointKeeper],
    final: list[int],
    outs: list[UnitOutput],
) -> None:
    """Every unit's test cells under every rule: round r loads each model's r-th chosen checkpoint
    (round 0: the models in memory after training), then each target's test split is read once by
    every model that tests it in that round."""
    cells = [steps_by_rule(k, u.targets, f, set(u.dev_targets)) for k, u, f in zip(keepers, units, final)]
    order = [sorted(c, key=lambda s, f=f: (s != f, s)) for c, f in zip(cells, final)]
    bar = ctx.progress.add_task(
        f"test {len(units)} sources", total=sum(len(v) for c in cells for v in c.values()), info=""
    )
    for r in range(max(len(o) for o in order)):
        wanted: dict[str, list[tuple[int, list[str]]]] = {}
        for i, steps in enumerate(order):
            if r >= len(steps):
                continue
            if steps[r] != final[i]:
                keepers[i].load(steps[r], stack.slot(i))
            by_target: dict[str, list[str]] = {}
            for target, rule in cells[i][steps[r]]:
                by_target.setdefault(target, []).append(rule)
            for target, rules in by_target.items():
                wanted.setdefault(target, []).append((i, rules))
        for target, who in wanted.items():
            tests = {i: ctx.split(target, "test", units[i].seed) for i, _ in who}
            scored = score_together(ctx, stack, [(i, target, tests[i]) for i, _ in who])
            for i, rules in who:
                preds, metrics = scored[(i, target)]
                for rule in rules:
                    outs[i].add_test(target, tests[i], preds, metrics, rule, order[i][r])
                ctx.progress.update(bar, advance=len(rules), info=target)
    ctx.progress.remove_task(bar)
