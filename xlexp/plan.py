"""From a composed config to the list of trainings to run, validated before any work starts.

A *training unit* is one model trained once: on which languages it trains, on which language's
dev split it selects its checkpoint, and which targets it is tested on. Zero-shot has one unit per
source (never one per cell); full fine-tuning has one per target.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from xlexp.errors import XlexpError
from xlexp.tasks import TaskSpec

REGIMES = ("zero_shot", "full")


@dataclass(frozen=True)
class TrainingUnit:
    source: str                 # row name in the matrix
    train_languages: tuple[str, ...]
    select_language: str        # whose dev split picks the checkpoint
    targets: tuple[str, ...]


@dataclass(frozen=True)
class Plan:
    regime: str
    sources: tuple[str, ...]
    targets: tuple[str, ...]
    units: tuple[TrainingUnit, ...]

    @property
    def languages(self) -> tuple[str, ...]:
        """Every language the plan reads, in first-seen order."""
        seen = dict.fromkeys(lang for u in self.units for lang in (*u.train_languages, *u.targets))
        return tuple(seen)


def expand_languages(value, spec: TaskSpec, role: str) -> tuple[str, ...]:
    """``all`` -> every task language; a list or comma string -> validated codes, in order."""
    if value is None:
        raise XlexpError(f"langpair.{role} is not set; give a list like langpair.{role}=[eng] or 'all'")
    if isinstance(value, str):
        value = list(spec.languages) if value == "all" else [v.strip() for v in value.split(",") if v.strip()]
    codes = tuple(str(v) for v in value)
    if not codes:
        raise XlexpError(f"langpair.{role} is empty: give at least one language of task '{spec.name}' or 'all'")
    dupes = sorted({c for c in codes if codes.count(c) > 1})
    if dupes:
        raise XlexpError(f"langpair.{role} lists {dupes} more than once")
    for code in codes:
        spec.check_language(code, role[:-1])
    return codes


def make_plan(regime: str, sources, targets, spec: TaskSpec, data_dir: Path, data_source: str = "auto") -> Plan:
    if regime not in REGIMES:
        raise XlexpError(f"unknown regime '{regime}'; available: {', '.join(REGIMES)}")
    tgt = expand_languages(targets, spec, "targets")
    if regime == "zero_shot":
        src = expand_languages(sources, spec, "sources")
        units = tuple(TrainingUnit(s, (s,), s, tgt) for s in src)
    else:  # full: in-language fine-tuning per target; the sources setting is ignored
        src = tgt
        units = tuple(TrainingUnit(t, (t,), t, (t,)) for t in tgt)
    plan = Plan(regime, src, tgt, units)
    _check_splits(plan, spec, data_dir, data_source)
    return plan


def _check_splits(plan: Plan, spec: TaskSpec, data_dir: Path, data_source: str) -> None:
    """Fail before training if a split the plan needs does not exist."""
    needs: dict[tuple[str, str], str] = {}
    for unit in plan.units:
        for lang in unit.train_languages:
            needs.setdefault((lang, "train"), f"source '{unit.source}' trains on it")
        needs.setdefault((unit.select_language, "dev"), "checkpoint selection uses it")
        for t in unit.targets:
            needs.setdefault((t, "test"), "it is a target")
    for (lang, split), why in needs.items():
        if not spec.has_split(lang, split, data_dir, data_source):
            where = spec.local_path(lang, split, data_dir)
            raise XlexpError(
                f"language '{lang}' of task '{spec.name}' has no '{split}' split ({why}); "
                f"looked for {where} under data root {Path(data_dir).resolve()} "
                f"(set paths.data_dir=... or XLEXP_DATA_DIR; hub dataset: {spec.hub.get('id', 'none')})"
            )
