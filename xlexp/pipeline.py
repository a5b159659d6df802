"""One experiment: plan -> data -> model -> train -> evaluate -> records (-> tracker).

``run_experiment`` takes a composed config and returns the run's objective (the mean primary
metric over all test cells), as lightning-hydra-template's pipelines return the optimised metric.
"""

from __future__ import annotations

import logging
import random
import time
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from xlexp import matrix as matrix_view
from xlexp.config import validate
from xlexp.data import TokenCache, TokenizedSplit
from xlexp.errors import XlexpError
from xlexp.evaluate import compute_metrics, predict
from xlexp.languages import normalize_tag
from xlexp.model import load_classifier, load_tokenizer, resolve_model_path
from xlexp.plan import Plan, TrainingUnit, make_plan
from xlexp.progress import progress_bar, progress_enabled
from xlexp.records import Record, config_hash, git_commit, new_run_id, now_iso, write_records
from xlexp.tasks import TaskSpec, load_split
from xlexp.tracking import make_tracker
from xlexp.train import TrainSettings, train

log = logging.getLogger(__name__)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def resolve_device(setting: str) -> torch.device:
    if setting == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(setting)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise XlexpError(f"trainer.device={setting} but CUDA is not available here; use trainer.device=cpu or auto")
    return device


def resolve_precision(setting: str, device: torch.device) -> str:
    if setting == "auto":
        return "bf16" if device.type == "cuda" and torch.cuda.is_bf16_supported() else "fp32"
    return setting


def subsample(split: TokenizedSplit, limit: int | None, seed: int) -> TokenizedSplit:
    if limit is None or limit >= len(split):
        return split
    idx = np.sort(np.random.default_rng(seed).permutation(len(split))[:limit])
    return split.subset(idx)


def _training_texts(spec: TaskSpec, plan: Plan, data_dir: Path, source: str) -> list[str]:
    """Train-split text of every plan language that has one (for the tiny model's tokenizer)."""
    texts: list[str] = []
    for lang in plan.languages:
        if spec.has_split(lang, "train", data_dir, source):
            texts.extend(e.text for e in load_split(spec, lang, "train", data_dir, source))
    return texts


def run_experiment(cfg: DictConfig) -> float:
    validate(cfg)
    spec = TaskSpec.from_config(cfg.task)
    data_dir = Path(cfg.paths.data_dir)
    cache_dir = Path(cfg.paths.cache_dir).expanduser()
    plan = make_plan(cfg.regime.name, cfg.langpair.sources, cfg.langpair.targets, spec, data_dir, cfg.data.source)
    log.info("plan: %s, %d training unit(s), sources %s -> %d target(s)", plan.regime, len(plan.units),
             list(plan.sources), len(plan.targets))

    device = resolve_device(cfg.trainer.device)
    precision = resolve_precision(cfg.trainer.precision, device)
    if cfg.trainer.num_threads:
        torch.set_num_threads(int(cfg.trainer.num_threads))
    texts = _training_texts(spec, plan, data_dir, cfg.data.source) if cfg.model.source == "tiny_random" else None
    model_path = resolve_model_path(cfg.model, cache_dir, texts, cfg.seed)
    tokenizer = load_tokenizer(cfg.model, model_path)
    if tokenizer.pad_token_id is None:
        raise XlexpError(f"tokenizer of model '{cfg.model.name}' has no pad token")
    cache = TokenCache(spec, tokenizer, cfg.data.max_length, data_dir, cache_dir, cfg.data.source)

    resolved = OmegaConf.to_container(cfg, resolve=True)
    chash = config_hash({k: v for k, v in resolved.items() if k not in ("paths", "trainer")} | {"trainer": {
        k: v for k, v in resolved["trainer"].items() if k not in ("progress", "num_threads")}})
    run_id = new_run_id()
    tracker = make_tracker(cfg.tracker)
    settings = TrainSettings(
        epochs=cfg.trainer.epochs, batch_size=cfg.data.batch_size, eval_batch_size=cfg.data.eval_batch_size,
        group_by_length=cfg.data.group_by_length, eval_every=cfg.trainer.eval_every, precision=precision, seed=cfg.seed,
    )
    log.info("run %s: model %s (%s) on %s, precision %s; results -> %s", run_id, cfg.model.name, model_path, device,
             precision, Path(cfg.paths.results_dir).resolve())

    files, scores = [], []
    with progress_bar(progress_enabled(cfg.trainer.progress)) as progress:
        units_bar = progress.add_task("training units", total=len(plan.units), info="")
        for i, unit in enumerate(plan.units):
            started = time.perf_counter()
            records = _run_unit(cfg, spec, unit, model_path, cache, settings, device, precision, run_id, chash,
                                tracker, progress)
            path = write_records(records, cfg.paths.results_dir, f"{run_id}-{i:04d}-{unit.source}")
            tracker.log_records(records)
            tracker.finish_unit()
            files.append(path)
            scores.extend(r.value for r in records if r.metric == spec.primary_metric)
            log.info("unit %d/%d (source %s) done in %.1fs -> %s", i + 1, len(plan.units), unit.source,
                     time.perf_counter() - started, path)
            progress.advance(units_bar)

    objective = float(np.mean(scores))
    matrix_view.show_run(cfg.paths.results_dir, run_id, spec.metrics)
    log.info("records: %d file(s) under %s (run id %s); mean test %s = %.4f", len(files),
             Path(cfg.paths.results_dir).resolve() / "runs", run_id, spec.primary_metric, objective)
    return objective


def _run_unit(cfg, spec: TaskSpec, unit: TrainingUnit, model_path: str, cache: TokenCache, settings: TrainSettings,
              device: torch.device, precision: str, run_id: str, chash: str, tracker, progress) -> list[Record]:
    seed_everything(cfg.seed)
    model = load_classifier(cfg.model, model_path, len(spec.labels)).to(device)
    train_split = TokenizedSplit.concat([cache.get(lang, "train") for lang in unit.train_languages])
    train_split = subsample(train_split, cfg.data.max_train_examples, cfg.seed)
    dev_split = subsample(cache.get(unit.select_language, "dev"), cfg.data.max_eval_examples, cfg.seed)
    pad_id = cache.tokenizer.pad_token_id
    tracker.start_unit(f"{cfg.name}/{unit.source}", OmegaConf.to_container(cfg, resolve=True))

    steps = progress.add_task(f"train {unit.source}", total=settings.epochs * -(-len(train_split) // settings.batch_size), info="")

    def on_step(step: int, loss: float, lr: float) -> None:
        progress.update(steps, advance=1, info=f"loss {loss:.3f}")
        tracker.log_metrics({"train/loss": loss, "train/lr": lr}, step)

    result = train(model, train_split, dev_split, unit.select_language, cfg.optimizer, settings, spec.metrics,
                   spec.primary_metric, len(spec.labels), pad_id, device, on_step=on_step)
    progress.remove_task(steps)
    log.info("source %s: best dev %s %.4f at step %d of %d", unit.source, spec.primary_metric, result.best_score,
             result.best_step, result.steps)

    common = dict(
        experiment=cfg.name, run_id=run_id, model=cfg.model.name, task=spec.name, regime=cfg.regime.name,
        source=unit.source, seed=cfg.seed, selection=cfg.regime.selection, config_hash=chash,
        git_commit=git_commit(), timestamp=now_iso(), step=result.best_step,
    )
    records: list[Record] = []
    evals = progress.add_task(f"test {unit.source}", total=len(unit.targets), info="")
    for target in unit.targets:
        test = subsample(cache.get(target, "test"), cfg.data.max_eval_examples, cfg.seed)
        preds = predict(model, test, settings.eval_batch_size, pad_id, device, precision)
        for metric, value in compute_metrics(preds, test.labels, spec.metrics, len(spec.labels)).items():
            records.append(Record(target=target, target_tag=normalize_tag(target), split="test", metric=metric,
                                  value=value, n_examples=len(test), **common))
        progress.update(evals, advance=1, info=target)
    progress.remove_task(evals)
    return records
