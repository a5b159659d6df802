"""Decoders on CUDA (issue #17): the tiny random decoder runs the NusaX zero-shot matrix (English ->
all 12 languages) with bf16 + LoRA and, when bitsandbytes imports, with QLoRA (4-bit NF4 base weights),
then the in-context regime (K = 0, 4) in bf16. Nothing is downloaded: the model is built from the
task's text; the data is ``../shared/data`` (or ``XLEXP_DATA_DIR``).

Each arm is one ``xlexp run`` in-process (``run_experiment``); the script prints one line per arm
(wall time, the 12-target mean test macro-F1 under source_dev, peak GPU memory, trainable
parameters, device and precision as recorded) and writes them as JSON (``--out``).

    python benchmarks/gpu_decoder.py                 # on a CUDA machine (~2-4 min on an H200)
    python benchmarks/gpu_decoder.py --quick         # CPU smoke test: LoRA only, 3 targets, 1 epoch
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="CPU smoke test: LoRA only, 3 targets, 1 epoch")
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--out", default=os.environ.get("OUT", str(ROOT / "benchmarks" / "results")))
    args = p.parse_args(argv)

    import torch

    from xlexp import compose, load_records, run_experiment

    data = Path(os.environ.get("XLEXP_DATA_DIR", ROOT.parent / "shared" / "data"))
    if not (data / "nusax_senti").is_dir():
        print(f"no NusaX data under {data}; set XLEXP_DATA_DIR", file=sys.stderr)
        return 2
    cuda = torch.cuda.is_available()
    if not cuda and not args.quick:
        print("no CUDA device: run with --quick for the CPU smoke test", file=sys.stderr)
        return 2
    try:
        import bitsandbytes  # noqa: F401

        has_bnb = cuda
        bnb_note = "bitsandbytes " + bitsandbytes.__version__
    except ImportError as e:
        has_bnb, bnb_note = False, f"bitsandbytes missing ({e}): QLoRA arm skipped"
    print(f"device: {torch.cuda.get_device_name(0) if cuda else 'cpu'}; torch {torch.__version__}; {bnb_note}")

    work = Path(tempfile.mkdtemp(prefix="xlexp-gpu-decoder-"))
    targets = "[eng,ind,jav]" if args.quick else "all"
    epochs = 1 if args.quick else args.epochs
    base = [
        f"paths.data_dir={data}",
        f"paths.results_dir={work / 'results'}",
        f"paths.cache_dir={work / 'cache'}",
        "model=tiny_random_decoder",
        "langpair.sources=[eng]",
        f"langpair.targets={targets}",
        "trainer.progress=false",
        f"trainer.epochs={epochs}",
        "data.batch_size=16",
    ]
    device = ["trainer.device=cuda", "trainer.precision=bf16"] if cuda else ["trainer.device=cpu"]
    arms = {"lora_bf16": ["model.peft=lora", "model.dtype=bf16", "optimizer.lr=3e-3"]}
    if has_bnb:
        arms["qlora"] = ["model.peft=qlora", "optimizer.lr=3e-3"]
    arms["icl_k0_k4_bf16"] = ["regime=icl", "regime.k=[0,4]", "model.dtype=bf16"]
    rows = []
    for name, extra in arms.items():
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        started = time.perf_counter()
        run_experiment(compose([*base, *device, *extra, f"name=gpu_{name}"]))
        wall = time.perf_counter() - started
        df = load_records(work / "results")
        df = df[
            (df["experiment"].str.startswith(f"gpu_{name}"))
            & (df["split"] == "test")
            & (df["metric"] == "macro_f1")
            & (df["selection"] == "source_dev")
        ]
        by_k = {
            ("K=none" if k == -1 else f"K={int(k)}"): round(float(g["value"].mean()), 4)
            for k, g in df.groupby(df["k"].fillna(-1))
        }
        row = {
            "arm": name,
            "wall_s": round(wall, 1),
            "mean_test_macro_f1": by_k,
            "targets": int(df["target"].nunique()),
            "peak_memory_mb": float(df["peak_memory_mb"].max()),
            "trainable_params": int(df["trainable_params"].max()),
            "finetune": sorted(df["finetune"].unique()),
            "precision": sorted(df["precision"].unique()),
            "family": sorted(df["family"].unique()),
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "gpu_decoder.json").write_text(json.dumps({"note": bnb_note, "arms": rows}, indent=1))
    print(f"-> {out / 'gpu_decoder.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
