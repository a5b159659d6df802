"""Benchmark 2: training efficiency: achieved FLOP/s of xlexp's training loop over the machine's
measured matmul FLOP/s of the same dtype, in one process.

1. Peak: an n x n bf16 / fp32 matmul (n = 2048, torch's default thread count), best of a few
   repetitions, measured before and after the training loops (the higher is the peak).
2. xlexp's loop, fp32 then bf16 (``trainer.precision=bf16``: autocast): the real pipeline
   (``run_experiment`` on ``+experiment=quickstart``, English train, no dev evaluations), with
   ``xlexp.experiment.transfer.train`` wrapped to time each optimizer step and to stop after
   ``--warmup-steps + --steps``; the first ``--warmup-steps`` are excluded. Each step's tokens are
   read from the batches the loop collates (``xlexp.engine.loop.collate`` is wrapped to count them).
   Model FLOP/s = 6 x non-embedding parameters x non-pad tokens / s (the issue's definition; the
   attention score FLOPs and the embedding/optimizer work are not counted as useful work).
3. Optional (default on, ``--no-plain``): an equivalent plain PyTorch loop that pads every batch
   to ``data.max_length``, random batches, ``torch.optim.AdamW`` (default implementation), the
   same model and data: the same FLOP/s definition (non-pad tokens), so padding shows as waste.

Target (issue #8): >= 50% of the measured matmul peak of the same dtype, on the CPU. On a machine
with CUDA (``trainer.device=auto``) the same script measures the GPU (matmul n = 8192 by default):
that is table 6 (GPU MFU) of BENCHMARKS.md.

    python benchmarks/train_efficiency.py
    python benchmarks/train_efficiency.py --overrides "model.trim_vocab=true"
    python benchmarks/train_efficiency.py --quick          # smoke: 1 + 3 steps, n=1024 matmul
"""

from __future__ import annotations

import argparse
import inspect
import math
import shlex
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_common as bc  # noqa: E402

TARGET = 0.50


class _Stop(Exception):
    """Raised from the step hook once enough steps are timed."""


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=32, help="timed steps per precision (default 32 = one NusaX epoch)")
    p.add_argument("--warmup-steps", type=int, default=4, help="untimed steps first")
    p.add_argument("--precisions", default="fp32,bf16")
    p.add_argument("--matmul-n", type=int, default=2048)
    p.add_argument("--matmul-reps", type=int, default=10)
    p.add_argument("--overrides", action="append", default=[], help="extra Hydra overrides for xlexp (space-separated)")
    p.add_argument("--no-plain", action="store_true", help="skip the plain PyTorch max-length-padded loop")
    p.add_argument("--quick", action="store_true", help="smoke test: 1 warmup + 3 steps, 1024^2 matmul x3")
    a = p.parse_args(argv)
    if a.quick:
        a.steps, a.warmup_steps, a.matmul_n, a.matmul_reps = 3, 1, 1024, 3
    return a


def time_xlexp_loop(overrides: list[str], precision: str, warmup: int, steps: int, scratch: Path) -> dict:
    """Run xlexp's pipeline until ``warmup + steps`` optimizer steps are done; per-step times and tokens."""
    import xlexp.engine.loop as train_mod
    import xlexp.experiment.runner as pipeline
    import xlexp.experiment.transfer as transfer
    from xlexp import compose
    from xlexp.data.vocab import count_parameters

    total = warmup + steps
    cfg = compose(
        [
            "+experiment=quickstart",
            "name=bench_train_eff",
            "regime.dev_targets=none",
            "langpair.targets=[eng]",
            f"trainer.precision={precision}",
            "trainer.progress=false",
            f"paths.results_dir={scratch / 'results'}",
            *overrides,
        ]
    )
    steps_per_epoch = math.ceil(min(500, cfg.data.max_train_examples or 500) / cfg.data.batch_size)
    cfg.trainer.epochs = max(int(cfg.trainer.epochs), math.ceil(total / steps_per_epoch) + 1)

    stamps: list[float] = []
    batches: list[tuple[int, int, int]] = []  # (non-pad tokens, padded tokens, batch size) per collated train batch
    seen: dict = {}
    real_train = transfer.train
    real_collate = getattr(train_mod, "collate", None)

    def counting_collate(split, idx, pad_id, *args, **kwargs):
        out = real_collate(split, idx, pad_id, *args, **kwargs)
        mask = out["attention_mask"]
        batches.append((int(mask.sum()), int(mask.numel()), int(mask.shape[0])))
        return out

    def wrapped_train(*args, **kwargs):
        bound = inspect.signature(real_train).bind(*args, **kwargs)
        bound.apply_defaults()
        seen.update(
            model=bound.arguments.get("model"),
            split=bound.arguments.get("train_split"),
            settings=bound.arguments.get("settings"),
            pad_id=bound.arguments.get("pad_id"),
            device=bound.arguments.get("device"),
            opt_cfg=bound.arguments.get("opt_cfg"),
        )
        bound.arguments["on_eval"] = None

        def on_step(step, loss, lr):
            stamps.append(time.perf_counter())
            if step >= total:
                raise _Stop

        bound.arguments["on_step"] = on_step
        stamps.append(time.perf_counter())
        return real_train(*bound.args, **bound.kwargs)

    transfer.train = wrapped_train
    if real_collate is not None:
        train_mod.collate = counting_collate
    try:
        pipeline.run_experiment(cfg)
        raise RuntimeError(f"training ended before {total} steps: lower --steps/--warmup-steps")
    except _Stop:
        pass
    finally:
        transfer.train = real_train
        if real_collate is not None:
            train_mod.collate = real_collate

    model = seen["model"]
    step_times = np.diff(stamps)[warmup:total]
    timed = batches[warmup:total] if len(batches) >= total else []
    if not timed:
        print(
            f"WARNING: counted {len(batches)} collated train batches for {total} steps (xlexp.engine.loop.collate changed?): "
            "no token count, no FLOP/s",
            file=sys.stderr,
        )
    nonpad = sum(b[0] for b in timed) if timed else None
    padded = sum(b[1] for b in timed) if timed else None
    seconds = float(step_times.sum())
    n_ne = bc.non_embedding_params(model)
    res = {
        "precision": precision,
        "steps": len(step_times),
        "seconds": seconds,
        "median_step_s": float(np.median(step_times)),
        "non_embedding_params": n_ne,
        "all_params": count_parameters(model)[0],
        "tokens_nonpad": nonpad,
        "tokens_padded": padded,
        "batch_size": int(seen["settings"].batch_size),
        "group_by_length": bool(seen["settings"].group_by_length),
    }
    if nonpad:
        res["tokens_per_s"] = nonpad / seconds
        res["model_flops"] = 6 * n_ne * nonpad / seconds
        res["padded_flops"] = 6 * n_ne * padded / seconds
        res["pad_fraction"] = 1 - nonpad / padded
    seen["cfg"] = cfg
    return res, seen


def time_plain_loop(seen: dict, precision: str, warmup: int, steps: int, max_length: int, lr: float) -> dict:
    """A plain PyTorch loop: a copy of the very model xlexp trained (architecture as xlexp built it,
    e.g. with a trimmed vocabulary; the weights do not matter for speed) on the same token ids,
    batches padded to max_length, torch AdamW with its default implementation."""
    import copy

    import torch

    from xlexp.engine.inference import autocast

    cfg, split, device, pad_id = seen["cfg"], seen["split"], seen["device"], seen["pad_id"]
    torch.manual_seed(0)
    model = copy.deepcopy(seen["model"])
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=float(cfg.optimizer.weight_decay))
    loss_fn = torch.nn.CrossEntropyLoss()
    bs = int(cfg.data.batch_size)
    rng = np.random.default_rng(0)
    order = np.concatenate(
        [rng.permutation(len(split)) for _ in range(math.ceil((warmup + steps) * bs / len(split)) + 1)]
    )
    stamps, nonpad = [time.perf_counter()], []
    for s in range(warmup + steps):
        idx = order[s * bs : (s + 1) * bs]
        ids = torch.full((len(idx), max_length), pad_id, dtype=torch.long)
        mask = torch.zeros((len(idx), max_length), dtype=torch.long)
        for r, i in enumerate(idx):
            seq = torch.as_tensor(split.input_ids[i], dtype=torch.long)
            ids[r, : len(seq)] = seq
            mask[r, : len(seq)] = 1
        labels = torch.as_tensor(split.labels[idx])
        with autocast(device, precision):
            logits = model(ids.to(device), mask.to(device))
        loss = loss_fn(logits.float(), labels.to(device))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize()
        stamps.append(time.perf_counter())
        nonpad.append(int(mask.sum()))
    seconds = stamps[-1] - stamps[warmup]
    tokens = sum(nonpad[warmup:])
    n_ne = bc.non_embedding_params(model)
    return {
        "precision": precision,
        "steps": steps,
        "seconds": seconds,
        "tokens_nonpad": tokens,
        "tokens_padded": steps * bs * max_length,
        "tokens_per_s": tokens / seconds,
        "model_flops": 6 * n_ne * tokens / seconds,
        "padded_flops": 6 * n_ne * steps * bs * max_length / seconds,
        "pad_fraction": 1 - tokens / (steps * bs * max_length),
        "non_embedding_params": n_ne,
    }


def main(argv=None) -> int:
    a = parse_args(argv)
    busy = bc.warn_if_busy()
    import os

    os.environ.setdefault("XLEXP_DATA_DIR", str(bc.data_dir()))
    machine = bc.machine_info()
    overrides = [o for chunk in a.overrides for o in shlex.split(chunk)]
    precisions = [p.strip() for p in a.precisions.split(",") if p.strip()]

    from xlexp import compose
    from xlexp.engine.hardware import resolve_device

    device = str(resolve_device(compose(["+experiment=quickstart", *overrides]).trainer.device))
    if device.startswith("cuda") and a.matmul_n == 2048:
        a.matmul_n = 8192  # 2048^2 does not fill a GPU
    peaks_before = {p: bc.matmul_flops(p, a.matmul_n, a.matmul_reps, device=device) for p in precisions}
    scratch = Path(tempfile.mkdtemp(prefix="train_eff-"))
    runs, plain = {}, {}
    try:
        for p in precisions:
            print(f"xlexp loop, {p}: {a.warmup_steps} warmup + {a.steps} timed steps", flush=True)
            runs[p], seen = time_xlexp_loop(overrides, p, a.warmup_steps, a.steps, scratch)
            if not a.no_plain:
                print(f"plain PyTorch loop (padded to max_length), {p}", flush=True)
                plain[p] = time_plain_loop(
                    seen, p, a.warmup_steps, a.steps, int(seen["cfg"].data.max_length), float(seen["cfg"].optimizer.lr)
                )
            del seen
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    peaks_after = {p: bc.matmul_flops(p, a.matmul_n, a.matmul_reps, device=device) for p in precisions}
    peak = {p: max(peaks_before[p]["best_flops"], peaks_after[p]["best_flops"]) for p in precisions}

    g = 1e9
    where = device if device.startswith("cuda") else f"cpu, {machine['torch_threads']} threads"
    md = bc.print_table(
        f"Matmul peak ({a.matmul_n}², {where}, best of {a.matmul_reps})",
        ["dtype", "before (GFLOP/s)", "after (GFLOP/s)", "peak used"],
        [[p, peaks_before[p]["best_flops"] / g, peaks_after[p]["best_flops"] / g, peak[p] / g] for p in precisions],
    )
    rows = []
    for label, table in (("xlexp", runs), ("plain, padded to max_length", plain)):
        for p, r in table.items():
            mf = r.get("model_flops")
            rows.append(
                [
                    label,
                    p,
                    r["steps"],
                    r["seconds"],
                    r.get("tokens_per_s"),
                    (mf or 0) / g,
                    f"{100 * mf / peak[p]:.1f}%" if mf else "-",
                    f"{100 * r['pad_fraction']:.1f}%" if mf else "-",
                    f"{100 * r['padded_flops'] / peak[p]:.1f}%" if mf else "-",
                ]
            )
    md += "\n" + bc.print_table(
        f"Training loop: 6 × non-embedding params × non-pad tokens/s vs matmul peak (target ≥ {TARGET:.0%})",
        ["loop", "dtype", "steps", "seconds", "tokens/s", "model GFLOP/s", "of peak", "padding", "incl. pad, of peak"],
        rows,
    )
    verdicts = {p: (runs[p].get("model_flops") or 0) / peak[p] >= TARGET for p in runs}
    notes = [
        f"non-embedding params {next(iter(runs.values()))['non_embedding_params']:,} of "
        f"{next(iter(runs.values()))['all_params']:,} (the embedding's optimizer update is work the metric does not count)",
        "xlexp: "
        + ", ".join(
            f"{p} {'MET' if ok else 'MISSED by ' + format(100 * (TARGET - runs[p]['model_flops'] / peak[p]), '.1f') + ' points of peak'}"
            for p, ok in verdicts.items()
        ),
        f"overrides: {' '.join(overrides) or '(none)'}",
    ]
    if busy:
        notes.append("machine was NOT idle at start: numbers not representative")
    for n in notes:
        print("note:", n)
    md += "\n" + "\n".join(f"- {n}" for n in notes) + "\n"
    bc.write_result(
        "train_efficiency",
        {
            "machine": machine,
            "args": vars(a),
            "overrides": overrides,
            "matmul": {"before": peaks_before, "after": peaks_after, "peak_flops": peak},
            "xlexp": runs,
            "plain": plain,
            "verdict": verdicts,
            "notes": notes,
        },
        md,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
