"""Sources trained together (issue #32): time to a matrix with ``trainer.sources_together=N`` against the
same matrix trained one source at a time (N=1), and the stacked step's MFU.

Matrix arms (``--together 1,2,4``): one ``xlexp run`` process per arm on the same S sources x T targets
(same seed, settings and data; a fresh results folder each, a token cache warmed before the first
timed run), wall time of the whole process. The arms are **alternated** over ``--reps`` rounds (one
round ascending N, the next descending), so a machine whose load changes over the measurement (a
shared one) loads every arm alike; the ratio together / one-at-a-time is taken per round and its
median reported. ``--peer-sources K`` adds the HF ``Trainer`` peer (``benchmarks/hf_peer.py``, same
hyperparameters and precision, model after the last epoch): K sources timed, the S-source time
scaled by S/K (the peer trains sources independently, one process each).

MFU arms (``--mfu 1,4,8,20``): N synthetic classifiers of the model's shape (``--mfu-shape
xlmr-base``: 12 x 768, the embedding cut to ``--mfu-vocab`` rows as ``model.trim_vocab`` leaves a
task; ``tiny`` for a CPU smoke), full-length batches of ``--mfu-batch`` x 128 per model, trained by
the stacked engine (:func:`xlexp.engine.stacked.train_together`), against xlexp's one-model eager
loop (:func:`xlexp.engine.loop.train`) on the same shape. MFU = 6 x non-embedding parameters x tokens
of all N models / s over the bf16 (GPU) or fp32 (CPU) matmul peak measured in the same process.

    python benchmarks/together.py --model tiny_random --sources 4 --targets 20 --together 1,2,4 --reps 3   # CPU
    python benchmarks/together.py --sources 4 --targets 20 --max-train-examples 200 --max-eval-examples 50 \\
        --epochs 1 --together 1,4 --reps 2                                                               # CPU, e5
    python benchmarks/together.py --mfu 1,4,8,20 --mfu-shape xlmr-base --no-matrix                     # GPU
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_common as bc  # noqa: E402

# 20 SIB-200 sources across families and scripts (issue #18's matrix), the first S are used
SOURCES = [
    "eng_Latn",
    "fra_Latn",
    "arb_Arab",
    "zho_Hans",
    "hin_Deva",
    "swh_Latn",
    "rus_Cyrl",
    "tur_Latn",
    "jpn_Jpan",
    "est_Latn",
    "yor_Latn",
    "ind_Latn",
    "amh_Ethi",
    "spa_Latn",
    "tam_Taml",
    "kor_Hang",
    "hau_Latn",
    "vie_Latn",
    "ell_Grek",
    "fin_Latn",
]


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--task", default="sib200")
    p.add_argument("--sources", default="4", help="a count (the first S of SOURCES) or comma-separated codes")
    p.add_argument("--targets", default="20", help="'20' (matrix_vs_peer.TARGETS_20), 'all', or comma-separated codes")
    p.add_argument("--together", default="1,2,4", help="trainer.sources_together values (1 = one at a time)")
    p.add_argument("--reps", type=int, default=2, help="alternated rounds over the arms")
    p.add_argument("--model", default="me5_small_offline", help="xlexp model config (tiny_random, me5_small_offline)")
    p.add_argument("--model-dir", help="a local HF folder for the model (model.source=local)")
    p.add_argument(
        "--random-xlmr-base", metavar="DIR", help="write an xlm-roberta-base-shaped random folder here and use it"
    )
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--batch-size", type=int, help="data.batch_size on both sides (default: the task's config)")
    p.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    p.add_argument("--max-train-examples", type=int)
    p.add_argument("--max-eval-examples", type=int)
    p.add_argument("--threads", type=int, help="trainer.num_threads for every arm (CPU)")
    p.add_argument("--xlexp-overrides", action="append", default=[])
    p.add_argument("--peer-sources", type=int, default=0, help="time the HF peer on this many sources (0: no peer)")
    p.add_argument("--peer-args", action="append", default=[])
    p.add_argument("--no-matrix", action="store_true", help="only the MFU arms")
    p.add_argument("--mfu", default="", help="stack sizes for the MFU arms, e.g. 1,4,8,20 (empty: none)")
    p.add_argument("--mfu-shape", default="xlmr-base", choices=["xlmr-base", "tiny"])
    p.add_argument("--mfu-vocab", type=int, default=16000)
    p.add_argument("--mfu-batch", type=int, default=32)
    p.add_argument("--mfu-steps", type=int, default=20)
    p.add_argument("--label", default="")
    return p.parse_args(argv)


def _sources(a) -> list[str]:
    return SOURCES[: int(a.sources)] if a.sources.isdigit() else a.sources.split(",")


def _targets(a) -> list[str]:
    import matrix_vs_peer as mvp

    if a.targets == "20":
        return list(mvp.TARGETS_20)
    if a.targets == "all":
        return ["all"]
    return a.targets.split(",")


def xlexp_command(
    a, n: int, sources: list[str], targets: list[str], results: Path, hydra_dir: Path, model_dir: str | None, name: str
) -> list[str]:
    tgt = "all" if targets == ["all"] else f"[{','.join(targets)}]"
    cmd = [
        *bc.xlexp_cmd(),
        "run",
        f"task={a.task}",
        f"model={a.model}",
        f"langpair.sources=[{','.join(sources)}]",
        f"langpair.targets={tgt}",
        f"trainer.epochs={a.epochs}",
        f"trainer.precision={a.precision}",
        "regime.dev_targets=none",
        "trainer.progress=false",
        f"trainer.sources_together={n}",
        f"name={name}",
        f"paths.results_dir={results}",
        f"hydra.run.dir={hydra_dir}",
    ]
    if model_dir:
        cmd += ["model.source=local", f"model.path={model_dir}"]
    if a.max_train_examples:
        cmd.append(f"data.max_train_examples={a.max_train_examples}")
    if a.max_eval_examples:
        cmd.append(f"data.max_eval_examples={a.max_eval_examples}")
    if a.threads:
        cmd.append(f"trainer.num_threads={a.threads}")
    if a.batch_size:
        cmd.append(f"data.batch_size={a.batch_size}")
    for chunk in a.xlexp_overrides:
        cmd.extend(chunk.split())
    return cmd


def _child_cpu() -> float:
    """User + system CPU seconds of the finished child processes so far (on a shared machine the wall
    time includes waiting for a core; the CPU time is the work the arm did)."""
    import resource

    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def matrix_arms(a, work: Path) -> tuple[list[list], dict]:
    import matrix_vs_peer as mvp

    sources, targets = _sources(a), _targets(a)
    arms = [int(x) for x in a.together.split(",")]
    model_dir = a.model_dir or (
        str(mvp.write_random_xlmr_base(Path(a.random_xlmr_base))) if a.random_xlmr_base else None
    )
    # warm the token cache (every split the plan reads) and the model build: one tiny untimed run
    warm = xlexp_command(a, max(arms), sources, targets, work / "warm", work / "hydra-warm", model_dir, "together_warm")
    bc.run_timed(
        [*warm, "data.max_train_examples=8", "trainer.epochs=1", "data.max_eval_examples=8"], work / "warm.log"
    )
    times: dict[int, list[float]] = {n: [] for n in arms}
    ratios: dict[int, list[float]] = {n: [] for n in arms}
    cpu: dict[int, list[float]] = {n: [] for n in arms}  # the process's user + system CPU time
    cpu_ratios: dict[int, list[float]] = {n: [] for n in arms}
    for rep in range(a.reps):
        order = arms if rep % 2 == 0 else arms[::-1]
        for n in order:
            tag = f"n{n}-r{rep}"
            cmd = xlexp_command(
                a, n, sources, targets, work / f"results-{tag}", work / f"hydra-{tag}", model_dir, f"together_{tag}"
            )
            before = _child_cpu()
            times[n].append(bc.run_timed(cmd, work / f"{tag}.log"))
            cpu[n].append(_child_cpu() - before)
            print(f"  round {rep}, sources_together={n}: {times[n][-1]:.1f} s wall, {cpu[n][-1]:.1f} s CPU", flush=True)
        for n in arms:
            ratios[n].append(times[n][rep] / times[arms[0]][rep])
            cpu_ratios[n].append(cpu[n][rep] / cpu[arms[0]][rep])
    rows = [
        [
            n,
            len(sources),
            len(targets) if targets != ["all"] else "all",
            *[round(t, 1) for t in times[n]],
            round(statistics.median(times[n]), 1),
            round(statistics.median(ratios[n]), 3),
            round(statistics.median(cpu[n]), 1),
            round(statistics.median(cpu_ratios[n]), 3),
        ]
        for n in arms
    ]
    payload = {
        "sources": sources,
        "targets": targets,
        "times_s": times,
        "ratio_vs_first": ratios,
        "cpu_s": cpu,
        "cpu_ratio_vs_first": cpu_ratios,
    }
    if a.peer_sources:
        s = mvp.settings_of(argparse.Namespace(task=a.task, epochs=a.epochs))
        if a.batch_size:
            s["batch_size"] = a.batch_size
        peer_a = argparse.Namespace(**{**vars(a), "select": "last"})
        tgts = targets if targets != ["all"] else ["all"]
        peer_times = []
        for src in sources[: a.peer_sources]:
            peer_a.source = src
            cmd = mvp.peer_command(peer_a, s, 42, tgts, model_dir, work / f"peer-{src}.json")
            peer_times.append(bc.run_timed(cmd, work / f"peer-{src}.log"))
        scaled = sum(peer_times) * len(sources) / len(peer_times)
        payload["peer_s"] = {"measured": peer_times, "scaled_to_all_sources": scaled}
        for row, n in zip(rows, arms):
            row.append(round(statistics.median(times[n]) / scaled, 3))
    return rows, payload


# -- MFU of the stacked step ------------------------------------------------------------------------
def _classifier(shape: str, vocab: int):
    from transformers import BertConfig, BertModel, XLMRobertaConfig, XLMRobertaModel

    from xlexp.models.encoders import SequenceClassifier

    if shape == "tiny":
        enc = BertModel(
            BertConfig(
                vocab_size=vocab,
                hidden_size=64,
                num_hidden_layers=2,
                num_attention_heads=2,
                intermediate_size=128,
                pad_token_id=0,
            ),
            add_pooling_layer=False,
        )
    else:
        enc = XLMRobertaModel(
            XLMRobertaConfig(
                vocab_size=vocab, max_position_embeddings=514, type_vocab_size=1, layer_norm_eps=1e-5, pad_token_id=1
            ),
            add_pooling_layer=False,
        )
    return SequenceClassifier(enc, 7, "mean", 0.1)


def mfu_arms(a) -> tuple[list[list], dict]:
    import numpy as np
    import torch

    from xlexp.config.schema import OptimizerSettings
    from xlexp.data.tokenized import TokenizedSplit
    from xlexp.engine import stacked, stacked_models
    from xlexp.engine.loop import TrainSettings, train

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    precision = "bf16" if device.type == "cuda" else "fp32"
    peak = bc.matmul_flops(precision, n=8192 if device.type == "cuda" else 1024, device=device.type)["best_flops"]
    opt = OptimizerSettings(lr=1e-4, weight_decay=0.01, warmup_ratio=0.1, grad_clip=1.0)
    vocab, batch, length = a.mfu_vocab, a.mfu_batch, 128
    rng = np.random.default_rng(0)

    def split(steps: int) -> TokenizedSplit:
        n = steps * batch
        return TokenizedSplit([rng.integers(5, vocab, length) for _ in range(n)], rng.integers(0, 7, n))

    def settings(seed: int) -> TrainSettings:
        return TrainSettings(
            epochs=1,
            batch_size=batch,
            eval_batch_size=64,
            group_by_length=False,
            eval_every=None,
            precision=precision,
            seed=seed,
        )

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    rows, payload = [], {"device": str(device), "peak_flops": peak, "precision": precision}
    probe = _classifier(a.mfu_shape, vocab)
    nonemb = bc.non_embedding_params(probe)
    del probe
    # the one-model eager loop, for reference
    with device:
        model = _classifier(a.mfu_shape, vocab)
    train(model, split(3), opt, settings(0), 1, device)
    sync()
    t0 = time.perf_counter()
    train(model, split(a.mfu_steps), opt, settings(0), 1, device)
    sync()
    step = (time.perf_counter() - t0) / a.mfu_steps
    mfu = 6 * nonemb * batch * length / step / peak
    rows.append(["loop.train (one model)", 1, round(step * 1e3, 1), round(1e3 * step, 1), f"{100 * mfu:.1f}%"])
    del model
    for n in [int(x) for x in a.mfu.split(",") if x]:
        try:
            with device:  # built on the device: 20 random xlm-roberta-base inits on the CPU take a minute
                models = [_classifier(a.mfu_shape, vocab) for _ in range(n)]
            stack = stacked_models.StackedModels(models)
            sizes = stacked.model_sizes(models[0])
            del models
            gens = [stacked.generator_after_seeding(device) for _ in range(n)]
            for steps in (3, a.mfu_steps):
                members = [stacked.Member(f"m{i}", split(steps), settings(i), gens[i]) for i in range(n)]
                sync()
                t0 = time.perf_counter()
                stacked.train_together(stack, members, opt, 1, device, None, sizes)
                sync()
                elapsed = time.perf_counter() - t0
            step = elapsed / a.mfu_steps
            mfu = 6 * nonemb * n * batch * length / step / peak
            mem = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else float("nan")
            rows.append([f"stacked, N={n}", n, round(step * 1e3, 1), round(step * 1e3 / n, 1), f"{100 * mfu:.1f}%"])
            payload[f"n{n}"] = {"step_s": step, "mfu": mfu, "peak_mem_gib": mem}
            del stack
        except torch.cuda.OutOfMemoryError as e:  # pragma: no cover - GPU only
            rows.append([f"stacked, N={n}", n, "OOM", "", str(e).splitlines()[0][:60]])
            break
        finally:
            if device.type == "cuda":
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats()
    payload["non_embedding_params"] = nonemb
    return rows, payload


def main(argv=None) -> int:
    a = parse_args(argv)
    busy = bc.warn_if_busy()
    md, payload = "", {"machine": bc.machine_info(), "args": vars(a)}
    if not a.no_matrix:
        with tempfile.TemporaryDirectory(prefix="xlexp-together-") as tmp:
            rows, matrix = matrix_arms(a, Path(tmp))
        cols = [
            "sources_together",
            "sources",
            "targets",
            *[f"round {r} (s)" for r in range(a.reps)],
            "median (s)",
            "median wall ratio vs first arm",
            "median CPU (s)",
            "median CPU ratio vs first arm",
        ] + (["vs peer (scaled)"] if a.peer_sources else [])
        md += bc.print_table(f"time to the {a.task} matrix, {a.model}, {a.epochs} epoch(s), {a.precision}", cols, rows)
        payload["matrix"] = matrix
    if a.mfu:
        rows, mfu = mfu_arms(a)
        md += bc.print_table(
            f"stacked training step, {a.mfu_shape} shape, batch {a.mfu_batch} x 128 per model",
            ["arm", "models", "step (ms)", "per model (ms)", "MFU"],
            rows,
        )
        payload["mfu"] = mfu
    md = bc.add_line(md, f"load average at start {payload['machine']['loadavg_at_start']}", busy)
    bc.write_result(f"together{('-' + a.label) if a.label else ''}", payload, md)
    print(json.dumps({k: v for k, v in payload.items() if k != "machine"}, default=str)[:2000])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
