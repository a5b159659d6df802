"""A trial's objective, computed from the dev evaluations the experiment runner reports through ``RunHooks.on_eval``.

At every evaluation the running objective (the value if training stopped here) is what the pruner
sees; the final one is the objective at the checkpoint the selection rule picks, the same rule the
experiment runner uses for test cells: ``source_dev`` takes the step with the best mean source-dev primary
metric (ties keep the earlier step), ``target_dev`` takes each language's own best step, ``last``
the last evaluation. With several training units (seeds, sources) the objective is their mean.

Intermediate values are reported at the n-th evaluation (0-based) across the run, not the training
step: trials with different batch sizes then compare at the same point (with the default
``trainer.eval_every=null``, evaluation n is epoch n + 1).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from xlexp.errors import XlexpError
from xlexp.sweep.space import Objective


class ObjectiveError(XlexpError):
    """The objective cannot be computed from what the run evaluates (a config problem, not bad luck)."""


@dataclass
class UnitHistory:
    select_languages: tuple[str, ...]
    dev_targets: tuple[str, ...]
    evals: list[dict[str, dict[str, float]]] = field(default_factory=list)
    steps: list[int] = field(default_factory=list)


@dataclass
class ObjectiveTracker:
    objective: Objective
    primary_metric: str
    units: dict[object, UnitHistory] = field(default_factory=dict)
    n_evals: int = 0

    def languages(self, unit: UnitHistory) -> tuple[str, ...]:
        on = self.objective.on
        if on == "source":
            return unit.select_languages
        if on == "targets_mean":
            if not unit.dev_targets:
                raise ObjectiveError(
                    "objective.on=targets_mean needs target dev evaluations: set regime.dev_targets=all (or a list)"
                )
            return unit.dev_targets
        if on not in (*unit.select_languages, *unit.dev_targets):
            raise ObjectiveError(
                f"objective.on={on}: '{on}' is neither a source of this run nor a watched target "
                f"(sources {list(unit.select_languages)}, watched targets {list(unit.dev_targets)}; "
                f"add it to regime.dev_targets)"
            )
        return (on,)

    def observe(
        self,
        unit_key: object,
        select_languages: tuple[str, ...],
        dev_targets: tuple[str, ...],
        step: int,
        metrics: dict[str, dict[str, float]],
    ) -> tuple[int, float]:
        """Record one evaluation; returns (evaluation index, running objective)."""
        hist = self.units.setdefault(unit_key, UnitHistory(tuple(select_languages), tuple(dev_targets)))
        for lang in self.languages(hist):
            if self.objective.metric not in metrics.get(lang, {}):
                known = sorted(next(iter(metrics.values()), {}))
                raise ObjectiveError(
                    f"objective.metric={self.objective.metric} is not evaluated on {lang}; "
                    f"the task's metrics are {known}"
                )
        hist.evals.append(metrics)
        hist.steps.append(step)
        index = self.n_evals
        self.n_evals += 1
        return index, self.value()

    def unit_value(self, hist: UnitHistory) -> float:
        langs = self.languages(hist)
        evals, metric = hist.evals, self.objective.metric
        if self.objective.selection == "last":
            return float(np.mean([evals[-1][lang][metric] for lang in langs]))
        if self.objective.selection == "source_dev":
            score = [np.mean([e[lang][self.primary_metric] for lang in hist.select_languages]) for e in evals]
            best = int(np.argmax(score))  # first maximum: ties keep the earlier step, like CheckpointKeeper
            return float(np.mean([evals[best][lang][metric] for lang in langs]))
        # target_dev: every language at its own best step (the oracle)
        values = []
        for lang in langs:
            best = int(np.argmax([e[lang][self.primary_metric] for e in evals]))
            values.append(evals[best][lang][metric])
        return float(np.mean(values))

    def value(self) -> float:
        done = [h for h in self.units.values() if h.evals]
        if not done:
            raise ObjectiveError(
                "the run made no dev evaluation, so there is no objective "
                "(a few-shot run reusing a cached source model trains nothing)"
            )
        return float(np.mean([self.unit_value(h) for h in done]))

    def best_step(self) -> int | None:
        """Training step of the chosen checkpoint of the first unit (for the trial's summary)."""
        if not self.units:
            return None
        hist = next(iter(self.units.values()))
        if self.objective.selection == "source_dev":
            score = [np.mean([e[lang][self.primary_metric] for lang in hist.select_languages]) for e in hist.evals]
            return hist.steps[int(np.argmax(score))]
        return hist.steps[-1]
