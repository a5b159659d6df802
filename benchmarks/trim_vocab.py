"""Per-step training speed with and without vocabulary trimming, in fp32 and bf16 autocast
(issue #4), all arms in one process.

The offline multilingual-e5-small (XLM-R's 250k vocabulary: 96M of its 118M parameters are the
embedding matrix) trains on NusaX English with xlexp's own loop (fused AdamW, grad clipping,
length-grouped dynamic batches). Both arms see the same batches; the arms alternate in rounds so
load drift on a shared machine hits both. Trimming keeps the ids of every split of the 12 NusaX
languages (what ``model.trim_vocab=true`` keeps for ``langpair=nusax_eng_all``).

    python benchmarks/trim_vocab.py [--steps 20] [--rounds 2] [--precision fp32,bf16]
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from xlexp import TaskSpec
from xlexp.config.compose import CONF_DIR
from xlexp.config.schema import OptimizerSettings
from xlexp.data.tokenized import TokenCache
from xlexp.data.vocab import count_parameters, plan_trim, trim_embeddings
from xlexp.engine.loop import TrainSettings, train
from xlexp.experiment import kinds
from xlexp.models.encoders import load_classifier, load_tokenizer, resolve_model_path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import model_of  # noqa: E402

NUSAX = ["ace", "ban", "bbc", "bjn", "bug", "eng", "ind", "jav", "mad", "min", "nij", "sun"]


def state_mb(model: torch.nn.Module) -> float:
    """Weights + gradients + AdamW's two moments of the trainable parameters, fp32 (MiB)."""
    total, trainable = count_parameters(model)
    return ((total - trainable) * 4 + trainable * 4 * 4) / 2**20


def time_steps(model, split, cfg, pad_id: int, steps: int, precision: str) -> list[float]:
    """Seconds per optimizer step over ``steps`` steps (+2 warm-up steps, dropped)."""
    n = (steps + 2) * cfg.data.batch_size
    sub = split.subset(np.arange(min(n, len(split))))
    stamps: list[float] = []
    settings = TrainSettings(
        epochs=1,
        batch_size=cfg.data.batch_size,
        eval_batch_size=64,
        group_by_length=True,
        eval_every=None,
        precision=precision,
        seed=0,
    )
    start = time.perf_counter()
    train(
        model,
        sub,
        OptimizerSettings(**OmegaConf.to_container(cfg.optimizer, resolve=True)),
        settings,
        pad_id,
        torch.device("cpu"),
        on_step=lambda *a: stamps.append(time.perf_counter()),
    )
    times = np.diff([start, *stamps])
    return list(times[2:])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--precision", default="fp32,bf16", help="comma-separated: fp32, bf16 (autocast)")
    p.add_argument(
        "--data-dir",
        default=os.environ.get("XLEXP_DATA_DIR", str(Path(__file__).resolve().parents[2] / "shared" / "data")),
    )
    args = p.parse_args()

    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("config", overrides=["+experiment=quickstart", f"paths.data_dir={args.data_dir}"])
    cache_dir = Path(cfg.paths.cache_dir).expanduser()
    path = resolve_model_path(model_of(cfg), cache_dir)
    tokenizer = load_tokenizer(model_of(cfg), path)
    spec = TaskSpec.from_config(cfg.task)
    cache = TokenCache(spec, tokenizer, cfg.data.max_length, Path(args.data_dir), cache_dir, kind=kinds.of(spec))
    splits = [cache.get(lang, s) for lang in NUSAX for s in ("train", "dev", "test")]
    trim = plan_trim(splits, tokenizer, len(tokenizer))
    train_split = cache.get("eng", "train")
    trimmed_split = type(train_split)([trim.old_to_new[x] for x in train_split.input_ids], train_split.labels)

    torch.manual_seed(0)
    full = load_classifier(model_of(cfg), path, len(spec.labels))
    small = copy.deepcopy(full)
    trim_embeddings(small.encoder, trim)
    vocabularies = {
        "full vocabulary": (full, train_split, tokenizer.pad_token_id),
        "trimmed": (small, trimmed_split, int(trim.old_to_new[tokenizer.pad_token_id])),
    }
    precisions = args.precision.split(",")
    arms = [(v, prec) for prec in precisions for v in vocabularies]
    times: dict[tuple[str, str], list[float]] = {a: [] for a in arms}
    for _ in range(args.rounds):
        for vocab, prec in arms:
            model, split, pad = vocabularies[vocab]
            times[(vocab, prec)] += time_steps(copy.deepcopy(model), split, cfg, pad, args.steps, prec)

    base = np.median(times[arms[0]])
    print(
        f"\nvocabulary trimming, offline e5-small on NusaX eng train, batch {cfg.data.batch_size}, "
        f"{torch.get_num_threads()} threads, {args.rounds} rounds x {args.steps} steps per arm (arms interleaved)"
    )
    print(f"kept {trim.size:,} of {trim.original_size:,} ids (all splits of the 12 NusaX languages)\n")
    print(
        "| vocabulary | precision | parameters | weights+grads+AdamW (MiB) | median s/step | vs first arm | trimmed vs full, same precision |"
    )
    print("|---|---|---:|---:|---:|---:|---:|")
    for vocab, prec in arms:
        model = vocabularies[vocab][0]
        med = np.median(times[(vocab, prec)])
        same = np.median(times[("full vocabulary", prec)]) / med
        print(
            f"| {vocab} | {prec} | {count_parameters(model)[0]:,} | {state_mb(model):,.0f} | {med:.3f} | "
            f"{base / med:.2f}x | {same:.2f}x |"
        )
    print(f"\ncommand: python {' '.join(sys.argv)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
