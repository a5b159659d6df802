"""``xlexp reproduce NAME``: run (or reuse) the experiments behind a published table and compare.

Each run of a reproduction (``xlexp.reproduce.spec``) is composed with Hydra like ``xlexp run``
would, under the experiment name ``reproduce-<name>-<variant>``, and goes through the normal
experiment runner; when the results store already holds a run of the same config (same config hash, under
any experiment name) covering the needed cells, its records are reused and nothing is trained.
The cells are read with ``xlexp.results.frames.config_cells``.

Printed (``output``): per variant the worst cells and a summary (mean of each side, mean Δ, mean
|Δ|, Spearman and Pearson over cells); written: ``<results>/reproduce/<name>/{cells.csv,table.md,
table.tex,delta_heatmap.png}``.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf

from xlexp.errors import XlexpError
from xlexp.reproduce.output import print_plan, print_result, write_outputs
from xlexp.reproduce.spec import (
    ARROW,
    REPRODUCTIONS_DIR,
    PlannedRun,
    Reproduction,
    Result,
    RunSpec,
    Variant,
    load_reference,
    load_reproduction,
)
from xlexp.results.frames import config_cells
from xlexp.results.query import experiments_by_recency, load
from xlexp.results.store import run_config_hash as record_hash

log = logging.getLogger(__name__)


# -- composing the runs -----------------------------------------------------------------------
def compose(overrides: list[str]) -> DictConfig:
    """The config ``xlexp run <overrides>`` would get."""
    from xlexp.config.compose import compose_config

    return compose_config(overrides, job_name="reproduce")


def run_config_hash(cfg: DictConfig, name: str | None = None) -> str:
    """The config hash every record of the run carries (``xlexp.results.store.run_config_hash``),
    optionally as if the run had been named ``name``."""
    resolved = OmegaConf.to_container(cfg, resolve=True)
    if name is not None:
        resolved["name"] = name
    return record_hash(resolved)


def _languages(cfg: DictConfig) -> tuple[tuple[str, ...], tuple[str, ...]]:
    from xlexp.experiment.plan import expand_languages
    from xlexp.tasks.spec import TaskSpec

    spec = TaskSpec.from_config(cfg.task)
    targets = expand_languages(cfg.langpair.targets, spec, "targets")
    if not spec.trains:  # retrieval: one row, the pivot language
        return (spec.pivot or "eng",), targets
    sources = targets if _in_language(cfg) else expand_languages(cfg.langpair.sources, spec, "sources")
    return sources, targets


def _in_language(cfg: DictConfig) -> bool:
    """Runs that only fill the diagonal (each target trained on itself)."""
    return cfg.regime.name == "full" or bool(cfg.regime.get("in_language", False))


def _subset_overrides(repro: Reproduction, run: RunSpec, cfg: DictConfig, subset: list[str]) -> list[str]:
    """--subset: keep only these languages (our codes, or the paper's through code_map)."""
    back = {v: k for k, v in repro.code_map.items()}
    wanted = {back.get(c, c) for c in subset}
    sources, targets = _languages(cfg)
    keep_t = [t for t in targets if t in wanted]
    if not keep_t:
        return []  # no target of this run is in the subset: the run is left out
    out = [f"langpair.targets=[{','.join(keep_t)}]"]
    if run.cells == "source_target" and not _in_language(cfg):
        keep_s = [s for s in sources if s in wanted]
        if not keep_s:
            return []  # this run's source is not in the subset: the run is left out
        out.append(f"langpair.sources=[{','.join(keep_s)}]")
    return out


def plan_runs(
    repro: Reproduction,
    variants: list[Variant],
    subset: list[str] | None,
    extra: list[str],
    results_dir: str,
    store: pd.DataFrame,
) -> list[PlannedRun]:
    planned = []
    for variant in variants:
        for run in variant.runs:
            overrides = [*run.overrides, *extra]
            cfg = compose([*overrides, f"paths.results_dir={results_dir}"])
            if subset:
                narrowed = _subset_overrides(repro, run, cfg, subset)
                if not narrowed:
                    continue
                overrides = [*run.overrides, *narrowed, *extra]
                cfg = compose([*overrides, f"paths.results_dir={results_dir}"])
            sources, targets = _languages(cfg)
            experiment = f"reproduce-{repro.name}-{variant.name}"
            if len(variant.runs) > 1:  # one experiment per run: named by its cell or its source(s)
                experiment += f"-{run.cell or '+'.join(sources)}"
            overrides.append(f"name={experiment}")
            cfg.name = experiment
            metric = run.metric or repro.metric
            p = PlannedRun(variant, run, experiment, overrides, cfg, sources, targets, metric)
            p.reuse = find_reusable(store, p)
            planned.append(p)
    if not planned:
        raise XlexpError(f"--subset {','.join(subset or [])} leaves no run of '{repro.name}'")
    return planned


def _covers(cells: pd.DataFrame, p: PlannedRun) -> bool:
    have = set(zip(cells["source"], cells["target"]))
    if _in_language(p.cfg):
        return all((t, t) in have for t in p.targets)
    rows = {"+".join(p.sources)} if p.cfg.regime.name == "multi_source" else set(p.sources)
    return all((s, t) in have for s in rows for t in p.targets)


def find_reusable(store: pd.DataFrame, p: PlannedRun) -> tuple[str, str] | None:
    """An earlier run of exactly this config (any experiment name) whose records cover every cell."""
    if store.empty:
        return None
    c = p.cfg
    same = store[
        (store["model"] == c.model.name)
        & (store["task"] == c.task.name)
        & (store["regime"] == c.regime.name)
        & (store["split"] == "test")
    ]
    for name in dict.fromkeys([p.experiment, *experiments_by_recency(same)]):
        chash = run_config_hash(c, name)
        if _covers(config_cells(same, name, chash, p.metric, c.regime.selection), p):
            return name, chash
    return None


# -- comparing --------------------------------------------------------------------------------
def cell_frame(repro: Reproduction, p: PlannedRun, ours: pd.DataFrame, ref: pd.DataFrame) -> pd.DataFrame:
    """Our cells of one run next to the paper's: variant, cell, ours, paper, delta (paper units)."""
    m = repro.code_map
    if p.spec.cells == "mean":
        ids, values = [p.spec.cell], [float(ours["value"].mean()) if len(ours) else np.nan]
    elif p.spec.cells == "source_target":
        ids = [f"{m.get(s, s)}{ARROW}{m.get(t, t)}" for s, t in zip(ours["source"], ours["target"])]
        values = ours["value"].tolist()
    else:
        ids, values = [m.get(t, t) for t in ours["target"]], ours["value"].tolist()
    frame = pd.DataFrame(
        {"variant": p.variant.name, "cell": ids, "ours": np.asarray(values, dtype=float) * repro.scale}
    )
    frame["paper"] = frame["cell"].map(ref[p.variant.column].astype(float))
    frame["delta"] = frame["ours"] - frame["paper"]
    if repro.sd_column:
        frame["paper_sd"] = frame["cell"].map(ref[repro.sd_column].astype(float))
    if repro.group_column:
        frame["group"] = frame["cell"].map(ref[repro.group_column].astype(str))
    return frame


def _corr(fn, a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    if len(a) < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return math.nan, math.nan
    r = fn(a, b)
    return float(r.statistic), float(r.pvalue)


def summarize(cells: pd.DataFrame, within: float | None = None) -> dict[str, float]:
    """Statistics over compared cells (both sides present): means, mean Δ, mean |Δ|, Spearman, Pearson;
    with ``within`` and a ``paper_sd`` column, the share of cells with |Δ| <= within × the paper's sd."""
    from scipy.stats import pearsonr, spearmanr

    both = cells.dropna(subset=["ours", "paper"])
    a, b = both["ours"].to_numpy(dtype=float), both["paper"].to_numpy(dtype=float)
    rho, rho_p = _corr(spearmanr, a, b)
    r, r_p = _corr(pearsonr, a, b)
    n = len(both)
    extra = {}
    if "paper_sd" in both and within is not None:  # Δ inside the reference's own draw-to-draw spread
        ok = both["paper_sd"].notna()
        extra["within_sd_share"] = (
            float((np.abs(a - b)[ok.to_numpy()] <= within * both.loc[ok, "paper_sd"].to_numpy()).mean())
            if ok.any()
            else math.nan
        )
    return {
        **extra,
        "n": n,
        "mean_ours": float(a.mean()) if n else math.nan,
        "mean_paper": float(b.mean()) if n else math.nan,
        "mean_delta": float((a - b).mean()) if n else math.nan,
        "mean_abs_delta": float(np.abs(a - b).mean()) if n else math.nan,
        "spearman": rho,
        "spearman_p": rho_p,
        "pearson": r,
        "pearson_p": r_p,
    }


def _with_resumed_units(store: pd.DataFrame, p: PlannedRun, ours: pd.DataFrame) -> pd.DataFrame:
    """Cells of units that this run skipped because an earlier run of the same experiment had
    finished them (resume by content: same unit key). Their records carry the earlier run's config
    hash (e.g. ``--subset eng_Latn`` first, then ``--subset eng_Latn,hin_Deva``), so they are found
    by unit key instead."""
    if store.empty or "unit_key" not in store:
        return ours
    from xlexp.experiment import regimes
    from xlexp.experiment.plan import make_plan
    from xlexp.experiment.resume import unit_keys
    from xlexp.experiment.runner import resolve_settings
    from xlexp.results.query import latest

    s = resolve_settings(p.cfg)
    spec = s.task
    plan = make_plan(
        regimes.get(s.regime.name),
        s.regime,
        s.langpair.sources,
        s.langpair.targets,
        spec,
        s.paths.data_dir,
        s.data.source,
        s.seeds,
    )
    keys = set(unit_keys(s, plan))
    sub = store[
        (store["experiment"] == p.experiment)
        & store["unit_key"].isin(keys)
        & (store["split"] == "test")
        & (store["metric"] == p.metric)
        & (store["selection"] == p.cfg.regime.selection)
        & store["k"].isna()
    ]
    if sub.empty:
        return ours
    found = latest(sub).groupby(["source", "target"], as_index=False, sort=False)["value"].mean()
    have = set(zip(ours["source"], ours["target"]))
    extra = found[[(a, b) not in have for a, b in zip(found["source"], found["target"])]]
    return pd.concat([ours, extra], ignore_index=True) if len(extra) else ours


def compare(repro: Reproduction, runs: list[PlannedRun], store: pd.DataFrame, ref: pd.DataFrame) -> Result:
    frames, ours_only, paper_only = [], {}, {}
    for p in runs:
        experiment, chash = p.reuse or (p.experiment, run_config_hash(p.cfg))
        ours = config_cells(store, experiment, chash, p.metric, p.cfg.regime.selection)
        if not p.reuse:
            ours = _with_resumed_units(store, p, ours)
        frames.append(cell_frame(repro, p, ours, ref))
    allcells = pd.concat(frames, ignore_index=True)
    rows = []
    for v in dict.fromkeys(p.variant for p in runs):
        mine = allcells[allcells["variant"] == v.name]
        ours_only[v.name] = mine.loc[mine["paper"].isna(), "cell"].tolist()
        ran = set(mine["cell"])
        want = ref.index[ref[v.column].notna()]
        kinds = {p.spec.cells for p in runs if p.variant is v}
        if kinds == {"target"} and len({p.sources for p in runs if p.variant is v}) == 1:
            paper_only[v.name] = [c for c in want if c not in ran]
        else:  # matrices and averages: only the cells this reproduction could run are expected
            paper_only[v.name] = []
        stats = summarize(mine, repro.within_sd if repro.sd_column else None)
        published = repro.paper_average.get(v.column)
        rows.append(
            {
                "variant": v.name,
                "column": v.column,
                **stats,
                "paper_average": published,
                "average_gap": stats["mean_ours"] - published if published is not None else math.nan,
            }
        )
    cells = allcells.dropna(subset=["ours", "paper"]).reset_index(drop=True)
    return Result(
        repro,
        cells,
        pd.DataFrame(rows),
        ours_only,
        paper_only,
        runs,
        groups=by_group(cells),
        paired=paired_cells(repro, cells),
    )


def by_group(cells: pd.DataFrame) -> pd.DataFrame | None:
    """Δ per variant and group (e.g. script): where an offset concentrates (quantisation, tokenizer)."""
    if "group" not in cells or cells.empty:
        return None
    g = cells.groupby(["variant", "group"], sort=True)
    out = g.agg(
        n=("delta", "size"),
        mean_ours=("ours", "mean"),
        mean_paper=("paper", "mean"),
        mean_delta=("delta", "mean"),
        mean_abs_delta=("delta", lambda d: float(np.abs(d).mean())),
        sd_delta=("delta", "std"),
    ).reset_index()
    return out.sort_values(["variant", "n", "group"], ascending=[True, False, True]).reset_index(drop=True)


def paired_cells(repro: Reproduction, cells: pd.DataFrame) -> pd.DataFrame | None:
    """The two ``paired`` variants on their common cells: ours_a − ours_b next to paper_a − paper_b."""
    if not repro.paired or cells.empty:
        return None
    a, b = repro.paired
    wide = cells.pivot_table(index="cell", columns="variant", values=["ours", "paper"], sort=False)
    if ("ours", a) not in wide.columns or ("ours", b) not in wide.columns:
        return None
    out = pd.DataFrame(
        {
            "ours_a": wide[("ours", a)],
            "ours_b": wide[("ours", b)],
            "paper_a": wide[("paper", a)],
            "paper_b": wide[("paper", b)],
        }
    ).dropna()
    out["ours_diff"] = out["ours_a"] - out["ours_b"]
    out["paper_diff"] = out["paper_a"] - out["paper_b"]
    return out.reset_index()


def reproduce(
    name: str,
    *,
    results_dir: str | Path = "results",
    dry_run: bool = False,
    subset: list[str] | None = None,
    variants: list[str] | None = None,
    overrides: list[str] | None = None,
    reference: str | Path | None = None,
    out_dir: str | Path | None = None,
    force: bool = False,
    folder: Path = REPRODUCTIONS_DIR,
) -> Result | None:
    """Plan, run (or reuse), compare and write; ``dry_run`` only prints the plan."""
    repro = load_reproduction(name, folder)
    known = {v.name: v for v in repro.variants}
    unknown = [v for v in variants or [] if v not in known]
    if unknown:
        raise XlexpError(f"reproduction '{name}' has no variant(s) {unknown}; its variants: {', '.join(known)}")
    chosen = [known[v] for v in variants] if variants else [v for v in repro.variants if v.default]
    ref = load_reference(repro, reference)
    results_dir = str(results_dir)
    store = load(results_dir, required=False)
    runs = plan_runs(repro, chosen, subset, list(overrides or []), results_dir, store)
    print_plan(repro, runs, chosen)
    if dry_run:
        return None
    gpu = [p for p in runs if p.variant.runs_on == "gpu" and not p.reuse]
    if gpu and not force:
        import torch

        if not torch.cuda.is_available():
            raise XlexpError(
                f"reproduction '{name}' ({', '.join(dict.fromkeys(p.variant.name for p in gpu))}) is a GPU "
                f"config and there is no GPU here: use --dry-run to see the runs and their cost, run it on "
                f"a GPU machine, or --force to run it on this CPU anyway"
            )
    from xlexp.experiment.runner import run_experiment

    for p in runs:
        if p.reuse:
            log.info("%s: reusing the records of experiment '%s' (config %s)", p.experiment, *p.reuse)
            continue
        log.info("%s: %s", p.experiment, p.command())
        run_experiment(p.cfg)
    store = load(results_dir, required=False)
    res = compare(repro, runs, store, ref)
    if res.cells.empty:
        raise XlexpError(
            f"no cell of '{name}' has both our number and the paper's (check the reference key and code_map)"
        )
    print_result(res, ref)
    default_out = Path(results_dir) / "reproduce" / (name if not subset else f"{name}-subset")
    res.files = write_outputs(res, Path(out_dir) if out_dir else default_out, ref)
    return res
