"""``xlexp reproduce NAME``: run (or reuse) the experiments behind a published table and compare.

A reproduction is data: ``xlexp/reproductions/<name>.yaml`` names a reference file under
``xlexp/reference/`` (the paper's numbers, with their citation), and per *variant* the reference
column it is compared with and the ``xlexp run`` overrides of its run(s). Each run is composed with
Hydra like ``xlexp run`` would, under the experiment name ``reproduce-<name>-<variant>``, and goes
through the normal pipeline; when the results store already holds a run of the same config (same
config hash, under any experiment name) covering the needed cells, its records are reused and
nothing is trained. Cells are compared on the intersection of ours and the paper's:

- ``cells: target``: one cell per target language (in-language diagonals, or one source to all);
- ``cells: source_target``: one cell per (source, target) pair, keyed ``src→tgt`` (codes mapped
  to the paper's through ``code_map``);
- ``cells: mean``: one cell per run, the mean over its targets (e.g. XTREME's task averages).

Printed: per variant the worst cells and a summary (mean of each side, mean Δ, mean |Δ|, Spearman
and Pearson over cells); written: ``<results>/reproduce/<name>/{cells.csv,table.md,table.tex,
delta_heatmap.png}``.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
from omegaconf import DictConfig, OmegaConf

from xlexp.errors import XlexpError
from xlexp.results.languages import display_name

log = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
REPRODUCTIONS_DIR = HERE / "specs"
REFERENCE_DIR = HERE / "reference"
CELL_KINDS = ("target", "source_target", "mean")
ARROW = "→"


# -- the reproduction files -------------------------------------------------------------------
@dataclass(frozen=True)
class RunSpec:
    overrides: tuple[str, ...]
    cells: str = "target"
    cell: str | None = None          # cells=mean: the id of the one cell this run fills
    metric: str | None = None        # default: the reproduction's metric


@dataclass(frozen=True)
class Variant:
    name: str
    column: str                      # reference column compared with
    about: str
    runs: tuple[RunSpec, ...]
    runs_on: str = "cpu"
    default: bool = True             # run when no --variant is given


@dataclass(frozen=True)
class Reproduction:
    name: str
    title: str
    citation: str
    reference_file: str
    key: tuple[str, ...]             # reference column(s) naming a cell
    name_column: str | None
    metric: str
    scale: float
    runs_on: str
    variants: tuple[Variant, ...]
    paper_average: dict[str, float] = field(default_factory=dict)
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    cost: str = ""
    notes: tuple[str, ...] = ()
    code_map: dict[str, str] = field(default_factory=dict)   # our language code -> the paper's
    path: Path | None = None


def available() -> list[str]:
    return sorted(p.stem for p in REPRODUCTIONS_DIR.glob("*.yaml"))


def load_reproduction(name: str, folder: Path = REPRODUCTIONS_DIR) -> Reproduction:
    path = Path(folder) / f"{name}.yaml"
    if not path.exists():
        raise XlexpError(f"unknown reproduction '{name}'. Available: {', '.join(available())}")
    raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    where = f"{path.name}"
    try:
        ref = raw["reference"]
        key = ref["key"]
        variants = []
        for v in raw["variants"]:
            runs = tuple(RunSpec(tuple(str(o) for o in r["overrides"]), r.get("cells", "target"), r.get("cell"),
                                 r.get("metric")) for r in v["runs"])
            for r in runs:
                if r.cells not in CELL_KINDS:
                    raise XlexpError(f"{where}: variant {v['name']}: cells must be one of {', '.join(CELL_KINDS)}; got {r.cells!r}")
                if r.cells == "mean" and not r.cell:
                    raise XlexpError(f"{where}: variant {v['name']}: a run with cells: mean needs `cell: <id>`")
            variants.append(Variant(str(v["name"]), str(v["column"]), str(v.get("about", "")), runs,
                                    str(v.get("runs_on", raw.get("runs_on", "cpu"))), bool(v.get("default", True))))
        return Reproduction(
            name=str(raw["name"]), title=str(raw.get("title", raw["name"])), citation=str(raw["citation"]).strip(),
            reference_file=str(ref["file"]), key=tuple([key] if isinstance(key, str) else key),
            name_column=ref.get("name"), metric=str(raw.get("metric", "accuracy")), scale=float(raw.get("scale", 100)),
            runs_on=str(raw.get("runs_on", "cpu")), variants=tuple(variants),
            paper_average={str(k): float(v) for k, v in (raw.get("paper_average") or {}).items()},
            hyperparameters=dict(raw.get("hyperparameters") or {}), cost=str(raw.get("cost", "")).strip(),
            notes=tuple(raw.get("notes") or ()), code_map=dict(raw.get("code_map") or {}), path=path,
        )
    except KeyError as e:
        raise XlexpError(f"{where}: missing key {e}") from None


def load_reference(repro: Reproduction, path: Path | str | None = None) -> pd.DataFrame:
    """The paper's numbers, indexed by cell id (a code, ``src→tgt``, or a cell name)."""
    path = Path(path) if path else REFERENCE_DIR / repro.reference_file
    if not path.exists():
        raise XlexpError(f"reference file {path} not found (reproduction '{repro.name}')")
    ref = pd.read_csv(path, dtype={k: str for k in repro.key})
    missing = [c for c in (*repro.key, *{v.column for v in repro.variants}) if c not in ref.columns]
    if missing:
        raise XlexpError(f"{path}: no column(s) {missing}; it has {', '.join(ref.columns)}")
    ref.index = ref[list(repro.key)].astype(str).agg(ARROW.join, axis=1)
    return ref


# -- composing the runs -----------------------------------------------------------------------
def compose(overrides: list[str]) -> DictConfig:
    """The config ``xlexp run <overrides>`` would get."""
    from xlexp.config.compose import compose_config

    return compose_config(overrides, job_name="reproduce")


def run_config_hash(cfg: DictConfig, name: str | None = None) -> str:
    """The config hash the pipeline stores in every record (``pipeline.run_experiment``: the resolved
    config without ``paths``, ``trainer.progress`` and ``trainer.num_threads``), optionally as if the
    run had been named ``name``."""
    from xlexp.results.store import run_config_hash as record_hash

    resolved = OmegaConf.to_container(cfg, resolve=True)
    if name is not None:
        resolved["name"] = name
    return record_hash(resolved)


@dataclass
class PlannedRun:
    variant: Variant
    spec: RunSpec
    experiment: str
    overrides: list[str]             # what `xlexp run` gets (name included, paths left out)
    cfg: DictConfig
    sources: tuple[str, ...]
    targets: tuple[str, ...]
    metric: str
    reuse: tuple[str, str] | None = None   # (experiment, config hash) of records that already cover it

    def command(self) -> str:
        import shlex

        return "xlexp run " + " ".join(shlex.quote(o) for o in self.overrides)


def _languages(cfg: DictConfig) -> tuple[tuple[str, ...], tuple[str, ...]]:
    from xlexp.experiment.plan import expand_languages
    from xlexp.tasks.spec import TaskSpec

    spec = TaskSpec.from_config(cfg.task)
    targets = expand_languages(cfg.langpair.targets, spec, "targets")
    sources = targets if cfg.regime.name == "full" else expand_languages(cfg.langpair.sources, spec, "sources")
    return sources, targets


def _subset_overrides(repro: Reproduction, run: RunSpec, cfg: DictConfig, subset: list[str]) -> list[str]:
    """--subset: keep only these languages (our codes, or the paper's through code_map)."""
    back = {v: k for k, v in repro.code_map.items()}
    wanted = {back.get(c, c) for c in subset}
    sources, targets = _languages(cfg)
    keep_t = [t for t in targets if t in wanted]
    if not keep_t:
        return []  # no target of this run is in the subset: the run is left out
    out = [f"langpair.targets=[{','.join(keep_t)}]"]
    if run.cells == "source_target" and cfg.regime.name != "full":
        keep_s = [s for s in sources if s in wanted]
        if not keep_s:
            return []  # this run's source is not in the subset: the run is left out
        out.append(f"langpair.sources=[{','.join(keep_s)}]")
    return out


def plan_runs(repro: Reproduction, variants: list[Variant], subset: list[str] | None, extra: list[str],
              results_dir: str, store: pd.DataFrame) -> list[PlannedRun]:
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


def _cells_of(store: pd.DataFrame, experiment: str, chash: str, metric: str, selection: str) -> pd.DataFrame:
    """Test cells of one run config: the latest per (source, target, seed), mean over seeds."""
    if store.empty:
        return pd.DataFrame(columns=["source", "target", "value"])
    k = pd.to_numeric(store["k"], errors="coerce")
    sub = store[(store["experiment"] == experiment) & (store["config_hash"] == chash) & (store["split"] == "test")
                & (store["metric"] == metric) & (store["selection"] == selection) & (k.isna() | (k == 0))]
    sub = sub.sort_values("timestamp").drop_duplicates(["source", "target", "seed"], keep="last")
    return sub.groupby(["source", "target"], as_index=False, sort=False)["value"].mean()


def _covers(cells: pd.DataFrame, p: PlannedRun) -> bool:
    have = set(zip(cells["source"], cells["target"]))
    if p.cfg.regime.name == "full":
        return all((t, t) in have for t in p.targets)
    rows = {"+".join(p.sources)} if p.cfg.regime.name == "multi_source" else set(p.sources)
    return all((s, t) in have for s in rows for t in p.targets)


def find_reusable(store: pd.DataFrame, p: PlannedRun) -> tuple[str, str] | None:
    """An earlier run of exactly this config (any experiment name) whose records cover every cell."""
    if store.empty:
        return None
    c = p.cfg
    same = store[(store["model"] == c.model.name) & (store["task"] == c.task.name) & (store["regime"] == c.regime.name)
                 & (store["split"] == "test")]
    names = list(dict.fromkeys([p.experiment, *same.sort_values("timestamp", ascending=False)["experiment"]]))
    for name in names:
        chash = run_config_hash(c, name)
        if _covers(_cells_of(same, name, chash, p.metric, c.regime.selection), p):
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
    frame = pd.DataFrame({"variant": p.variant.name, "cell": ids, "ours": np.asarray(values, dtype=float) * repro.scale})
    frame["paper"] = frame["cell"].map(ref[p.variant.column].astype(float))
    frame["delta"] = frame["ours"] - frame["paper"]
    return frame


def _corr(fn, a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    if len(a) < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return math.nan, math.nan
    r = fn(a, b)
    return float(r.statistic), float(r.pvalue)


def summarize(cells: pd.DataFrame) -> dict[str, float]:
    """Statistics over compared cells (both sides present): means, mean Δ, mean |Δ|, Spearman, Pearson."""
    from scipy.stats import pearsonr, spearmanr

    both = cells.dropna(subset=["ours", "paper"])
    a, b = both["ours"].to_numpy(dtype=float), both["paper"].to_numpy(dtype=float)
    rho, rho_p = _corr(spearmanr, a, b)
    r, r_p = _corr(pearsonr, a, b)
    n = len(both)
    return {"n": n, "mean_ours": float(a.mean()) if n else math.nan, "mean_paper": float(b.mean()) if n else math.nan,
            "mean_delta": float((a - b).mean()) if n else math.nan,
            "mean_abs_delta": float(np.abs(a - b).mean()) if n else math.nan,
            "spearman": rho, "spearman_p": rho_p, "pearson": r, "pearson_p": r_p}


@dataclass
class Result:
    repro: Reproduction
    cells: pd.DataFrame                  # variant, cell, ours, paper, delta (only cells both sides have)
    summary: pd.DataFrame                # one row per variant
    ours_only: dict[str, list[str]]      # per variant: our cells the paper does not have
    paper_only: dict[str, list[str]]     # per variant: the paper's cells we did not run
    runs: list[PlannedRun]
    files: dict[str, Path] = field(default_factory=dict)

    def best(self, by: str) -> str | None:
        s = self.summary.dropna(subset=[by])
        if s.empty:
            return None
        score = s[by].abs() if by in ("mean_delta", "average_gap") else s[by]
        return str(s.loc[score.idxmax() if by in ("spearman", "pearson") else score.idxmin(), "variant"])


def compare(repro: Reproduction, runs: list[PlannedRun], store: pd.DataFrame, ref: pd.DataFrame) -> Result:
    frames, ours_only, paper_only = [], {}, {}
    for p in runs:
        experiment, chash = p.reuse or (p.experiment, run_config_hash(p.cfg))
        ours = _cells_of(store, experiment, chash, p.metric, p.cfg.regime.selection)
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
        stats = summarize(mine)
        published = repro.paper_average.get(v.column)
        rows.append({"variant": v.name, "column": v.column, **stats, "paper_average": published,
                     "average_gap": stats["mean_ours"] - published if published is not None else math.nan})
    cells = allcells.dropna(subset=["ours", "paper"]).reset_index(drop=True)
    return Result(repro, cells, pd.DataFrame(rows), ours_only, paper_only, runs)


# -- output -----------------------------------------------------------------------------------
def _label(repro: Reproduction, cell: str, ref: pd.DataFrame | None) -> str:
    if ref is not None and repro.name_column and repro.name_column in ref.columns and cell in ref.index:
        return f"{cell} ({ref.at[cell, repro.name_column]})"
    if ARROW in cell:
        return cell
    name = display_name(cell)
    return cell if name == cell else f"{cell} ({name})"


def _fmt(v, digits: int = 1, sign: bool = False) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    return f"{v:+.{digits}f}" if sign else f"{v:.{digits}f}"


def summary_grid(res: Result):
    from xlexp.views.tables import Grid

    cols = ["cells", "mean ours", "mean paper", "published avg", "mean Δ", "mean |Δ|", "Spearman ρ", "Pearson r"]
    rows = [(r.variant, [str(int(r.n)), _fmt(r.mean_ours), _fmt(r.mean_paper), _fmt(r.paper_average),
                         _fmt(r.mean_delta, sign=True), _fmt(r.mean_abs_delta), _fmt(r.spearman, 3), _fmt(r.pearson, 3)])
            for r in res.summary.itertuples()]
    caption = (f"{res.repro.title}: ours vs the paper ({res.repro.metric} ×{res.repro.scale:g}; Δ = ours − paper)")
    return Grid("variant", cols, rows, None, caption)


def cells_grid(res: Result, ref: pd.DataFrame | None):
    """Wide (one row per cell, columns per variant) when every variant compares the same column."""
    from xlexp.views.tables import Grid

    variants = list(res.summary["variant"])
    same_column = res.summary["column"].nunique() == 1
    if same_column:
        wide = res.cells.pivot_table(index="cell", columns="variant", values=["ours", "delta"], sort=False)
        paper = res.cells.drop_duplicates("cell").set_index("cell")["paper"]
        cols = ["paper"] + [f"{w} {v}" for v in variants for w in ("ours", "Δ")]
        rows = []
        for cell in paper.index:
            vals = [_fmt(paper[cell])]
            for v in variants:
                vals += [_fmt(wide.at[cell, ("ours", v)] if ("ours", v) in wide.columns else math.nan),
                         _fmt(wide.at[cell, ("delta", v)] if ("delta", v) in wide.columns else math.nan, sign=True)]
            rows.append((_label(res.repro, cell, ref), vals))
        avg = [_fmt(paper.mean())] + [x for v in variants for x in (
            _fmt(res.cells.loc[res.cells["variant"] == v, "ours"].mean()),
            _fmt(res.cells.loc[res.cells["variant"] == v, "delta"].mean(), sign=True))]
        return Grid("cell", cols, rows, ("mean", avg), f"{res.repro.title}: per cell")
    rows = [(f"{r.variant}: {_label(res.repro, r.cell, ref)}", [_fmt(r.ours), _fmt(r.paper), _fmt(r.delta, sign=True)])
            for r in res.cells.itertuples()]
    return Grid("variant: cell", ["ours", "paper", "Δ"], rows, None, f"{res.repro.title}: per cell")


def delta_heatmap(res: Result, path: Path) -> None:
    """Δ (ours − paper) per cell and variant, diverging colours centred on 0."""
    from xlexp.views.console import _pyplot

    plt = _pyplot()
    data = res.cells.pivot_table(index="cell", columns="variant", values="delta", sort=False)
    data = data.reindex(columns=[v for v in res.summary["variant"] if v in data.columns])
    rows, cols = data.shape
    fig, ax = plt.subplots(figsize=(min(3 + 1.2 * cols, 20), min(1.5 + 0.16 * rows, 60)))
    vmax = float(np.nanmax(np.abs(data.to_numpy(dtype=float)))) if data.size else 1.0
    im = ax.imshow(data.to_numpy(dtype=float), cmap="RdBu", vmin=-vmax, vmax=vmax, aspect="auto")
    ax.set_xticks(range(cols), list(data.columns), fontsize=9)
    ax.set_yticks(range(rows), [str(c) for c in data.index], fontsize=6 if rows > 60 else 8)
    ax.set_xlabel("variant")
    ax.set_ylabel("cell")
    if rows * cols <= 200:
        for i in range(rows):
            for j in range(cols):
                v = data.iat[i, j]
                if not pd.isna(v):
                    ax.text(j, i, f"{v:+.1f}", ha="center", va="center", fontsize=7)
    fig.colorbar(im, ax=ax, fraction=0.04, label=f"Δ {res.repro.metric} (ours − paper)")
    ax.set_title(f"{res.repro.name}: ours − paper", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_outputs(res: Result, out_dir: Path, ref: pd.DataFrame | None) -> dict[str, Path]:
    from xlexp.views.tables import to_latex, to_markdown

    out_dir.mkdir(parents=True, exist_ok=True)
    files = {"cells": out_dir / "cells.csv", "markdown": out_dir / "table.md", "latex": out_dir / "table.tex",
             "heatmap": out_dir / "delta_heatmap.png", "summary": out_dir / "summary.csv"}
    res.cells.to_csv(files["cells"], index=False, float_format="%.4f")
    res.summary.to_csv(files["summary"], index=False, float_format="%.4f")
    head = f"Reference: {res.repro.citation}\n\n"
    grids = (summary_grid(res), cells_grid(res, ref))
    files["markdown"].write_text(head + "\n".join(to_markdown(g) for g in grids), encoding="utf-8")
    files["latex"].write_text(f"% Reference: {res.repro.citation}\n" + "\n".join(to_latex(g) for g in grids),
                              encoding="utf-8")
    delta_heatmap(res, files["heatmap"])
    return files


def print_result(res: Result, ref: pd.DataFrame | None, worst: int = 10) -> None:
    from rich.table import Table

    from xlexp.views.console import console

    repro = res.repro
    for v in res.summary.itertuples():
        mine = res.cells[res.cells["variant"] == v.variant]
        top = mine.reindex(mine["delta"].abs().sort_values(ascending=False).index).head(worst)
        title = f"{repro.name} · {v.variant}: the {len(top)} cells furthest from the paper"
        table = Table(title=title, min_width=len(title) + 4)
        for col, just in (("cell", "left"), ("ours", "right"), ("paper", "right"), ("Δ", "right")):
            table.add_column(col, justify=just)
        for r in top.itertuples():
            table.add_row(_label(repro, r.cell, ref), _fmt(r.ours), _fmt(r.paper), _fmt(r.delta, sign=True))
        console.print(table)
    g = summary_grid(res)
    table = Table(title=g.caption, min_width=min(len(g.caption) + 4, 150))
    table.add_column("variant", style="bold")
    for c in g.columns:
        table.add_column(c, justify="right")
    for label, vals in g.rows:
        table.add_row(label, *vals)
    console.print(table)
    for v in res.summary.itertuples():
        about = next(x.about for x in repro.variants if x.name == v.variant)
        console.print(f"  {v.variant}: {about}", highlight=False, markup=False)
    if len(res.summary) > 1:
        by_avg, by_cell, by_rank = res.best("average_gap"), res.best("mean_abs_delta"), res.best("spearman")
        if by_avg and not res.summary["average_gap"].isna().all():
            console.print(f"closest average to the published one: {by_avg}", highlight=False)
        console.print(f"closest per cell (smallest mean |Δ|): {by_cell}; best rank agreement (Spearman): {by_rank}",
                      highlight=False)
    for kind, missing in (("in ours but not in the paper", res.ours_only), ("in the paper but not run", res.paper_only)):
        for variant, cells in missing.items():
            if cells:
                shown = ", ".join(_label(repro, c, None) for c in cells[:12]) + (" …" if len(cells) > 12 else "")
                console.print(f"{variant}: {len(cells)} cell(s) {kind} (left out of the comparison): {shown}",
                              highlight=False, markup=False)


def print_plan(repro: Reproduction, runs: list[PlannedRun], variants: list[Variant]) -> None:
    from xlexp.views.console import console

    c = console
    c.print(f"[bold]{repro.name}[/bold]: {repro.title}")
    c.print(f"reference: xlexp/reference/{repro.reference_file}: {repro.citation}", highlight=False, markup=False)
    c.print(f"runs on: {', '.join(sorted({v.runs_on for v in variants}))}", highlight=False)
    if repro.hyperparameters:
        c.print("the paper's hyperparameters:")
        for k, v in repro.hyperparameters.items():
            c.print(f"  {k}: {v}", highlight=False, markup=False)
    if repro.cost:
        c.print(f"expected cost: {repro.cost}", highlight=False, markup=False)
    for note in repro.notes:
        c.print(f"note: {note}", highlight=False, markup=False)
    others = [v.name for v in repro.variants if v not in variants]
    for p in runs:
        status = f"reuse records of '{p.reuse[0]}' (config {p.reuse[1]})" if p.reuse else "run"
        cells = len(p.targets) if p.spec.cells != "source_target" else len(p.sources) * len(p.targets)
        c.print(f"[{p.variant.name}] vs column '{p.variant.column}', {cells} cell(s), {p.variant.runs_on}: {status}\n"
                f"  {p.command()}", highlight=False, soft_wrap=True, markup=False)
    if others:
        c.print(f"other variants (--variant NAME): {', '.join(others)}", highlight=False)


def reproduce(name: str, *, results_dir: str | Path = "results", dry_run: bool = False, subset: list[str] | None = None,
              variants: list[str] | None = None, overrides: list[str] | None = None,
              reference: str | Path | None = None, out_dir: str | Path | None = None, force: bool = False,
              folder: Path = REPRODUCTIONS_DIR) -> Result | None:
    """Plan, run (or reuse), compare and write; ``dry_run`` only prints the plan."""
    from xlexp.results.store import load_records

    repro = load_reproduction(name, folder)
    known = {v.name: v for v in repro.variants}
    unknown = [v for v in variants or [] if v not in known]
    if unknown:
        raise XlexpError(f"reproduction '{name}' has no variant(s) {unknown}; its variants: {', '.join(known)}")
    chosen = [known[v] for v in variants] if variants else [v for v in repro.variants if v.default]
    ref = load_reference(repro, reference)
    results_dir = str(results_dir)
    store = load_records(results_dir)
    runs = plan_runs(repro, chosen, subset, list(overrides or []), results_dir, store)
    print_plan(repro, runs, chosen)
    if dry_run:
        return None
    gpu = [p for p in runs if p.variant.runs_on == "gpu" and not p.reuse]
    if gpu and not force:
        import torch

        if not torch.cuda.is_available():
            raise XlexpError(f"reproduction '{name}' ({', '.join(dict.fromkeys(p.variant.name for p in gpu))}) is a GPU "
                             f"config and there is no GPU here: use --dry-run to see the runs and their cost, run it on "
                             f"a GPU machine, or --force to run it on this CPU anyway")
    from xlexp.experiment.runner import run_experiment

    for p in runs:
        if p.reuse:
            log.info("%s: reusing the records of experiment '%s' (config %s)", p.experiment, *p.reuse)
            continue
        log.info("%s: %s", p.experiment, p.command())
        run_experiment(p.cfg)
    store = load_records(results_dir)
    res = compare(repro, runs, store, ref)
    if res.cells.empty:
        raise XlexpError(f"no cell of '{name}' has both our number and the paper's (check the reference key and code_map)")
    print_result(res, ref)
    default_out = Path(results_dir) / "reproduce" / (name if not subset else f"{name}-subset")
    res.files = write_outputs(res, Path(out_dir) if out_dir else default_out, ref)
    from xlexp.views.console import console

    console.print(f"written: {', '.join(str(p) for p in res.files.values())}", highlight=False, soft_wrap=True)
    return res


def main(argv: list[str]) -> int:
    import argparse
    import os

    p = argparse.ArgumentParser(prog="xlexp reproduce", description=(
        "Run (or reuse from the results store) the experiments behind a published table, then print ours, the "
        "paper's and Δ per cell with summary statistics, and write cells.csv, table.md/.tex and a Δ heatmap."))
    p.add_argument("name", nargs="?", help=f"reproduction: {', '.join(available())}")
    p.add_argument("overrides", nargs="*", help="extra Hydra overrides for every run (e.g. trainer.device=cuda:1)")
    p.add_argument("--dry-run", action="store_true", help="print the planned runs, the paper's hyperparameters and cost")
    p.add_argument("--subset", help="comma-separated languages to keep, e.g. eng_Latn,hin_Deva,zho_Hans")
    p.add_argument("--variant", action="append", help="variant to run (repeatable; default: the default variants)")
    p.add_argument("--reference", help="another reference CSV with the same columns (default: the shipped one)")
    p.add_argument("--out", help="output folder (default: <results dir>/reproduce/<name>)")
    p.add_argument("--force", action="store_true", help="run GPU configs even without a GPU")
    p.add_argument("--list", action="store_true", help="list the reproductions")
    p.add_argument("--results-dir", default=os.environ.get("XLEXP_RESULTS_DIR", "results"),
                   help="results store (default: $XLEXP_RESULTS_DIR or ./results)")
    args = p.parse_args(argv)
    if args.list or not args.name:
        for n in available():
            r = load_reproduction(n)
            print(f"{n:14s} {r.runs_on:4s} {r.title}")
        return 0
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s][%(name)s][%(levelname)s] - %(message)s")
    subset = [c.strip() for c in args.subset.split(",") if c.strip()] if args.subset else None
    reproduce(args.name, results_dir=args.results_dir, dry_run=args.dry_run, subset=subset, variants=args.variant,
              overrides=args.overrides, reference=args.reference, out_dir=args.out, force=args.force)
    return 0
