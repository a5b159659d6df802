"""The peer: a competent Hugging Face ``Trainer`` script for the NusaX-senti zero-shot row.

English train -> English dev for model selection -> test on each of the 12 NusaX languages, with
the offline multilingual-e5-small folder that ``xlexp build-model`` writes, and the quickstart's
hyperparameters (xlexp/conf/experiment/quickstart.yaml + xlexp/conf/optimizer/adamw.yaml + xlexp/conf/config.yaml):
5 epochs, lr 1e-4, batch 16, eval batch 64, max length 128, linear warmup over 10% of the steps
then linear decay, weight decay 0.01 (not on biases/LayerNorm), grad-norm clip 1.0, AdamW
(torch fused, the Trainer's default like xlexp's), seed 42.

What a competent user does, and what this script does:
- ``datasets`` + ``tokenizer(..., truncation=True, max_length=128)`` + ``DataCollatorWithPadding``
  (dynamic padding, random batches: no length grouping unless ``--group-by-length``), fp32 unless ``--bf16``;
- ``eval_strategy=epoch`` on English dev with ``load_best_model_at_end`` on dev macro-F1, which
  needs ``save_strategy=epoch``: a full checkpoint (model + optimizer state, ~1.4 GB for e5-small)
  is written every epoch (``save_total_limit=1``: the best and the latest are kept). That is the
  peer's cost; ``--save-only-model`` drops the optimizer state;
- trained once, then ``trainer.predict`` on each target's test split; accuracy and macro-F1 by sklearn
  (macro over all 3 labels, a never-predicted class counts as F1 0, as xlexp does).

Pooling: xlexp's head for e5 mean-pools the last hidden states (e5 was trained that way and the
folder has no pooler weights). ``AutoModelForSequenceClassification`` would build
``BertForSequenceClassification``, whose head sits on a pooler (dense + tanh on [CLS]) that is
*randomly initialised* here. By default the peer uses the same head as xlexp: a small
``BertPreTrainedModel`` subclass (mean pooling -> dropout -> linear), so the comparison is between
training loops, not heads. ``--pooling cls`` uses ``AutoModelForSequenceClassification`` as is.

Data subsampling (``--max-train-examples``, ``--max-eval-examples``) picks the same rows xlexp does
(``np.sort(default_rng(seed).permutation(n)[:limit])``).

``--hp-search N`` runs ``Trainer.hyperparameter_search(backend="optuna", n_trials=N)`` instead (see
``sweep_vs_hf.py``): same space as ``benchmarks/sweeps/nusax_bench.yaml``, TPE sampler and median
pruner with the same settings, objective = English dev macro-F1 as the Trainer reports it (the last
evaluation of a trial), no checkpoints (``save_strategy=no``).

    python benchmarks/hf_peer.py --json benchmarks/results/peer.json
    python benchmarks/hf_peer.py --epochs 1 --max-train-examples 32 --max-eval-examples 32 --targets eng,ind
"""

from __future__ import annotations

import time

T_PROCESS_START = time.perf_counter()

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402
import yaml  # noqa: E402
from sklearn.metrics import accuracy_score, f1_score  # noqa: E402
from torch import nn  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
TASKS = ("nusax_senti", "sib200")  # sentence classification tasks with local files the peer can read


# ---- data ---------------------------------------------------------------------------------------


def task_layout(name: str = "nusax_senti") -> dict:
    task = yaml.safe_load((REPO / "xlexp" / "conf" / "task" / f"{name}.yaml").read_text())
    if isinstance(task["languages"], list):  # SIB-200: the folder is the code itself
        task["languages"] = {code: code for code in task["languages"]}
    return task


def subsample_rows(n: int, limit: int | None, seed: int) -> np.ndarray:
    if limit is None or limit >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).permutation(n)[:limit])


def read_split(data_dir: Path, task: dict, lang: str, split: str, limit: int | None, seed: int) -> pd.DataFrame:
    folder = task["languages"][lang]
    fname = task["local"]["split_names"][split]
    path = data_dir / task["local"]["path"].format(folder=folder, split=fname)
    sep = "\t" if task["local"].get("format") == "tsv" else ","
    df = pd.read_csv(path, dtype=str, keep_default_na=False, sep=sep, quoting=3 if sep == "\t" else 0)
    df = df.iloc[subsample_rows(len(df), limit, seed)].reset_index(drop=True)
    label_id = {name: i for i, name in enumerate(task["labels"])}
    return pd.DataFrame(
        {"text": df[task["text_fields"][0]], "labels": df[task["label_field"]].map(label_id).astype(int)}
    )


def tokenize(tokenizer, frame: pd.DataFrame, max_length: int):
    try:
        from datasets import Dataset
    except ImportError:  # a machine without `datasets` (or an incompatible pyarrow): a list of dicts serves Trainer too
        enc = tokenizer(list(frame["text"]), truncation=True, max_length=max_length)
        return [{**{k: v[i] for k, v in enc.items()}, "labels": int(frame["labels"][i])} for i in range(len(frame))]

    ds = Dataset.from_pandas(frame, preserve_index=False)
    return ds.map(
        lambda b: tokenizer(b["text"], truncation=True, max_length=max_length),
        batched=True,
        remove_columns=["text"],
        load_from_cache_file=False,
        keep_in_memory=True,
    )


# ---- model --------------------------------------------------------------------------------------


def mean_pool_class(model_dir: Path | None = None):
    """xlexp's head on the folder's encoder class (BERT for e5, XLM-R for an XLM-R-shaped folder)."""
    from transformers import MODEL_MAPPING, AutoConfig, BertModel
    from transformers.modeling_outputs import SequenceClassifierOutput

    base = MODEL_MAPPING[type(AutoConfig.from_pretrained(model_dir))] if model_dir else BertModel
    pretrained = base.__mro__[1]  # BertPreTrainedModel, XLMRobertaPreTrainedModel, ...

    class MeanPoolClassifier(pretrained):
        """e5's head as xlexp builds it: mean over non-pad positions -> dropout -> linear."""

        def __init__(self, config):
            super().__init__(config)
            self.num_labels = config.num_labels
            setattr(self, self.base_model_prefix, base(config, add_pooling_layer=False))
            self.dropout = nn.Dropout(config.hidden_dropout_prob)
            self.classifier = nn.Linear(config.hidden_size, config.num_labels)
            self.post_init()

        def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, labels=None, **kwargs):
            encoder = getattr(self, self.base_model_prefix)
            hidden = encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
            logits = self.classifier(self.dropout(pooled))
            loss = nn.functional.cross_entropy(logits.float(), labels) if labels is not None else None
            return SequenceClassifierOutput(loss=loss, logits=logits)

    return MeanPoolClassifier


def load_model(model_dir: Path, num_labels: int, pooling: str):
    from transformers import AutoModelForSequenceClassification

    if pooling == "cls":
        return AutoModelForSequenceClassification.from_pretrained(model_dir, num_labels=num_labels)
    return mean_pool_class(model_dir).from_pretrained(model_dir, num_labels=num_labels)


def sentence_metrics(labels: np.ndarray, preds: np.ndarray, n_labels: int) -> dict[str, float]:
    return {
        "accuracy": float(accuracy_score(labels, preds)),
        "macro_f1": float(f1_score(labels, preds, labels=list(range(n_labels)), average="macro", zero_division=0)),
    }


# ---- the run --------------------------------------------------------------------------------------


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--task", default="nusax_senti", choices=TASKS)
    p.add_argument(
        "--select",
        default="best",
        choices=["best", "last"],
        help="best: load_best_model_at_end on dev macro-F1 (a checkpoint per epoch); last: the last epoch, "
        "no checkpoints (xlexp's selection=last)",
    )
    p.add_argument("--model-dir", help="offline e5 folder (default: the one `xlexp build-model` writes)")
    p.add_argument(
        "--data-dir", default=os.environ.get("XLEXP_DATA_DIR"), help="default: $XLEXP_DATA_DIR, else ../shared/data"
    )
    p.add_argument("--source", default="eng")
    p.add_argument("--targets", default="all", help="comma-separated task codes, or 'all' (every language of the task)")
    p.add_argument("--epochs", type=float, default=5)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--eval-batch-size", type=int, default=64)
    p.add_argument("--max-length", type=int, default=128)
    p.add_argument("--warmup-ratio", type=float, default=0.1)
    p.add_argument("--weight-decay", type=float, default=0.01)
    p.add_argument("--grad-clip", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--max-train-examples", type=int)
    p.add_argument("--max-eval-examples", type=int)
    p.add_argument(
        "--pooling",
        choices=["mean", "cls"],
        default="mean",
        help="mean: xlexp's e5 head (default); cls: AutoModelForSequenceClassification (random pooler)",
    )
    p.add_argument("--bf16", action="store_true", help="TrainingArguments(bf16=True): autocast (default fp32)")
    p.add_argument("--group-by-length", action="store_true", help="length-grouped batches (default: random)")
    p.add_argument("--save-only-model", action="store_true", help="checkpoints without optimizer state")
    p.add_argument("--output-dir", help="Trainer output dir (default: a temporary folder, deleted at the end)")
    p.add_argument("--json", help="write the results here (JSON)")
    p.add_argument("--hp-search", type=int, metavar="N", help="Trainer.hyperparameter_search(optuna) with N trials")
    p.add_argument("--hp-seed", type=int, default=0, help="TPE sampler seed (as the xlexp sweep file)")
    return p.parse_args(argv)


def training_args(a: argparse.Namespace, out_dir: str, search: bool):
    from transformers import TrainingArguments

    search = search or a.select == "last"  # no checkpoints: the model after the last epoch is the one tested
    return TrainingArguments(
        output_dir=out_dir,
        num_train_epochs=a.epochs,
        learning_rate=a.lr,
        per_device_train_batch_size=a.batch_size,
        per_device_eval_batch_size=a.eval_batch_size,
        warmup_steps=a.warmup_ratio,
        lr_scheduler_type="linear",
        weight_decay=a.weight_decay,
        max_grad_norm=a.grad_clip,
        seed=a.seed,
        bf16=a.bf16,
        use_cpu=not torch.cuda.is_available(),  # bf16 autocast on a CPU is refused unless said explicitly
        eval_strategy="epoch",
        save_strategy="no" if search else "epoch",
        save_total_limit=None if search else 1,
        save_only_model=a.save_only_model,
        load_best_model_at_end=not search,
        metric_for_best_model="macro_f1",
        greater_is_better=True,
        logging_strategy="epoch",
        report_to="none",
        disable_tqdm=True,
        train_sampling_strategy="group_by_length" if a.group_by_length else "random",
    )


def main(argv=None) -> int:
    a = parse_args(argv)
    from transformers import AutoTokenizer, DataCollatorWithPadding, Trainer
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_warning()
    try:
        import datasets

        datasets.disable_progress_bars()
    except ImportError:
        pass
    t_imports = time.perf_counter()
    task = task_layout(a.task)
    data_dir = Path(a.data_dir) if a.data_dir else REPO.parent / "shared" / "data"
    if a.model_dir:
        model_dir = Path(a.model_dir)
    else:
        from xlexp.models.offline_e5 import DEFAULT_CACHE, build_offline_e5  # only to find (or build once) the folder

        model_dir = build_offline_e5(Path(os.environ.get("XLEXP_CACHE_DIR", DEFAULT_CACHE)).expanduser())
    targets = list(task["languages"]) if a.targets == "all" else [t.strip() for t in a.targets.split(",") if t.strip()]
    n_labels = len(task["labels"])
    torch.manual_seed(a.seed)

    phases: dict[str, float] = {}
    t0 = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    train_ds = tokenize(
        tokenizer, read_split(data_dir, task, a.source, "train", a.max_train_examples, a.seed), a.max_length
    )
    dev_ds = tokenize(tokenizer, read_split(data_dir, task, a.source, "dev", a.max_eval_examples, a.seed), a.max_length)
    test_ds = (
        {}
        if a.hp_search
        else {
            t: tokenize(tokenizer, read_split(data_dir, task, t, "test", a.max_eval_examples, a.seed), a.max_length)
            for t in targets
        }
    )
    phases["read_and_tokenize_s"] = time.perf_counter() - t0

    def compute_metrics(pred) -> dict[str, float]:
        return sentence_metrics(pred.label_ids, np.argmax(pred.predictions, axis=-1), n_labels)

    out_dir = a.output_dir or tempfile.mkdtemp(prefix="xlexp_hf_peer_")
    collator = DataCollatorWithPadding(tokenizer)
    result: dict = {
        "peer": "transformers.Trainer",
        "pooling": a.pooling,
        "precision": "bf16" if a.bf16 else "fp32",
        "settings": {k: v for k, v in vars(a).items() if k not in ("json",)},
        "model_dir": str(model_dir),
        "n_train": len(train_ds),
        "n_dev": len(dev_ds),
        "torch_threads": torch.get_num_threads(),
    }
    try:
        if a.hp_search:
            result["search"] = hp_search(
                a, out_dir, tokenizer, collator, train_ds, dev_ds, compute_metrics, model_dir, n_labels
            )
        else:
            t0 = time.perf_counter()
            model = load_model(model_dir, n_labels, a.pooling)
            phases["model_load_s"] = time.perf_counter() - t0
            trainer = Trainer(
                model=model,
                args=training_args(a, out_dir, search=False),
                train_dataset=train_ds,
                eval_dataset=dev_ds,
                processing_class=tokenizer,
                data_collator=collator,
                compute_metrics=compute_metrics,
            )
            t0 = time.perf_counter()
            train_out = trainer.train()
            phases["train_incl_dev_eval_and_checkpoints_s"] = time.perf_counter() - t0
            dev_history = [
                {"epoch": h["epoch"], "step": h["step"], "macro_f1": h["eval_macro_f1"], "accuracy": h["eval_accuracy"]}
                for h in trainer.state.log_history
                if "eval_macro_f1" in h
            ]
            t0 = time.perf_counter()
            per_target = {}
            for t, ds in test_ds.items():
                pred = trainer.predict(ds)
                per_target[t] = {
                    **sentence_metrics(pred.label_ids, np.argmax(pred.predictions, axis=-1), n_labels),
                    "n": len(ds),
                }
            phases["predict_s"] = time.perf_counter() - t0
            result |= {
                "per_target": per_target,
                "dev_history": dev_history,
                "best_checkpoint": trainer.state.best_model_checkpoint,
                "best_dev_macro_f1": trainer.state.best_metric,
                "train_steps": train_out.global_step,
                "mean": {m: float(np.mean([v[m] for v in per_target.values()])) for m in ("accuracy", "macro_f1")},
            }
    finally:
        if not a.output_dir:
            shutil.rmtree(out_dir, ignore_errors=True)
    phases["imports_s"] = t_imports - T_PROCESS_START
    phases["in_process_total_s"] = time.perf_counter() - T_PROCESS_START
    result["phases"] = {k: round(v, 3) for k, v in phases.items()}
    text = json.dumps(result, indent=2, default=str)
    if a.json:
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_text(text + "\n")
    if "per_target" in result:
        print("target  accuracy  macro_f1")
        for t, m in result["per_target"].items():
            print(f"{t:6s}  {m['accuracy']:.4f}    {m['macro_f1']:.4f}")
        print(f"mean    {result['mean']['accuracy']:.4f}    {result['mean']['macro_f1']:.4f}")
    print("phases:", json.dumps(result["phases"]))
    return 0


def hp_search(a, out_dir, tokenizer, collator, train_ds, dev_ds, compute_metrics, model_dir, n_labels) -> dict:
    import optuna
    from transformers import Trainer

    def model_init(trial=None):
        return load_model(model_dir, n_labels, a.pooling)

    def hp_space(trial):  # the space of benchmarks/sweeps/nusax_bench.yaml, in the same order
        return {
            "learning_rate": trial.suggest_float("learning_rate", 5e-6, 1e-4, log=True),
            "per_device_train_batch_size": trial.suggest_categorical("per_device_train_batch_size", [8, 16, 32]),
            "weight_decay": trial.suggest_float("weight_decay", 0.0, 0.1),
        }

    trainer = Trainer(
        model_init=model_init,
        args=training_args(a, out_dir, search=True),
        train_dataset=train_ds,
        eval_dataset=dev_ds,
        processing_class=tokenizer,
        data_collator=collator,
        compute_metrics=compute_metrics,
    )
    storage = f"sqlite:///{Path(out_dir).resolve() / 'hf_search.db'}"
    t0 = time.perf_counter()
    best = trainer.hyperparameter_search(
        hp_space=hp_space,
        compute_objective=lambda m: m["eval_macro_f1"],
        n_trials=a.hp_search,
        direction="maximize",
        backend="optuna",
        study_name="hf_peer",
        storage=storage,
        sampler=optuna.samplers.TPESampler(seed=a.hp_seed, n_startup_trials=3),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=0),
    )
    wall = time.perf_counter() - t0
    study = optuna.load_study(study_name="hf_peer", storage=storage)
    trials = []
    for t in study.trials:
        inter = dict(sorted(t.intermediate_values.items()))
        trials.append(
            {
                "number": t.number,
                "state": t.state.name,
                "value": t.value,
                "params": t.params,
                "intermediate": inter,
                "best_intermediate": max(inter.values()) if inter else None,
                "duration_s": t.duration.total_seconds() if t.duration else None,
            }
        )
    states = {s: sum(t["state"] == s for t in trials) for s in ("COMPLETE", "PRUNED", "FAIL")}
    best_any_epoch = max((t["best_intermediate"] for t in trials if t["best_intermediate"] is not None), default=None)
    return {
        "wall_s": wall,
        "best_value": best.objective,
        "best_params": best.hyperparameters,
        "states": states,
        "best_dev_any_epoch": best_any_epoch,
        "trials": trials,
    }


if __name__ == "__main__":
    sys.exit(main())
