"""Active matrix filling, a stage above the experiment: ``langpair.budget=N`` trains N of the sources, not all.

A full source x target matrix costs one training per source. With a budget, ``langpair.sources`` is
the list of *candidates*: the stage trains one source at a time, each time the candidate whose
measured row would help the completion most (``xlexp.predict.predictor.next_source``: greedy
coverage of the untrained sources, weighted by how uncertain their predicted rows are now), until
N are trained; then it predicts the rows of the others (``xlexp.predict``) and prints the matrix,
predicted cells dimmed. They are written to ``<results>/predicted/``, never as records.

Every step is a normal zero-shot run of one source (its own run id, records, log lines and tracker
run): the experiment stage's :func:`~xlexp.experiment.runner.run_settings` on the typed settings with
``langpair`` replaced (``dataclasses.replace``), so the store cannot tell a budgeted matrix from one
trained by hand. The stage sits above both experiment and predict (pyproject's import contracts), which
is why the experiment stage never imports predict and ``xlexp run`` (``xlexp.cli.run``) dispatches
here when the settings carry a budget. Resume is by content, as for every run: a candidate counts as
trained when the records of all its units (one per seed) are in the store under their unit keys
(``xlexp.experiment.resume``), so re-running the same command after a crash trains only the steps
still missing, and a larger budget later continues the same matrix. ``rerun=true`` counts only the
sources trained by this call.
"""

from __future__ import annotations

import logging
from dataclasses import replace

import numpy as np
import pandas as pd

from xlexp.config.schema import Settings
from xlexp.errors import XlexpError
from xlexp.experiment import regimes
from xlexp.experiment.context import RunHooks
from xlexp.experiment.plan import make_plan
from xlexp.experiment.resume import unit_keys
from xlexp.experiment.runner import run_settings
from xlexp.results import units as ledger
from xlexp.results.store import check_writable

log = logging.getLogger(__name__)


def run(s: Settings, hooks: RunHooks | None = None) -> float:
    """Train up to ``langpair.budget`` sources chosen one by one (each a one-source run of the
    experiment stage), then predict the other rows. Returns the mean test primary metric over the
    measured cells, the objective of a normal run. ``s`` comes from
    :func:`xlexp.experiment.runner.resolve_settings`."""
    from xlexp.predict.predictor import next_source, predict_matrix
    from xlexp.views import console

    hooks = hooks or RunHooks()
    check_writable(hooks.records_dir or s.paths.results_dir, s.paths.cache_dir / "checkpoints")  # before any work
    if s.langpair.budget is None:
        raise XlexpError("active filling needs langpair.budget (N sources, or a share like 30%)")
    if s.regime.name != "zero_shot":
        raise XlexpError(
            f"langpair.budget (active filling) chooses zero-shot sources; regime={s.regime.name} has no "
            f"one-source rows to choose from: use regime=zero_shot, or drop langpair.budget"
        )
    if hooks.on_eval is not None or hooks.records_dir is not None:
        raise XlexpError("langpair.budget is for `xlexp run`, not for sweep trials: drop it from the sweep's overrides")
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
    )  # every candidate's splits checked before any work
    candidates, targets = list(plan.sources), list(plan.targets)
    budget = s.langpair.budget_of(len(candidates))
    keys = unit_keys(s, plan)
    by_source: dict[str, list[str]] = {}
    for unit, key in zip(plan.units, keys):
        by_source.setdefault(unit.source, []).append(key)
    trained_here: set[str] = set()
    metric, rule = spec.primary_metric, s.regime.selection
    log.info(
        "active filling: train %d of %d candidate sources (langpair.budget=%s), predict the other rows; %d target(s)",
        budget,
        len(candidates),
        s.langpair.budget,
        len(targets),
    )

    step_hooks = replace(hooks, show_matrix=False)
    while True:
        frame, measured = _measured(s, by_source, trained_here)
        if len(measured) >= budget:
            break
        y = _values(frame, s.experiment, metric, rule, candidates, targets)
        pick, why = next_source(s.task.name, s.model.name, candidates, targets, y, s.paths.data_dir, s.paths.cache_dir)
        log.info("active filling %d/%d: training source %s (%s)", len(measured) + 1, budget, pick, why)
        run_settings(one_source(s, pick), step_hooks)
        trained_here.add(pick)
        _, after = _measured(s, by_source, trained_here)
        if pick not in after:  # the step ran but its records are not all in the store: never loop on it
            raise XlexpError(f"active filling: the run of source {pick} left no complete records; see its log above")

    frame, measured = _measured(s, by_source, trained_here)
    log.info(
        "active filling: %d of %d sources measured (%s); predicting the other %d row(s)",
        len(measured),
        len(candidates),
        ", ".join(measured),
        len(candidates) - len(measured),
    )
    records = frame.assign(experiment=s.experiment)
    pred = predict_matrix(
        s.paths.results_dir,
        s.experiment,
        metric=metric,
        selection=rule,
        sources=candidates,
        targets=targets,
        data_dir=s.paths.data_dir,
        cache_dir=s.paths.cache_dir,
        records=records,
    )
    if hooks.show_matrix:
        console.show_predicted(pred.frame(), s.experiment, metric)
    note = pred.features.missing_note()
    log.info(
        "predicted %d cell(s) -> %s%s; `xlexp matrix --experiment %s --predicted` shows them with the measured cells",
        int((~pred.completion.observed).sum()),
        pred.path,
        f" ({note})" if note else "",
        s.experiment,
    )
    chosen = records[(records["split"] == "test") & (records["metric"] == metric) & (records["selection"] == rule)]
    return float(chosen["value"].mean())


def one_source(s: Settings, source: str) -> Settings:
    """The settings of one step: ``langpair.sources=[source]`` without a budget. ``resolved`` (the
    resolved config that the records' config hash and the tracker's run config come from) says the
    same, so a step's records are those of ``xlexp run langpair.sources=[source]`` run by hand."""
    langpair = {**s.resolved.get("langpair", {}), "sources": [source], "budget": None}
    return replace(
        s, langpair=replace(s.langpair, sources=[source], budget=None), resolved={**s.resolved, "langpair": langpair}
    )


def _measured(s: Settings, by_source: dict[str, list[str]], trained_here: set[str]) -> tuple[pd.DataFrame, list[str]]:
    """The committed records of the candidates whose every unit (one per seed) is in the store, and
    those candidates (in candidate order)."""
    found = ledger.committed_units(s.paths.results_dir, {k for keys in by_source.values() for k in keys})
    measured = [
        src for src, keys in by_source.items() if all(k in found for k in keys) and (not s.rerun or src in trained_here)
    ]
    frames = [found[k][1] for src in measured for k in by_source[src]]
    return (pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()), measured


def _values(
    frame: pd.DataFrame, experiment: str, metric: str, rule: str, candidates: list[str], targets: list[str]
) -> np.ndarray:
    """candidates x targets: the measured cells (``measured_matrix`` over these records), NaN elsewhere."""
    if frame.empty:
        return np.full((len(candidates), len(targets)), np.nan)
    from xlexp.predict.predictor import measured_matrix

    m = measured_matrix(".", experiment, metric=metric, selection=rule, records=frame.assign(experiment=experiment))
    return m.matrix.reindex(index=candidates, columns=targets).to_numpy(dtype=float)
