"""Benchmark 4: tracking overhead: the same xlexp run with ``tracker=none`` and with ``tracker=wandb``
(offline: ``tracker.mode=offline``, ``WANDB_MODE=offline``, its own ``WANDB_DIR`` and results store).

Runs are whole ``xlexp run`` processes, A/B interleaved: with ``--repeats N`` the order is
none, wandb, wandb, none, none, wandb, ... (ABBA), and the medians are compared. Every run gets a
fresh results store; the token cache is shared and warmed by an untimed short first run, so
both sides read pre-tokenized splits. W&B's cost is mostly per unit (init, the final tables, heatmaps
and summary keys) plus a little per step, so the overhead in % depends on the run's length:
the default is the quickstart as shipped (one unit, 160 steps, 12 targets).
Target (issue #8): < 3%.

    python benchmarks/tracking_overhead.py                      # quickstart as shipped, 1 A/B pair
    python benchmarks/tracking_overhead.py --repeats 2          # ABBA
    python benchmarks/tracking_overhead.py --quick              # smoke: 1 epoch, 32 train, 2 targets
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_common as bc  # noqa: E402

TARGET = 0.03
QUICK = ["trainer.epochs=1", "data.max_train_examples=32", "data.max_eval_examples=64", "langpair.targets=[eng,ind]"]


def merge(*groups: list[str]) -> list[str]:
    """Hydra overrides, later ones replacing earlier ones with the same key."""
    out: dict[str, str] = {}
    for group in groups:
        for o in group:
            out[o.split("=", 1)[0]] = o
    return list(out.values())


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--overrides",
        action="append",
        default=[],
        help="Hydra overrides of the run, both sides (space-separated; default: +experiment=quickstart)",
    )
    p.add_argument("--repeats", type=int, default=1, help="A/B pairs, ABBA order; medians compared")
    p.add_argument("--no-warmup-run", action="store_true", help="skip the untimed run that fills the token cache")
    p.add_argument("--quick", action="store_true", help="smoke test: " + " ".join(QUICK))
    p.add_argument("--keep", action="store_true", help="keep the scratch folder (logs, W&B offline runs)")
    p.add_argument("--echo", action="store_true")
    return p.parse_args(argv)


def main(argv=None) -> int:
    a = parse_args(argv)
    busy = bc.warn_if_busy()
    machine = bc.machine_info()
    base = ["+experiment=quickstart", "name=bench_tracking", "trainer.progress=false"]
    base = merge(base, [o for chunk in a.overrides for o in shlex.split(chunk)], QUICK if a.quick else [])
    sides = {"none": ["tracker=none"], "wandb": ["tracker=wandb", "tracker.mode=offline"]}
    scratch = Path(tempfile.mkdtemp(prefix="tracking-", dir=bc.RESULTS_DIR))
    env = {"XLEXP_DATA_DIR": str(bc.data_dir()), "WANDB_MODE": "offline", "WANDB_SILENT": "true"}
    walls: dict[str, list[float]] = {"none": [], "wandb": []}
    commands = {}
    try:
        if not a.no_warmup_run:
            print("untimed short warm-up run (fills the token cache and the page cache)", flush=True)
            d = scratch / "warmup"
            short = merge(
                base, sides["none"], ["trainer.epochs=1", "data.max_train_examples=16", "data.max_eval_examples=16"]
            )
            bc.run_timed(
                [*bc.xlexp_cmd(), "run", *short, f"hydra.run.dir={d / 'hydra'}"],
                d / "xlexp.log",
                {**env, "XLEXP_RESULTS_DIR": str(d / "results")},
                a.echo,
            )
        order = []
        for rep in range(a.repeats):
            order += ["none", "wandb"] if rep % 2 == 0 else ["wandb", "none"]
        for i, side in enumerate(order):
            d = scratch / f"{i:02d}-{side}"
            cmd = [*bc.xlexp_cmd(), "run", *base, *sides[side], f"hydra.run.dir={d / 'hydra'}"]
            commands[side] = shlex.join(cmd)
            wall = bc.run_timed(
                cmd,
                d / "xlexp.log",
                {**env, "XLEXP_RESULTS_DIR": str(d / "results"), "WANDB_DIR": str(d / "wandb_dir")},
                a.echo,
            )
            walls[side].append(wall)
            if (
                side == "wandb"
                and not list((d / "results").rglob("offline-run-*"))
                and not list(d.rglob("offline-run-*"))
            ):
                print("WARNING: no W&B offline run folder was written: was W&B really on?", file=sys.stderr)
            print(f"  {side}: {wall:.1f}s", flush=True)
    finally:
        if not a.keep:
            shutil.rmtree(scratch, ignore_errors=True)
    m_none, m_wandb = statistics.median(walls["none"]), statistics.median(walls["wandb"])
    overhead = m_wandb / m_none - 1
    rows = [
        ["tracker=none", m_none, " ".join(f"{w:.1f}" for w in walls["none"]), ""],
        [
            "tracker=wandb (offline)",
            m_wandb,
            " ".join(f"{w:.1f}" for w in walls["wandb"]),
            f"{overhead:+.2%} ({m_wandb - m_none:+.1f}s)",
        ],
    ]
    md = bc.print_table(
        f"Tracking overhead ({a.repeats} A/B pair(s), ABBA order), run: {' '.join(base)}",
        ["tracker", "median wall (s)", "all runs (s)", "overhead"],
        rows,
    )
    verdict = overhead < TARGET
    line = f"target < {TARGET:.0%}: " + ("MET" if verdict else f"MISSED by {100 * (overhead - TARGET):.2f} points")
    md = bc.add_line(md, line, busy)
    bc.write_result(
        "tracking_overhead",
        {
            "machine": machine,
            "args": vars(a),
            "run_overrides": base,
            "commands": commands,
            "wall_s": walls,
            "overhead": overhead,
            "verdict": verdict,
        },
        md,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
