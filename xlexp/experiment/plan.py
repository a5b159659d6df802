"""From a composed config to the list of trainings to run, validated before any work starts.

A *training unit* is one model trained once with one seed: on which languages it trains, whose
dev splits select its checkpoint, which targets' dev splits are watched (for the target_dev
rule) and which targets it is tested on. Zero-shot and few-shot have one unit per source (never one
per cell; few-shot continues from that unit's model), multi-source one for the source set, full
fine-tuning one per target. Each unit runs once per seed.

Which units a regime has is its module's business (``xlexp.experiment.regimes``); this module
expands language lists, picks the watched dev targets and checks that every split the units read
exists, before any work.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from xlexp.config.schema import RegimeSettings
from xlexp.errors import XlexpError
from xlexp.tasks.spec import TaskSpec

AUTO_DEV_TARGETS = 25

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainingUnit:
    source: str  # row name in the matrix ('eng', or 'eng+ind+jav')
    train_languages: tuple[str, ...]
    select_languages: tuple[str, ...]  # whose dev splits pick the source_dev checkpoint
    targets: tuple[str, ...]
    dev_targets: tuple[str, ...]  # targets whose dev split is evaluated (target_dev rule)
    seed: int


class UnitSource(Protocol):
    """What planning needs from a regime (``xlexp.experiment.regimes.Regime`` has it)."""

    name: str
    takes_sources: bool
    own_executor: bool

    def units(
        self,
        settings: RegimeSettings,
        sources: tuple[str, ...] | None,
        targets: tuple[str, ...],
        watch: tuple[str, ...],
        seeds: tuple[int, ...],
    ) -> list[TrainingUnit]: ...

    def needs(self, unit: TrainingUnit, settings: RegimeSettings) -> dict[tuple[str, str], str]: ...


@dataclass(frozen=True)
class Plan:
    regime: str
    sources: tuple[str, ...]
    targets: tuple[str, ...]
    units: tuple[TrainingUnit, ...]
    # every (language, split) the units read, with why: read and validated before any training, and
    # the only splits that may be required (an empty split nobody reads is ignored)
    needs: Mapping[tuple[str, str], str] = field(default_factory=dict)

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


def _dev_targets(
    setting, targets: tuple[str, ...], spec: TaskSpec, data_dir: Path, data_source: str
) -> tuple[str, ...]:
    """``all`` -> targets that have a dev split; ``auto`` -> all of them up to AUTO_DEV_TARGETS
    (watching 205 dev sets at every evaluation would cost more than training); ``none`` -> ();
    a list -> validated subset."""
    if setting in (None, "none", False):
        return ()
    if setting in ("all", "auto"):
        with_dev = tuple(t for t in targets if spec.has_split(t, "dev", data_dir, data_source))
        if len(with_dev) < len(targets):
            log.info(
                "target(s) %s have no dev split: no target_dev rule for them (source_dev and last only)",
                [t for t in targets if t not in with_dev],
            )
        if setting == "auto" and len(with_dev) > AUTO_DEV_TARGETS:
            log.info(
                "regime.dev_targets=auto: %d targets have dev splits, more than %d, so target dev splits are "
                "not watched (no target_dev rule); set regime.dev_targets=all or a list to watch them",
                len(with_dev),
                AUTO_DEV_TARGETS,
            )
            return ()
        return with_dev
    chosen = expand_languages(setting, spec, "dev_targets")
    outside = [t for t in chosen if t not in targets]
    if outside:
        raise XlexpError(f"regime.dev_targets lists {outside}, which are not targets of this run")
    return chosen


def make_plan(
    regime: UnitSource,
    settings: RegimeSettings,
    sources,
    targets,
    spec: TaskSpec,
    data_dir: Path,
    data_source: str = "auto",
    seeds: tuple[int, ...] = (42,),
) -> Plan:
    """The units of ``regime`` for these languages and seeds, checked against the data on disk."""
    tgt = expand_languages(targets, spec, "targets")
    if targets == "all":  # languages that by the task's own layout have no test split are sources only (QA)
        no_test = [t for t in tgt if spec.kind.file_split(spec, t, "test") is None]
        if no_test:
            log.info("langpair.targets=all: %s have no test split in task '%s' (sources only)", no_test, spec.name)
            tgt = tuple(t for t in tgt if t not in no_test)
    watch = _dev_targets(settings.dev_targets, tgt, spec, data_dir, data_source)
    if not spec.trains:  # retrieval: nothing to train; one row named by the pivot language
        if regime.name != "zero_shot" and not regime.own_executor:
            raise XlexpError(
                f"task '{spec.name}' is a {spec.type} task (no training): use regime=zero_shot "
                f"(or regime=probe on retrieval tasks: MTEB's bitext mining)"
            )
        src = (spec.pivot or "eng",)
        units = [TrainingUnit(src[0], (), (), tgt, (), seed) for seed in seeds[:1]]
    else:
        src = expand_languages(sources, spec, "sources") if regime.takes_sources else None
        units = regime.units(settings, src, tgt, watch, tuple(seeds))
        src = src if src is not None else tgt
    plan = Plan(regime.name, src, tgt, tuple(units), _needs(units, regime if spec.trains else None, settings))
    _check_splits(plan, spec, data_dir, data_source)
    return plan


def _needs(
    units: list[TrainingUnit], regime: UnitSource | None, settings: RegimeSettings
) -> dict[tuple[str, str], str]:
    needs: dict[tuple[str, str], str] = {}
    for unit in units:
        for lang in unit.train_languages:
            needs.setdefault((lang, "train"), f"source '{unit.source}' trains on it")
        for lang in unit.select_languages:
            needs.setdefault((lang, "dev"), "checkpoint selection uses it")
        for lang in unit.dev_targets:
            needs.setdefault((lang, "dev"), "the target_dev rule watches it")
        for t in unit.targets:
            needs.setdefault((t, "test"), "it is a target")
        for key, why in (regime.needs(unit, settings) if regime is not None else {}).items():
            needs.setdefault(key, why)
    return needs


def _check_splits(plan: Plan, spec: TaskSpec, data_dir: Path, data_source: str) -> None:
    """Fail before training if a split the plan needs does not exist."""
    for (lang, split), why in plan.needs.items():
        if not spec.has_split(lang, split, data_dir, data_source):
            where = spec.local_path(lang, split, data_dir)
            raise XlexpError(
                f"language '{lang}' of task '{spec.name}' has no '{split}' split ({why}); "
                f"looked for {where} under data root {Path(data_dir).resolve()} "
                f"(set paths.data_dir=... or XLEXP_DATA_DIR; hub dataset: {spec.hub.get('id', 'none')})"
            )
