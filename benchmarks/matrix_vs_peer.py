"""Benchmark 13: one source row of a SIB-200 matrix, xlexp vs the HF ``Trainer`` peer, over several
seeds: accuracy parity with a 95% interval (issue #19.7) and time to the matrix row (issue #19.4).

For each seed, both sides train on the source's train split with the same hyperparameters (read
from xlexp's composed config for the task), the same arithmetic (``--precision``: bf16 autocast
on both, or fp32 on both) and the same checkpoint rule: the model after the last epoch (xlexp's
``selection=last``; the peer with ``--select last``: no per-epoch checkpoints). Then each side tests
every target. The per-seed difference of the mean accuracy over targets (xlexp − peer) gives the
paired mean difference and its 95% t-interval over seeds; per-target differences are reported too.

Why seeds and not test examples: two trainings with different seeds differ by more than test-set
noise (BENCHMARKS.md table 1: two seeds, −5.8 and +12.6 macro-F1 points on NusaX), so parity is
only testable with the seed variance in the interval.

Time: whole processes (imports, model load, tokenization, training, tests); xlexp runs with
``regime.dev_targets=none`` (source dev only, as the peer). ``--model-dir`` points both at one folder
(``--random-xlmr-base DIR`` writes an xlm-roberta-base-shaped folder with random weights and the
offline e5's tokenizer: for timing on a GPU, where the offline e5's weights are not needed).

    python benchmarks/matrix_vs_peer.py --seeds 1,2,3,4,5 --targets 20          # parity: 20 targets
    python benchmarks/matrix_vs_peer.py --seeds 1 --targets all --random-xlmr-base /tmp/xlmrb \\
        --xlexp-overrides "trainer.compile=step-graph"                          # GPU: time to the 205-target row
    python benchmarks/matrix_vs_peer.py --quick                                 # smoke (CPU)
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_common as bc  # noqa: E402

# 20 SIB-200 targets across families and scripts (the parity setting of issue #19.7)
TARGETS_20 = [
    "fra_Latn",
    "deu_Latn",
    "spa_Latn",
    "rus_Cyrl",
    "arb_Arab",
    "hin_Deva",
    "ben_Beng",
    "zho_Hans",
    "jpn_Jpan",
    "kor_Hang",
    "tur_Latn",
    "swh_Latn",
    "yor_Latn",
    "hau_Latn",
    "ind_Latn",
    "vie_Latn",
    "tha_Thai",
    "amh_Ethi",
    "quy_Latn",
    "fin_Latn",
]


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--task", default="sib200")
    p.add_argument("--source", default="eng_Latn")
    p.add_argument("--targets", default="20", help="'20' (TARGETS_20), 'all', or comma-separated codes")
    p.add_argument("--seeds", default="1,2,3,4,5")
    p.add_argument("--epochs", type=int, help="default: the composed config's trainer.epochs")
    p.add_argument("--precision", default="bf16", choices=["bf16", "fp32"], help="both sides")
    p.add_argument("--model-dir", help="one HF folder for both sides (default: the offline e5 that xlexp builds)")
    p.add_argument(
        "--random-xlmr-base", metavar="DIR", help="write an xlm-roberta-base-shaped random folder here and use it"
    )
    p.add_argument("--max-train-examples", type=int)
    p.add_argument("--max-eval-examples", type=int)
    p.add_argument("--xlexp-overrides", action="append", default=[])
    p.add_argument("--peer-args", action="append", default=[])
    p.add_argument("--sides", default="xlexp,peer")
    p.add_argument("--label", default="", help="a name for this run in the result file")
    p.add_argument(
        "--merge",
        nargs="+",
        metavar="JSON",
        help="no runs: pool the per-seed rows of these result files (runs of one setting, e.g. one seed each "
        "run side by side) and print the summary",
    )
    p.add_argument(
        "--quick", action="store_true", help="smoke test: 1 epoch, 32 train / 32 eval examples, 2 targets, 2 seeds"
    )
    a = p.parse_args(argv)
    if a.quick:
        a.epochs, a.max_train_examples, a.max_eval_examples = a.epochs or 1, 32, 32
        a.seeds, a.targets = "1,2", "fra_Latn,deu_Latn"
    return a


def targets_of(a) -> list[str]:
    if a.targets == "20":
        return TARGETS_20
    if a.targets == "all":
        import yaml

        return list(yaml.safe_load((bc.REPO / "xlexp" / "conf" / "task" / f"{a.task}.yaml").read_text())["languages"])
    return [t.strip() for t in a.targets.split(",") if t.strip()]


def settings_of(a) -> dict:
    return bc.shared_hyperparameters([f"task={a.task}"], a.epochs)


def write_random_xlmr_base(folder: Path) -> Path:
    """xlm-roberta-base's shape (12 x 768) with random weights and the offline e5's tokenizer (XLM-R's
    SentencePiece vocabulary): what a timing needs, nothing downloaded."""
    import torch
    from transformers import AutoModel, AutoTokenizer, XLMRobertaConfig

    from xlexp.models.offline_e5 import DEFAULT_CACHE, build_offline_e5

    if (folder / "config.json").is_file():
        return folder
    tok = AutoTokenizer.from_pretrained(build_offline_e5(Path(DEFAULT_CACHE).expanduser()))
    torch.manual_seed(0)
    cfg = XLMRobertaConfig(
        vocab_size=len(tok),
        max_position_embeddings=514,
        type_vocab_size=1,
        layer_norm_eps=1e-5,
        pad_token_id=tok.pad_token_id,
        bos_token_id=0,
        eos_token_id=2,
    )
    AutoModel.from_config(cfg, add_pooling_layer=False).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def xlexp_command(a, s: dict, seed: int, targets: list[str], model_dir: str | None, hydra_dir: Path) -> list[str]:
    cmd = [
        *bc.xlexp_cmd(),
        "run",
        f"task={a.task}",
        "model=me5_small_offline",
        f"langpair.sources=[{a.source}]",
        f"langpair.targets=[{','.join(targets)}]",
        f"seed={seed}",
        f"trainer.epochs={s['epochs']}",
        f"trainer.precision={a.precision}",
        "regime.dev_targets=none",
        "trainer.progress=false",
        f"name=bench_matrix_s{seed}",
        f"hydra.run.dir={hydra_dir}",
    ]
    if model_dir:
        cmd += ["model.source=local", f"model.path={model_dir}"]
    if a.max_train_examples:
        cmd.append(f"data.max_train_examples={a.max_train_examples}")
    if a.max_eval_examples:
        cmd.append(f"data.max_eval_examples={a.max_eval_examples}")
    for chunk in a.xlexp_overrides:
        cmd.extend(shlex.split(chunk))
    return cmd


def peer_command(a, s: dict, seed: int, targets: list[str], model_dir: str | None, json_out: Path) -> list[str]:
    cmd = [
        sys.executable,
        str(bc.BENCH_DIR / "hf_peer.py"),
        "--task",
        a.task,
        "--source",
        a.source,
        "--select",
        "last",
        "--targets",
        ",".join(targets),
        "--seed",
        str(seed),
        "--json",
        str(json_out),
    ]
    for k in (
        "epochs",
        "lr",
        "batch_size",
        "eval_batch_size",
        "max_length",
        "warmup_ratio",
        "weight_decay",
        "grad_clip",
    ):
        cmd += [f"--{k.replace('_', '-')}", str(s[k])]
    if a.precision == "bf16":
        cmd.append("--bf16")
    if model_dir:
        cmd += ["--model-dir", model_dir]
    return cmd + bc.peer_sample_args(a)


def xlexp_scores(results_dir: Path) -> dict[str, dict[str, float]]:
    return bc.xlexp_test_scores(results_dir, "last")


_STAMP = r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})\]"
# xlexp's stages, read off its log's time stamps: (stage, the log line that ends it)
_XLEXP_STAGES = (
    ("imports, config, plan", "plan: "),
    ("read + tokenize + model load", "training source model"),
    ("train (incl. source dev evals)", "best source dev"),
    ("test all targets + selection", " done in "),
    ("write records, print matrix", "records: "),
)


def xlexp_stages(log_file: Path, wall_s: float) -> dict[str, float]:
    """Seconds per stage of one xlexp run, from the time stamps of its log lines; the first stage also
    holds interpreter start-up (the wall time minus the logged span)."""
    import re
    from datetime import datetime as dt

    stamps: dict[str, float] = {}
    first = None
    for line in log_file.read_text(errors="replace").splitlines():
        m = re.match(_STAMP, line)
        if not m:
            continue
        t = dt.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
        first = t if first is None else first
        for stage, marker in _XLEXP_STAGES:
            if marker in line and stage not in stamps:
                stamps[stage] = t
    if first is None or len(stamps) < len(_XLEXP_STAGES):
        return {}
    out, prev = {}, None
    for stage, _ in _XLEXP_STAGES:
        out[stage] = stamps[stage] - prev if prev is not None else 0.0
        prev = stamps[stage]
    out[_XLEXP_STAGES[0][0]] = wall_s - (prev - first)  # start-up + everything before the first logged stage
    return out


def interval(diffs: list[float]) -> tuple[float, float, float]:
    """Mean and 95% t-interval of paired differences (nan half-width with one seed)."""
    from scipy import stats

    d = np.asarray(diffs, dtype=float)
    if len(d) < 2:
        return float(d.mean()), float("nan"), float("nan")
    half = float(stats.t.ppf(0.975, len(d) - 1) * d.std(ddof=1) / np.sqrt(len(d)))
    return float(d.mean()), float(d.mean() - half), float(d.mean() + half)


def run_seeds(a, s: dict, targets: list[str], seeds: list[int], sides: list[str], model_dir: str | None) -> list[dict]:
    """Both sides once per seed (who runs first alternates); per-target scores and wall times."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    scratch = Path(tempfile.mkdtemp(prefix=f"matrix-{stamp}-"))
    env = {"XLEXP_DATA_DIR": str(bc.data_dir())}
    per_seed = []
    for i, seed in enumerate(seeds):
        row = {"seed": seed}
        order = sides if i % 2 == 0 else sides[::-1]  # alternate who runs first
        for side in order:
            run_dir = scratch / f"{side}-s{seed}"
            if side == "xlexp":
                xenv = {**env, "XLEXP_RESULTS_DIR": str(run_dir / "results")}
                row["xlexp_wall_s"] = bc.run_timed(
                    xlexp_command(a, s, seed, targets, model_dir, run_dir / "hydra"), run_dir / "xlexp.log", xenv
                )
                row["xlexp"] = xlexp_scores(run_dir / "results")
                row["xlexp_stages"] = xlexp_stages(run_dir / "xlexp.log", row["xlexp_wall_s"])
            else:
                out = run_dir / "peer.json"
                row["peer_wall_s"] = bc.run_timed(
                    peer_command(a, s, seed, targets, model_dir, out), run_dir / "peer.log", env
                )
                peer = json.loads(out.read_text())
                row["peer"] = peer["per_target"]
                row["peer_phases"] = peer.get("phases")
        for side in sides:
            row[f"{side}_mean_acc"] = float(np.mean([row[side][t]["accuracy"] for t in targets]))
            row[f"{side}_mean_f1"] = float(np.mean([row[side][t]["macro_f1"] for t in targets]))
        print(
            f"seed {seed}: "
            + ", ".join(
                f"{k} {v:.4f}" if isinstance(v, float) else ""
                for k, v in row.items()
                if k.endswith(("_acc", "_f1", "_wall_s"))
            ),
            flush=True,
        )
        per_seed.append(row)

    return per_seed


def main(argv=None) -> int:
    a = parse_args(argv)
    bc.warn_if_busy()
    machine = bc.machine_info()
    s = settings_of(a)
    targets = targets_of(a)
    seeds = [int(x) for x in a.seeds.split(",")]
    sides = [x.strip() for x in a.sides.split(",")]
    if a.merge:
        sides = [
            x
            for x in ("xlexp", "peer")
            if all(x in r for p in a.merge for r in json.loads(Path(p).read_text())["per_seed"])
        ]
    model_dir = (
        str(write_random_xlmr_base(Path(a.random_xlmr_base))) if a.random_xlmr_base and not a.merge else a.model_dir
    )
    a.model_dir = model_dir
    if a.merge:
        payloads = [json.loads(Path(f).read_text()) for f in a.merge]
        per_seed = sorted((r for p in payloads for r in p["per_seed"]), key=lambda r: r["seed"])
        s, targets, model_dir = payloads[0]["settings"], payloads[0]["targets"], payloads[0]["args"].get("model_dir")
        seeds = [r["seed"] for r in per_seed]
    else:
        per_seed = run_seeds(a, s, targets, seeds, sides, model_dir)
    lines = [
        f"task {a.task}, {a.source} -> {len(targets)} targets, {s['epochs']} epochs, {a.precision} on both sides, "
        f"selection=last, seeds {seeds}, model {model_dir or 'offline e5'}",
        f"machine: {machine.get('cuda') or machine.get('cpu', 'cpu')}",
    ]
    summary: dict = {"per_seed": per_seed, "settings": s, "targets": targets, "args": vars(a), "machine": machine}
    rows = [
        [
            r["seed"],
            r.get("xlexp_mean_acc"),
            r.get("peer_mean_acc"),
            r.get("xlexp_mean_f1"),
            r.get("peer_mean_f1"),
            r.get("xlexp_wall_s"),
            r.get("peer_wall_s"),
        ]
        for r in per_seed
    ]
    md = bc.print_table(
        "Per seed: mean over targets (test, selection=last) and wall time",
        ["seed", "xlexp acc", "peer acc", "xlexp macro-F1", "peer macro-F1", "xlexp wall (s)", "peer wall (s)"],
        rows,
    )
    if sides == ["xlexp", "peer"] or sorted(sides) == ["peer", "xlexp"]:
        for metric, key in (("accuracy", "acc"), ("macro-F1", "f1")):
            m, lo, hi = interval([100 * (r[f"xlexp_mean_{key}"] - r[f"peer_mean_{key}"]) for r in per_seed])
            summary[f"diff_{key}_points"] = {"mean": m, "lo95": lo, "hi95": hi}
            lines.append(
                f"xlexp − peer mean {metric}: {m:+.2f} points, 95% interval [{lo:+.2f}, {hi:+.2f}] over {len(seeds)} seeds"
            )
        walls = [(r["xlexp_wall_s"], r["peer_wall_s"]) for r in per_seed]
        ratio = statistics.median(x / p for x, p in walls)
        summary["wall_ratio_median"] = ratio
        lines.append(
            f"wall time xlexp / peer: median {ratio:.2f} (xlexp {statistics.median(w[0] for w in walls):.1f} s, "
            f"peer {statistics.median(w[1] for w in walls):.1f} s)"
        )
        tgt_rows = []
        for t in targets:
            d = [100 * (r["xlexp"][t]["accuracy"] - r["peer"][t]["accuracy"]) for r in per_seed]
            m, lo, hi = interval(d)
            tgt_rows.append(
                [
                    t,
                    float(np.mean([r["xlexp"][t]["accuracy"] for r in per_seed])),
                    float(np.mean([r["peer"][t]["accuracy"] for r in per_seed])),
                    m,
                    lo,
                    hi,
                ]
            )
        md += "\n" + bc.print_table(
            "Per target: mean accuracy over seeds, xlexp − peer (points, 95% interval)",
            ["target", "xlexp", "peer", "Δ", "lo", "hi"],
            tgt_rows,
        )
    stage_rows = []
    xs = [r["xlexp_stages"] for r in per_seed if r.get("xlexp_stages")]
    ps = [r["peer_phases"] for r in per_seed if r.get("peer_phases")]
    if xs:
        for stage, _ in _XLEXP_STAGES:
            stage_rows.append([f"xlexp: {stage}", statistics.median(x[stage] for x in xs)])
    if ps:
        for k in ps[0]:
            stage_rows.append([f"peer: {k}", statistics.median(p.get(k, float("nan")) for p in ps)])
    if stage_rows:
        md += "\n" + bc.print_table(
            "Where the time goes (median over seeds, seconds; xlexp from its log's time stamps)",
            ["stage", "seconds"],
            stage_rows,
        )
    for line in lines:
        print("note:", line)
    md += "\n" + "\n".join(f"- {line}" for line in lines) + "\n"
    bc.write_result(f"matrix_vs_peer{'-' + a.label if a.label else ''}", summary, md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
