"""Shared helpers for the benchmark scripts: machine facts, tables, timed subprocesses, result files.

Every benchmark prints its table(s) and the exact command that produced them, and writes
``benchmarks/results/<name>-<UTC time>.{json,md}`` (plus ``<name>-latest.{json,md}``). Timings are
never asserted anywhere: they are measurements for BENCHMARKS.md, taken on an idle machine.
"""

from __future__ import annotations

import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
BENCH_DIR = REPO / "benchmarks"
RESULTS_DIR = BENCH_DIR / "results"


# ---- the command and the machine ----------------------------------------------------------------


def this_command() -> str:
    """The command line that ran this script, relative to the repository root where possible."""
    script = Path(sys.argv[0]).resolve()
    try:
        script_txt = str(script.relative_to(REPO))
    except ValueError:
        script_txt = str(script)
    return shlex.join(["python", script_txt, *sys.argv[1:]])


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def cpu_flags() -> list[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                have = set(line.split(":", 1)[1].split())
                return sorted(f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile") if f in have)
    except OSError:
        pass
    return []


def git_state() -> str:
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        return f"{head}{'+dirty' if dirty else ''}" if head else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def machine_info() -> dict[str, Any]:
    import torch

    info: dict[str, Any] = {
        "cpu": cpu_model(),
        "cpu_flags": cpu_flags(),
        "logical_cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "python": platform.python_version(),
        "git": git_state(),
        "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
    }
    try:
        import transformers

        info["transformers"] = transformers.__version__
    except ImportError:
        pass
    return info


def warn_if_busy(threshold: float = 0.5) -> bool:
    """True (and a warning) when the 1-minute load average says other work is running."""
    load = os.getloadavg()[0]
    if load > threshold:
        print(
            f"WARNING: load average {load:.2f} > {threshold}: this machine is not idle, so timings are not "
            f"representative (fine for a smoke test; take real measurements on an idle machine)",
            file=sys.stderr,
        )
        return True
    return False


# ---- tables --------------------------------------------------------------------------------------


def add_line(md: str, line: str, busy: bool) -> str:
    """Print a result line (and the not-idle note when ``busy``) and append both to the markdown."""
    print(line)
    md += f"\n{line}\n"
    if busy:
        print("note: machine was NOT idle at start: numbers not representative")
        md += "\n- machine was NOT idle at start: numbers not representative\n"
    return md


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        if v != v:  # NaN
            return "nan"
        return f"{v:.4f}" if abs(v) < 10 else f"{v:.1f}"
    return str(v)


def markdown_table(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    lines += ["| " + " | ".join(_fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def print_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Print with rich (fallback: markdown) and return the markdown version."""
    md = markdown_table(columns, rows)
    try:
        from rich.console import Console
        from rich.markup import escape
        from rich.table import Table

        table = Table(title=escape(title))
        for c in columns:
            table.add_column(escape(str(c)))
        for row in rows:
            table.add_row(*(escape(_fmt(v)) for v in row))
        Console(width=160).print(table)
    except ImportError:
        print(f"\n{title}\n{md}\n")
    return f"**{title}**\n\n{md}\n"


# ---- result files --------------------------------------------------------------------------------


def write_result(name: str, payload: dict[str, Any], markdown: str) -> Path:
    """``benchmarks/results/<name>-<time>.json`` and ``.md`` (+ ``-latest`` copies); returns the JSON path."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    payload = {"benchmark": name, "timestamp": stamp, "command": this_command(), **payload}
    js = RESULTS_DIR / f"{name}-{stamp}.json"
    md = RESULTS_DIR / f"{name}-{stamp}.md"
    js.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    md.write_text(f"# {name} ({stamp})\n\nCommand:\n\n```bash\n{payload['command']}\n```\n\n{markdown}\n")
    shutil.copyfile(js, RESULTS_DIR / f"{name}-latest.json")
    shutil.copyfile(md, RESULTS_DIR / f"{name}-latest.md")
    print(f"\ncommand: {payload['command']}")
    print(f"results: {js.relative_to(REPO)} (+ .md, and {name}-latest.*)")
    return js


# ---- subprocesses ----------------------------------------------------------------------------------


def xlexp_cmd() -> list[str]:
    """The xlexp console script of this interpreter's environment (falls back to ``python -m xlexp.cli.main``)."""
    exe = Path(sys.executable).parent / "xlexp"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "xlexp.cli.main"]


def run_timed(cmd: Sequence[str], log_file: Path, env: dict[str, str] | None = None, echo: bool = False) -> float:
    """Run ``cmd`` from the repository root, output to ``log_file`` (and the terminal with ``echo``);
    returns the wall time in seconds; raises with the log's tail on failure."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    full_env = {**os.environ, **(env or {})}
    print(f"$ {shlex.join(cmd)}   (log: {log_file})", flush=True)
    t0 = time.perf_counter()
    with log_file.open("w") as log:
        if echo:
            proc = subprocess.Popen(
                cmd, cwd=REPO, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
            )
            assert proc.stdout is not None
            for line in proc.stdout:
                sys.stdout.write(line)
                log.write(line)
            code = proc.wait()
        else:
            code = subprocess.run(cmd, cwd=REPO, env=full_env, stdout=log, stderr=subprocess.STDOUT).returncode
    wall = time.perf_counter() - t0
    if code != 0:
        tail = "\n".join(log_file.read_text(errors="replace").splitlines()[-30:])
        raise RuntimeError(f"command failed with exit code {code}: {shlex.join(cmd)}\n--- log tail ---\n{tail}")
    return wall


def fresh_xlexp_cache(root: Path) -> Path:
    """An empty XLEXP_CACHE_DIR that shares only the built models of the real cache: nothing is
    tokenized yet (the peer tokenizes on every run too), and the one-time model build is not timed."""
    from xlexp.models.offline_e5 import DEFAULT_CACHE

    cache = root / "xlexp_cache"
    cache.mkdir(parents=True, exist_ok=True)
    real_models = Path(os.environ.get("XLEXP_CACHE_DIR", DEFAULT_CACHE)).expanduser() / "models"
    link = cache / "models"
    if real_models.is_dir() and not link.exists():
        link.symlink_to(real_models.resolve(), target_is_directory=True)
    return cache


def e5_model_dir() -> Path:
    """The offline multilingual-e5-small folder that ``xlexp build-model`` writes (built here if missing)."""
    from xlexp.models.offline_e5 import DEFAULT_CACHE, build_offline_e5

    cache = Path(os.environ.get("XLEXP_CACHE_DIR", DEFAULT_CACHE)).expanduser()
    return build_offline_e5(cache)


def data_dir() -> Path:
    env = os.environ.get("XLEXP_DATA_DIR")
    if env:
        return Path(env)
    shared = REPO.parent / "shared" / "data"
    return shared if shared.is_dir() else REPO / "data"


# ---- model FLOPs ---------------------------------------------------------------------------------


def non_embedding_params(model) -> int:
    """Parameters outside the embedding layers: the N of issue #8's 6 x N x tokens model FLOPs."""
    return sum(p.numel() for n, p in model.named_parameters() if ".embeddings." not in f".{n}")


# ---- matmul peak ---------------------------------------------------------------------------------


def matmul_flops(
    dtype_name: str, n: int = 2048, reps: int = 10, warmup: int = 3, device: str = "cpu"
) -> dict[str, float]:
    """Achieved FLOP/s of an n x n @ n x n matmul in ``dtype_name`` (fp32 | bf16) on ``device`` (CPU:
    torch's default thread count): best and median over ``reps`` timed runs after ``warmup``."""
    import statistics

    import torch

    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[dtype_name]
    g = torch.Generator().manual_seed(0)
    a = torch.randn(n, n, generator=g).to(device=device, dtype=dtype)
    b = torch.randn(n, n, generator=g).to(device=device, dtype=dtype)
    sync = torch.cuda.synchronize if str(device).startswith("cuda") else (lambda: None)
    for _ in range(warmup):
        torch.mm(a, b)
    sync()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        torch.mm(a, b)
        sync()
        times.append(time.perf_counter() - t0)
    flops = 2.0 * n**3
    return {
        "n": n,
        "reps": reps,
        "device": str(device),
        "best_flops": flops / min(times),
        "median_flops": flops / statistics.median(times),
    }


def model_of(cfg):
    """The composed config's model group as typed settings (what xlexp.models functions take)."""
    from omegaconf import OmegaConf

    from xlexp.config.schema import model_settings

    return model_settings(OmegaConf.to_container(cfg.model, resolve=True))


# ---- shared by the xlexp-vs-peer scripts ------------------------------------------------------------


def xlexp_test_scores(results_dir: Path, selection: str) -> dict[str, dict[str, float]]:
    """{target: {metric: value}} of an xlexp run's test records under one selection rule."""
    from xlexp import load_records

    df = load_records(results_dir)
    df = df[(df["split"] == "test") & (df["selection"] == selection)]
    if df.empty:
        raise RuntimeError(f"no selection={selection} test records under {results_dir}")
    out: dict[str, dict[str, float]] = {}
    for row in df.itertuples():
        out.setdefault(row.target, {})[row.metric] = float(row.value)
    return out


def peer_sample_args(a) -> list[str]:
    """The peer's subsampling flags (the same rows xlexp picks) and the user's extra peer flags."""
    import shlex

    out: list[str] = []
    if a.max_train_examples:
        out += ["--max-train-examples", str(a.max_train_examples)]
    if a.max_eval_examples:
        out += ["--max-eval-examples", str(a.max_eval_examples)]
    for chunk in a.peer_args:
        out.extend(shlex.split(chunk))
    return out


def shared_hyperparameters(overrides: list[str], epochs: int | None = None) -> dict:
    """The hyperparameters both sides of an xlexp-vs-peer comparison use, from xlexp's composed config."""
    from xlexp import compose

    cfg = compose(overrides)
    return {
        "epochs": int(epochs or cfg.trainer.epochs),
        "lr": float(cfg.optimizer.lr),
        "batch_size": int(cfg.data.batch_size),
        "eval_batch_size": int(cfg.data.eval_batch_size),
        "max_length": int(cfg.data.max_length),
        "warmup_ratio": float(cfg.optimizer.warmup_ratio),
        "weight_decay": float(cfg.optimizer.weight_decay),
        "grad_clip": float(cfg.optimizer.grad_clip or 0.0),
        "seed": int(cfg.seed),
        "optimizer": str(cfg.optimizer.name),
    }
