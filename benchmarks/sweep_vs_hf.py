"""Benchmark 5: sweep efficiency: ``xlexp sweep`` (with its pruner) vs
``Trainer.hyperparameter_search(backend="optuna")`` on the same space and number of trials.

Both sides: NusaX-senti English, offline multilingual-e5-small, the whole English train split
(500 examples), 2 epochs, dev macro-F1 on English dev after every epoch, the quickstart's other
settings (max length 128, warmup 10%, grad clip 1.0, seed 42), 6 trials, space
lr ~ log-uniform[5e-6, 1e-4], batch size in {8, 16, 32}, weight decay ~ uniform[0, 0.1],
TPE (seed 0, 3 random start-up trials) and a median pruner (2 start-up trials, no warm-up steps).
xlexp: ``benchmarks/sweeps/nusax_bench.yaml`` in a fresh SQLite storage, one worker. Peer:
``python benchmarks/hf_peer.py --hp-search N`` (``save_strategy=no``, no checkpoints).

Differences that stay (they are part of what is compared): xlexp reports the running objective to
the pruner at the n-th evaluation (epoch), the Trainer at the global step, so with different batch
sizes the Trainer's median pruner compares trials at different steps (or not at all); xlexp's
trial value is the dev score at the best epoch (``selection: source_dev``), the Trainer's is the last
evaluation's (its ``compute_objective``), so the table also shows the Trainer's best dev score at
any epoch. xlexp trials also test on English test and write records; the Trainer's do not.

    python benchmarks/sweep_vs_hf.py                       # 6 trials, 2 epochs, 500 train examples
    python benchmarks/sweep_vs_hf.py --trials 10
    python benchmarks/sweep_vs_hf.py --quick               # smoke: 2 trials, 1 epoch, 32 train/eval examples
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_common as bc  # noqa: E402
from e2e_vs_peer import shared_settings  # noqa: E402

SWEEP_FILE = bc.BENCH_DIR / "sweeps" / "nusax_bench.yaml"
STUDY = "bench_nusax"
NAMES = {
    "optimizer.lr": "lr",
    "learning_rate": "lr",
    "data.batch_size": "batch",
    "per_device_train_batch_size": "batch",
    "optimizer.weight_decay": "wd",
    "weight_decay": "wd",
}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--trials", type=int, help="trials per side (default: the sweep file's n_trials, 6)")
    p.add_argument("--epochs", type=int, help="default: the sweep file's (2)")
    p.add_argument("--max-train-examples", type=int, help="default: the sweep file's (500)")
    p.add_argument("--max-eval-examples", type=int, help="subsample English dev (and xlexp's English test)")
    p.add_argument("--order", choices=["xlexp-first", "peer-first"], default="xlexp-first")
    p.add_argument("--quick", action="store_true", help="smoke test: 2 trials, 1 epoch, 32 train and 32 eval examples")
    p.add_argument("--keep", action="store_true")
    p.add_argument("--echo", action="store_true")
    a = p.parse_args(argv)
    if a.quick:
        a.trials, a.epochs = a.trials or 2, a.epochs or 1
        a.max_train_examples, a.max_eval_examples = a.max_train_examples or 32, a.max_eval_examples or 32
    return a


def short_params(params: dict) -> str:
    out = []
    for k, v in params.items():
        name = NAMES.get(k, k)
        out.append(f"{name}={v:.3g}" if isinstance(v, float) else f"{name}={v}")
    return " ".join(out)


def xlexp_study(url: str) -> dict:
    import optuna

    study = optuna.load_study(study_name=STUDY, storage=url)
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
                "duration_s": t.duration.total_seconds() if t.duration else None,
            }
        )
    done = [t for t in trials if t["state"] == "COMPLETE"]
    best = max(done, key=lambda t: t["value"]) if done else None
    return {
        "states": {s: sum(t["state"] == s for t in trials) for s in ("COMPLETE", "PRUNED", "FAIL")},
        "best_value": best["value"] if best else None,
        "best_params": best["params"] if best else None,
        "trials": trials,
    }


def main(argv=None) -> int:
    a = parse_args(argv)
    busy = bc.warn_if_busy()
    machine = bc.machine_info()
    from xlexp.sweep.space import load_sweep

    spec = load_sweep(SWEEP_FILE)
    n_trials = a.trials or spec.n_trials
    base = dict(o.split("=", 1) for o in spec.base if "=" in o)
    epochs = a.epochs or int(base.get("trainer.epochs", 2))
    max_train = a.max_train_examples or int(base.get("data.max_train_examples", 500))
    s = shared_settings(epochs)

    scratch = Path(tempfile.mkdtemp(prefix="sweep-", dir=bc.RESULTS_DIR))
    env = {"XLEXP_DATA_DIR": str(bc.data_dir())}
    url = f"sqlite:///{(scratch / 'xlexp_sweep.db').resolve()}"
    overrides = [f"trainer.epochs={epochs}", f"data.max_train_examples={max_train}", "trainer.progress=false"]
    if a.max_eval_examples:
        overrides.append(f"data.max_eval_examples={a.max_eval_examples}")
    xl_cmd = [
        *bc.xlexp_cmd(),
        "sweep",
        str(SWEEP_FILE.relative_to(bc.REPO)),
        *overrides,
        "--storage",
        url,
        "--study",
        STUDY,
        "--n-trials",
        str(n_trials),
    ]
    peer_json = scratch / "peer.json"
    peer_cmd = [
        sys.executable,
        str(bc.BENCH_DIR / "hf_peer.py"),
        "--hp-search",
        str(n_trials),
        "--targets",
        "eng",
        "--epochs",
        str(epochs),
        "--max-train-examples",
        str(max_train),
        "--eval-batch-size",
        str(s["eval_batch_size"]),
        "--max-length",
        str(s["max_length"]),
        "--warmup-ratio",
        str(s["warmup_ratio"]),
        "--grad-clip",
        str(s["grad_clip"]),
        "--seed",
        str(s["seed"]),
        "--hp-seed",
        str(spec.sampler.get("seed", 0)),
        "--json",
        str(peer_json),
    ]
    if a.max_eval_examples:
        peer_cmd += ["--max-eval-examples", str(a.max_eval_examples)]
    walls = {}
    try:
        sides = ["xlexp", "peer"] if a.order == "xlexp-first" else ["peer", "xlexp"]
        for side in sides:
            if side == "xlexp":
                walls["xlexp"] = bc.run_timed(
                    xl_cmd, scratch / "xlexp_sweep.log", {**env, "XLEXP_RESULTS_DIR": str(scratch / "results")}, a.echo
                )
                xl = xlexp_study(url)
            else:
                walls["peer"] = bc.run_timed(peer_cmd, scratch / "peer.log", env, a.echo)
                peer = json.loads(peer_json.read_text())["search"]
            print(f"  {side}: {walls[side]:.1f}s", flush=True)
    finally:
        if not a.keep:
            shutil.rmtree(scratch, ignore_errors=True)

    def fmt_states(st: dict) -> str:
        return f"{st['COMPLETE']} / {st['PRUNED']} / {st['FAIL']}"

    rows = [
        [
            "xlexp sweep",
            walls["xlexp"],
            fmt_states(xl["states"]),
            xl["best_value"],
            xl["best_value"],
            short_params(xl["best_params"] or {}),
        ],
        [
            "Trainer.hyperparameter_search",
            walls["peer"],
            fmt_states(peer["states"]),
            peer["best_value"],
            peer["best_dev_any_epoch"],
            short_params(peer["best_params"] or {}),
        ],
    ]
    md = bc.print_table(
        f"Sweep: {n_trials} trials, {epochs} epoch(s), {max_train} train examples, NusaX English dev macro-F1",
        ["tool", "wall (s)", "complete / pruned / failed", "best objective", "best dev F1 at any epoch", "best params"],
        rows,
    )
    trial_rows = []
    for side, res in (("xlexp", xl), ("peer", peer)):
        for t in res["trials"]:
            inter = " ".join(f"{v:.3f}" for v in t["intermediate"].values())
            trial_rows.append(
                [side, t["number"], t["state"], t["value"], inter, short_params(t["params"]), t["duration_s"]]
            )
    md += "\n" + bc.print_table(
        "Trials", ["tool", "#", "state", "value", "dev F1 per evaluation", "params", "seconds"], trial_rows
    )
    ratio = walls["xlexp"] / walls["peer"]
    d_best = (xl["best_value"] or 0) - (peer["best_dev_any_epoch"] or 0)
    line = (
        f"wall-time ratio xlexp / Trainer = {ratio:.3f}; best dev macro-F1 xlexp − Trainer (best epoch) = "
        f"{100 * d_best:+.2f} points"
    )
    md = bc.add_line(md, line, busy)
    bc.write_result(
        "sweep_vs_hf",
        {
            "machine": machine,
            "args": vars(a),
            "n_trials": n_trials,
            "epochs": epochs,
            "max_train_examples": max_train,
            "xlexp_command": shlex.join(xl_cmd),
            "peer_command": shlex.join(peer_cmd),
            "wall_s": walls,
            "wall_ratio": ratio,
            "xlexp": xl,
            "peer": peer,
        },
        md,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
