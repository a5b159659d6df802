"""Sweep files (``sweeps/*.yaml``): the base experiment, the objective and the search space.

The space is written in Hydra's override grammar (``interval``, ``choice``, ``range``,
``tag(log, ...)``), parsed with Hydra's own parser and mapped to Optuna distributions, so a sweep
file reads like the ``-m`` overrides users already know. A plain value is a fixed override.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
import yaml
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution

from xlexp.config.names import check_name
from xlexp.errors import XlexpError

OBJECTIVE_ON_FIXED = ("source", "targets_mean")
SELECTIONS = ("source_dev", "target_dev", "last")
DIRECTIONS = ("maximize", "minimize")
SAMPLERS = ("tpe", "random", "gp")
PRUNERS = ("median", "percentile", "hyperband", "successive_halving", "none")
_INT_INTERVAL = re.compile(r"interval\(\s*[-+]?\d+\s*,\s*[-+]?\d+\s*\)")


@dataclass(frozen=True)
class Objective:
    """What a trial is scored on: a dev metric, on the source(s), the mean over watched targets or
    one language, at the checkpoint a selection rule picks."""

    metric: str = "macro_f1"
    split: str = "dev"
    on: str = "source"  # source | targets_mean | <language code>
    selection: str = "source_dev"  # source_dev | target_dev | last
    direction: str = "maximize"

    @classmethod
    def from_dict(cls, raw: dict[str, Any] | None, where: str) -> Objective:
        raw = dict(raw or {})
        unknown = set(raw) - {"metric", "split", "on", "selection", "direction"}
        if unknown:
            raise XlexpError(
                f"{where}: unknown objective key(s) {sorted(unknown)}; known: metric, split, on, selection, direction"
            )
        obj = cls(**{k: str(v) for k, v in raw.items()})
        if obj.split != "dev":
            raise XlexpError(
                f"{where}: objective.split must be 'dev' (tuning on test would leak it), got {obj.split!r}"
            )
        if obj.selection not in SELECTIONS:
            raise XlexpError(
                f"{where}: objective.selection must be one of {', '.join(SELECTIONS)}; got {obj.selection!r}"
            )
        if obj.direction not in DIRECTIONS:
            raise XlexpError(f"{where}: objective.direction must be maximize or minimize; got {obj.direction!r}")
        return obj

    def describe(self) -> str:
        return f"{self.split} {self.metric} on {self.on} ({self.selection}, {self.direction})"


@dataclass(frozen=True)
class Param:
    """One searched override: its Hydra text and the Optuna distribution it maps to."""

    key: str
    text: str
    distribution: BaseDistribution


@dataclass(frozen=True)
class SweepSpec:
    name: str  # the file's stem: the study family
    path: Path
    base: tuple[str, ...]  # overrides every trial starts from
    objective: Objective
    params: tuple[Param, ...]
    fixed: tuple[str, ...] = ()  # plain values under params: fixed overrides
    sampler: dict[str, Any] = field(default_factory=lambda: {"name": "tpe"})
    pruner: dict[str, Any] = field(default_factory=lambda: {"name": "median"})
    n_trials: int = 20

    @property
    def distributions(self) -> dict[str, BaseDistribution]:
        return {p.key: p.distribution for p in self.params}

    def fingerprint(self) -> dict[str, Any]:
        """What must not change under a running study (the budget and the sampler may)."""
        return {
            "base": list(self.base),
            "fixed": list(self.fixed),
            "objective": self.objective.__dict__,
            "params": {p.key: p.text for p in self.params},
        }


def _distribution(key: str, text: str) -> BaseDistribution | None:
    """Hydra sweep text -> Optuna distribution; None for a plain (fixed) value."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, RangeSweep
    from hydra.errors import HydraException

    try:
        override = OverridesParser.create().parse_overrides([f"{key}={text}"])[0]
    except HydraException as e:
        raise XlexpError(f"params.{key}: cannot parse {text!r} as a Hydra override: {str(e).splitlines()[0]}") from None
    if not override.is_sweep_override():
        return None
    value = override.value()
    tags = set(getattr(value, "tags", ()) or ())
    log = "log" in tags
    if isinstance(value, IntervalSweep):
        # Hydra's parser turns interval bounds into floats: integer literals (or tag(int, ...)) mean an int range
        if "int" in tags or _INT_INTERVAL.search(text):
            return IntDistribution(int(value.start), int(value.end), log=log)
        return FloatDistribution(float(value.start), float(value.end), log=log)
    if isinstance(value, ChoiceSweep):
        choices = [_hashable(c) for c in value.list]
        return CategoricalDistribution(choices)
    if isinstance(value, RangeSweep):
        values = list(_range_values(value.start, value.stop, value.step))
        if not values:
            raise XlexpError(f"params.{key}: {text} is empty")
        if all(isinstance(v, int) for v in values):  # Hydra's range excludes stop, like Python's
            return IntDistribution(values[0], values[-1], step=int(value.step), log=log)
        return FloatDistribution(float(values[0]), float(values[-1]), step=float(value.step))
    raise XlexpError(f"params.{key}: {text!r} is a sweep Optuna cannot search (use interval, choice or range)")


def _range_values(start: float, stop: float, step: float):
    n = max(0, math.ceil((stop - start) / step))
    for i in range(n):
        v = start + i * step
        yield int(v) if all(isinstance(x, int) for x in (start, stop, step)) else round(v, 12)


def _hashable(value: Any) -> Any:
    """Categorical choices must be None/bool/int/float/str: lists (``[eng]``) become their override text."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return format_value(value)


def format_value(value: Any) -> str:
    """A Python value as Hydra override text."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(format_value(v) for v in value) + "]"
    text = str(value)
    if isinstance(value, str) and (not text or re.search(r"[\s,=\[\]{}()'\"\\:]", text)) and not text.startswith("["):
        return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"
    return text


def trial_overrides(params: dict[str, Any]) -> list[str]:
    return [f"{k}={format_value(v)}" for k, v in params.items()]


def _mapping(raw: dict[str, Any], key: str, where: str, default: dict[str, Any]) -> dict[str, Any]:
    value = raw.get(key, default)
    if isinstance(value, str):
        value = {"name": value}
    if not isinstance(value, dict) or "name" not in value:
        raise XlexpError(f"{where}: {key} must be a mapping with a name, e.g. {{name: {default['name']}}}")
    return dict(value)


class _Loader(yaml.SafeLoader):
    """YAML 1.2 booleans: only true/false. YAML 1.1 reads ``on:`` (the objective key) and ``no``
    (Norwegian) as booleans."""


_Loader.yaml_implicit_resolvers = {
    ch: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:bool"]
    for ch, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def load_sweep(path: str | Path) -> SweepSpec:
    path = Path(path)
    if not path.is_file():
        hint = sorted(p.name for p in (path.parent if path.parent.is_dir() else Path("sweeps")).glob("*.yaml"))
        raise XlexpError(f"sweep file {path} not found" + (f"; available: {', '.join(hint)}" if hint else ""))
    try:
        raw = yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader) or {}
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f", line {mark.line + 1}" if mark is not None else ""
        why = getattr(e, "problem", None) or str(e).strip().splitlines()[0]
        raise XlexpError(f"{path}{at}: not valid YAML: {why} (sweep files are plain YAML: no !!python tags)") from None
    where = str(path)
    unknown = set(raw) - {"base", "objective", "params", "sampler", "pruner", "n_trials"}
    if unknown:
        raise XlexpError(
            f"{where}: unknown key(s) {sorted(unknown)}; known: base, objective, params, sampler, pruner, n_trials"
        )
    base = raw.get("base") or []
    if isinstance(base, str):
        base = [base]
    if not isinstance(raw.get("params"), dict) or not raw["params"]:
        raise XlexpError(
            f"{where}: params must map override keys to Hydra sweeps, e.g. optimizer.lr: tag(log, interval(1e-5, 1e-4))"
        )
    params, fixed = [], []
    for key, value in raw["params"].items():
        text = format_value(value) if not isinstance(value, str) else value
        dist = _distribution(str(key), text)
        if dist is None:
            fixed.append(f"{key}={text}")
        else:
            params.append(Param(str(key), text, dist))
    if not params:
        raise XlexpError(f"{where}: no searched parameter under params (all values are fixed)")
    n_trials = raw.get("n_trials", 20)
    if not isinstance(n_trials, int) or isinstance(n_trials, bool) or n_trials <= 0:
        raise XlexpError(f"{where}: n_trials must be a positive integer, got {n_trials!r}")
    sampler = _mapping(raw, "sampler", where, {"name": "tpe"})
    pruner = _mapping(raw, "pruner", where, {"name": "median"})
    if sampler["name"] not in SAMPLERS:
        raise XlexpError(f"{where}: sampler.name must be one of {', '.join(SAMPLERS)}; got {sampler['name']!r}")
    if pruner["name"] not in PRUNERS:
        raise XlexpError(f"{where}: pruner.name must be one of {', '.join(PRUNERS)}; got {pruner['name']!r}")
    return SweepSpec(
        name=path.stem,
        path=path.resolve(),
        base=tuple(str(b) for b in base),
        objective=Objective.from_dict(raw.get("objective"), where),
        params=tuple(params),
        fixed=tuple(fixed),
        sampler=sampler,
        pruner=pruner,
        n_trials=n_trials,
    )


def default_study_name(spec: SweepSpec, overrides: list[str]) -> str:
    """The file's stem; extra command-line overrides make another study (same command = same study)."""
    if not overrides:
        return spec.name
    digest = hashlib.sha1(json.dumps(list(overrides)).encode()).hexdigest()[:8]
    return f"{spec.name}-{digest}"


def check_study_name(name: str) -> str:
    """A study name names pending folders, lock files and every trial's experiment: one file name
    (``xlexp.config.names``; a trailing newline or a 5000-character name is refused too)."""
    return check_name(name, "study name", "--study or the sweep file's name")


def make_sampler(cfg: dict[str, Any], seed: int | None) -> optuna.samplers.BaseSampler:
    kwargs = {k: v for k, v in cfg.items() if k not in ("name", "seed")}
    name = cfg["name"]
    try:
        if name == "tpe":
            # constant_liar: parallel workers do not all propose the point the others are already running
            return optuna.samplers.TPESampler(seed=seed, **{"constant_liar": True, **kwargs})
        if name == "random":
            return optuna.samplers.RandomSampler(seed=seed, **kwargs)
        return optuna.samplers.GPSampler(seed=seed, **kwargs)
    except TypeError as e:
        raise XlexpError(f"sampler {name}: {e}") from None


def make_pruner(cfg: dict[str, Any]) -> optuna.pruners.BasePruner:
    kwargs = {k: v for k, v in cfg.items() if k != "name"}
    name = cfg["name"]
    classes = {
        "median": optuna.pruners.MedianPruner,
        "percentile": optuna.pruners.PercentilePruner,
        "hyperband": optuna.pruners.HyperbandPruner,
        "successive_halving": optuna.pruners.SuccessiveHalvingPruner,
        "none": optuna.pruners.NopPruner,
    }
    try:
        return classes[name](**kwargs)
    except TypeError as e:
        raise XlexpError(f"pruner {name}: {e}") from None
