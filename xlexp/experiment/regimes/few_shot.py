"""Few-shot transfer: start from the zero-shot source model (trained once per source and seed,
cached by content) and continue on K examples of each target language. K=0 is the zero-shot cell.
Every (target, K, shot set, seed) is one fine-tuning; matrices show mean ± std over shot sets and
seeds. Shot sets are deterministic from (task, language, K, set index, sampling seed), saved with
their hash, or read from a published file. Config: ``xlexp/conf/regime/few_shot.yaml``."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from xlexp.config.names import temp_path
from xlexp.config.schema import RegimeSettings, positive_int
from xlexp.data.fewshot import ShotSet, load_shot_file, read_shot_file, sample_shots, save_shot_set
from xlexp.data.tokenized import TokenizedSplit
from xlexp.engine import distributed
from xlexp.engine.loop import train
from xlexp.engine.selection import CheckpointKeeper
from xlexp.errors import XlexpError
from xlexp.experiment.context import RunContext, UnitOutput, seed_everything
from xlexp.experiment.plan import TrainingUnit
from xlexp.experiment.regimes import Regime, register
from xlexp.experiment.transfer import train_unit
from xlexp.models.weights import BadWeightsFile, load_weights

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FewShotFinetune:
    """The optimiser of the few-shot stage (defaults from Zhao et al., ACL 2021)."""

    lr: float = 5e-5
    epochs: int = 5
    batch_size: int = 32


@dataclass(frozen=True)
class FewShotSettings(RegimeSettings):
    dev_targets: object = "none"
    k: tuple[int, ...] = (1, 5, 10, 50)
    k_per: str = "class"  # class: K examples of every label | total: K examples in all
    shot_sets: int = 5  # different draws per (target, K)
    sampling_seed: int = 0
    shots_file: str | None = None  # JSON {"<lang>": {"<K>": [[train row ids], ...]}}
    use_target_dev: bool = False  # pick the few-shot epoch on the target's dev split
    finetune: FewShotFinetune = field(default_factory=FewShotFinetune)

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.k or any(not isinstance(k, int) or isinstance(k, bool) or k < 0 for k in self.k):
            raise XlexpError(
                f"regime.k must be a non-empty list of integers >= 0 (shots), e.g. regime.k=[1,5]; got {list(self.k)}"
            )
        if self.k_per not in ("class", "total"):
            raise XlexpError(f"regime.k_per must be class or total; got {self.k_per!r}")
        positive_int("regime.shot_sets", self.shot_sets)
        if self.shots_file:  # read now: a bad file found after the source model trained loses the training
            read_shot_file(self.shots_file)
        positive_int("regime.finetune.epochs", self.finetune.epochs)
        positive_int("regime.finetune.batch_size", self.finetune.batch_size)


@register
class FewShot(Regime):
    name = "few_shot"
    task_types = (
        "sentence_classification",
        "pair_classification",
        "token_classification",
        "extractive_qa",
    )  # K target shots continue a trained classifier / tagger / QA head
    settings_class = FewShotSettings
    classical = False  # a fitted scikit-learn model does not continue training on K shots

    def units(self, settings: FewShotSettings, sources, targets, watch, seeds) -> list[TrainingUnit]:
        return [TrainingUnit(s, (s,), (s,), targets, watch, seed) for seed in seeds for s in sources]

    def needs(self, unit: TrainingUnit, settings: FewShotSettings) -> dict[tuple[str, str], str]:
        needs = {(t, "train"): "few-shot draws its K shots from it" for t in unit.targets}
        if settings.use_target_dev:
            needs.update({(t, "dev"): "few-shot selects on it (regime.use_target_dev)" for t in unit.targets})
        return needs

    def run_unit(self, ctx: RunContext, unit: TrainingUnit, index: int, out: UnitOutput) -> None:
        fs: FewShotSettings = ctx.settings.regime
        _check_k_per(ctx, fs)  # before any training
        model = ctx.build_classifier()
        cached = source_model_file(ctx, unit)
        state = _read_cached(cached)
        if state is not None:
            log.info("few-shot: reusing the cached source model for %s (seed %d): %s", unit.source, unit.seed, cached)
            model.load_state_dict(state)
            for target in unit.targets:
                test = ctx.split(target, "test", unit.seed)
                preds, metrics = ctx.score(model, test)
                out.add_test(target, test, preds, metrics, ctx.settings.regime.selection, None, k=0)
        else:

            def keep(keeper: CheckpointKeeper) -> None:
                keeper.load(keeper.step_for("source_dev"), model)
                if distributed.is_main():
                    _save_atomic({k: v.cpu() for k, v in model.state_dict().items()}, cached)
                log.info("few-shot: source model %s (seed %d) cached at %s", unit.source, unit.seed, cached)

            train_unit(ctx, unit, index, model, out, k=0, keep=keep)  # the source model's cells are K = 0
        few_shot_cells(ctx, unit, model, out)


def few_shot_cells(ctx: RunContext, unit: TrainingUnit, model, out: UnitOutput) -> None:
    """Continue from the source model on K shots of each target: one fine-tuning per (target, K,
    shot set), the unit's seed; test on the target's test split."""
    fs: FewShotSettings = ctx.settings.regime
    source_state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    optimizer = replace(ctx.settings.optimizer, lr=fs.finetune.lr)
    settings = ctx.train_settings(unit.seed, epochs=fs.finetune.epochs, batch_size=fs.finetune.batch_size)
    ks = [int(k) for k in fs.k if int(k) > 0]
    n_cells = len(unit.targets) * len(ks) * (fs.shot_sets if not fs.shots_file else 1)
    bar = ctx.progress.add_task(f"few-shot from {unit.source}", total=n_cells, info="")
    primary = ctx.spec.primary_metric
    for target in unit.targets:
        pool = ctx.cache.get(target, "train")  # shots come from the full train split
        test = ctx.split(target, "test", unit.seed)
        dev = ctx.split(target, "dev", unit.seed) if fs.use_target_dev else None
        for k in ks:
            for shots in _shot_sets(ctx, target, k, pool):
                if distributed.is_main():
                    save_shot_set(shots, ctx.settings.paths.results_dir)
                model.load_state_dict(source_state)
                seed_everything(unit.seed)
                keeper = CheckpointKeeper(
                    ctx.cache_dir
                    / "checkpoints"
                    / f"{ctx.run_id}-fs-{target}-{k}-{shots.index}{distributed.rank_suffix()}"
                )

                def on_eval(step: int, epoch: float, dev=dev, keeper=keeper) -> None:
                    keeper.observe(step, {"target_dev": ctx.score(model, dev)[1][primary]}, model)

                result = train(
                    model,
                    ctx.kind.shot_rows(pool, shots.ids),
                    optimizer,
                    settings,
                    ctx.pad_id,
                    ctx.device,
                    on_eval if dev is not None else None,
                    loss=ctx.kind.loss,
                )
                rule, step = "last", result.steps
                if dev is not None:
                    rule, step = "target_dev", keeper.step_for("target_dev")
                    keeper.load(step, model)
                    keeper.cleanup()
                preds, metrics = ctx.score(model, test)
                out.add_test(target, test, preds, metrics, rule, step, k=k, shot_set=shots.index)
                ctx.progress.update(bar, advance=1, info=f"{target} K={k} set {shots.index}")
        log.info(
            "few-shot %s -> %s: %s",
            unit.source,
            target,
            ", ".join(
                f"K={k}: {np.mean([r.value for r in out.records if r.target == target and r.k == k and r.metric == primary and r.split == 'test']):.4f}"
                for k in ks
            ),
        )
    ctx.progress.remove_task(bar)


def _check_k_per(ctx: RunContext, fs: FewShotSettings) -> None:
    """K shots of every class need classes: a kind without (extractive QA) draws K examples in all."""
    if not ctx.kind.loss.classes and fs.k_per == "class" and not fs.shots_file:
        raise XlexpError(f"task '{ctx.spec.name}' is {ctx.spec.type} (no classes): use regime.k_per=total")


def _shot_sets(ctx: RunContext, target: str, k: int, pool: TokenizedSplit) -> list[ShotSet]:
    fs: FewShotSettings = ctx.settings.regime
    labels = ctx.kind.shot_labels(pool)  # extractive QA: one per question (K questions, not windows)
    if fs.shots_file:
        return load_shot_file(fs.shots_file, ctx.spec.name, target, k, len(labels))
    return [
        sample_shots(labels, ctx.spec.labels, ctx.spec.name, target, k, fs.k_per, i, int(fs.sampling_seed))
        for i in range(int(fs.shot_sets))
    ]


def source_model_file(ctx: RunContext, unit: TrainingUnit) -> Path:
    """Content address of a source model: everything that changes its weights, nothing else."""
    s = ctx.settings
    key = {
        "model": asdict(s.model),
        "model_path": ctx.model_path,
        "task": [ctx.spec.name, ctx.spec.fingerprint()],
        "train": list(unit.train_languages),
        "select": list(unit.select_languages),
        "optimizer": asdict(s.optimizer),
        "seed": unit.seed,
        "tokenizer": ctx.cache.fingerprint,
        "precision": ctx.precision,
        "vocab": ctx.trim.digest if ctx.trim is not None else None,
        "data": {
            k: getattr(s.data, k)
            for k in ("batch_size", "max_length", "max_train_examples", "max_eval_examples", "group_by_length")
        },
        "trainer": {k: getattr(s.trainer, k) for k in ("epochs", "eval_every", "grad_accum_steps")},
    }
    digest = hashlib.sha1(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return ctx.cache_dir / "source_models" / f"{s.model.name}-{ctx.spec.name}-{unit.source}-s{unit.seed}-{digest}.pt"


def _read_cached(path: Path) -> dict | None:
    """The cached source model's weights; None when there is none, or when the file cannot be read
    (truncated by a full disk, a killed copy): then one warning, the file is removed and the source
    model trained again, as a bad tokenized cache is rebuilt."""
    if not path.exists():
        return None
    try:
        return load_weights(path, "cached few-shot source model")
    except BadWeightsFile as e:
        log.warning("xlexp: warning: %s; removed, the source model is trained again", e)
        path.unlink(missing_ok=True)
        return None


def _save_atomic(state: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(path)
    torch.save(state, tmp)
    os.replace(tmp, path)
