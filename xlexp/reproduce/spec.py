"""The data of ``xlexp reproduce``: reproduction files, reference tables, planned runs, results.

A reproduction is data: ``xlexp/reproduce/specs/<name>.yaml`` names a reference file under
``xlexp/reproduce/reference/`` (the paper's numbers, with their citation), and per *variant* the
reference column it is compared with and the ``xlexp run`` overrides of its run(s). Cells are
compared on the intersection of ours and the paper's:

- ``cells: target``: one cell per target language (in-language diagonals, or one source to all);
- ``cells: source_target``: one cell per (source, target) pair, keyed ``src→tgt`` (codes mapped
  to the paper's through ``code_map``);
- ``cells: mean``: one cell per run, the mean over its targets (e.g. XTREME's task averages).

``runner`` plans, runs (or reuses) and compares; ``output`` prints and writes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from omegaconf import DictConfig

from xlexp.errors import XlexpError

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
    cell: str | None = None  # cells=mean: the id of the one cell this run fills
    metric: str | None = None  # default: the reproduction's metric


@dataclass(frozen=True)
class Variant:
    name: str
    column: str  # reference column compared with
    about: str
    runs: tuple[RunSpec, ...]
    runs_on: str = "cpu"
    default: bool = True  # run when no --variant is given


@dataclass(frozen=True)
class Reproduction:
    name: str
    title: str
    citation: str
    reference_file: str
    key: tuple[str, ...]  # reference column(s) naming a cell
    name_column: str | None
    metric: str
    scale: float
    runs_on: str
    variants: tuple[Variant, ...]
    paper_average: dict[str, float] = field(default_factory=dict)
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    cost: str = ""
    notes: tuple[str, ...] = ()
    code_map: dict[str, str] = field(default_factory=dict)  # our language code -> the paper's
    path: Path | None = None
    # optional agreement extras: the reference's own run-to-run sd per cell (share of cells within
    # ``within_sd`` of them), a column to break Δ down by (e.g. script), two variants to compare pairwise
    sd_column: str | None = None
    within_sd: float = 2.0
    group_column: str | None = None
    paired: tuple[str, str] | None = None


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
            runs = tuple(
                RunSpec(tuple(str(o) for o in r["overrides"]), r.get("cells", "target"), r.get("cell"), r.get("metric"))
                for r in v["runs"]
            )
            for r in runs:
                if r.cells not in CELL_KINDS:
                    raise XlexpError(
                        f"{where}: variant {v['name']}: cells must be one of {', '.join(CELL_KINDS)}; got {r.cells!r}"
                    )
                if r.cells == "mean" and not r.cell:
                    raise XlexpError(f"{where}: variant {v['name']}: a run with cells: mean needs `cell: <id>`")
            variants.append(
                Variant(
                    str(v["name"]),
                    str(v["column"]),
                    str(v.get("about", "")),
                    runs,
                    str(v.get("runs_on", raw.get("runs_on", "cpu"))),
                    bool(v.get("default", True)),
                )
            )
        return Reproduction(
            name=str(raw["name"]),
            title=str(raw.get("title", raw["name"])),
            citation=str(raw["citation"]).strip(),
            reference_file=str(ref["file"]),
            key=tuple([key] if isinstance(key, str) else key),
            name_column=ref.get("name"),
            metric=str(raw.get("metric", "accuracy")),
            scale=float(raw.get("scale", 100)),
            runs_on=str(raw.get("runs_on", "cpu")),
            variants=tuple(variants),
            paper_average={str(k): float(v) for k, v in (raw.get("paper_average") or {}).items()},
            hyperparameters=dict(raw.get("hyperparameters") or {}),
            cost=str(raw.get("cost", "")).strip(),
            notes=tuple(raw.get("notes") or ()),
            code_map=dict(raw.get("code_map") or {}),
            path=path,
            sd_column=ref.get("sd"),
            within_sd=float(ref.get("within_sd", 2.0)),
            group_column=ref.get("group"),
            paired=_paired(raw.get("paired"), [v.name for v in variants], where),
        )
    except KeyError as e:
        raise XlexpError(f"{where}: missing key {e}") from None


def _paired(value, names: list[str], where: str) -> tuple[str, str] | None:
    if value is None:
        return None
    if not isinstance(value, (list, tuple)) or len(value) != 2 or any(v not in names for v in value):
        raise XlexpError(f"{where}: paired must name two of the variants ({', '.join(names)}); got {value!r}")
    return str(value[0]), str(value[1])


def load_reference(repro: Reproduction, path: Path | str | None = None) -> pd.DataFrame:
    """The paper's numbers, indexed by cell id (a code, ``src→tgt``, or a cell name)."""
    path = Path(path) if path else REFERENCE_DIR / repro.reference_file
    if not path.exists():
        raise XlexpError(f"reference file {path} not found (reproduction '{repro.name}')")
    ref = pd.read_csv(path, dtype={k: str for k in repro.key})
    extra = [c for c in (repro.sd_column, repro.group_column) if c]
    missing = [c for c in (*repro.key, *{v.column for v in repro.variants}, *extra) if c not in ref.columns]
    if missing:
        raise XlexpError(f"{path}: no column(s) {missing}; it has {', '.join(ref.columns)}")
    ref.index = ref[list(repro.key)].astype(str).agg(ARROW.join, axis=1)
    return ref


# -- a reproduction's runs and result -------------------------------------------------------------
@dataclass
class PlannedRun:
    variant: Variant
    spec: RunSpec
    experiment: str
    overrides: list[str]  # what `xlexp run` gets (name included, paths left out)
    cfg: DictConfig
    sources: tuple[str, ...]
    targets: tuple[str, ...]
    metric: str
    reuse: tuple[str, str] | None = None  # (experiment, config hash) of records that already cover it

    def command(self) -> str:
        import shlex

        return "xlexp run " + " ".join(shlex.quote(o) for o in self.overrides)


@dataclass
class Result:
    repro: Reproduction
    cells: pd.DataFrame  # variant, cell, ours, paper, delta (only cells both sides have)
    summary: pd.DataFrame  # one row per variant
    ours_only: dict[str, list[str]]  # per variant: our cells the paper does not have
    paper_only: dict[str, list[str]]  # per variant: the paper's cells we did not run
    runs: list[PlannedRun]
    files: dict[str, Path] = field(default_factory=dict)
    groups: pd.DataFrame | None = None  # per variant and group (reference's group column): n, mean Δ, mean |Δ|
    paired: pd.DataFrame | None = None  # the two ``paired`` variants cell by cell: a − b in ours and in the paper

    def best(self, by: str) -> str | None:
        s = self.summary.dropna(subset=[by])
        if s.empty:
            return None
        score = s[by].abs() if by in ("mean_delta", "average_gap") else s[by]
        return str(s.loc[score.idxmax() if by in ("spearman", "pearson") else score.idxmin(), "variant"])
