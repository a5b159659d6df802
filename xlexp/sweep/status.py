"""``xlexp sweep --status``: a study's trials, their states and times, and the best config.

Reads the Optuna storage only (never the results store): one line per trial, then the best
trial's ``xlexp run`` line and the ``xlexp matrix`` command that shows its records. A RUNNING trial
whose heartbeat is older than the grace period shows as ``RUNNING (stale: no heartbeat for 47 s)``:
its worker is gone, and the next worker that asks fails and re-queues it (``--status`` itself
changes nothing).
"""

from __future__ import annotations

import datetime
import os
import shlex
from pathlib import Path

import optuna
from optuna.trial import FrozenTrial, TrialState

from xlexp.errors import XlexpError
from xlexp.sweep.job import DEFAULT_HEARTBEAT_S, SPEC_ATTR
from xlexp.sweep.space import format_value, trial_overrides
from xlexp.sweep.storage import STORAGE_ENV, budget_used, fail_reason, grace_period_s, heartbeat_ages, open_storage
from xlexp.tracking.masking import mask_url


def _fmt_value(v) -> str:
    if isinstance(v, float):
        return f"{v:.3g}"
    return format_value(v)


def _duration(t: FrozenTrial) -> str:
    if t.datetime_start is None:
        return "-"
    end = t.datetime_complete or datetime.datetime.now()
    secs = int((end - t.datetime_start).total_seconds())
    return f"{secs // 60}m{secs % 60:02d}s" if secs >= 60 else f"{secs}s"


def counts(study: optuna.Study) -> dict[str, int]:
    out: dict[str, int] = {}
    for t in study.get_trials(deepcopy=False):
        out[t.state.name] = out.get(t.state.name, 0) + 1
    return out


def best_trial(study: optuna.Study) -> FrozenTrial | None:
    done = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))]
    if not done:
        return None
    pick = max if study.direction == optuna.study.StudyDirection.MAXIMIZE else min
    return pick(done, key=lambda t: t.value)


def stale_running(study: optuna.Study, heartbeat_s: int | None = None) -> dict[int, float]:
    """RUNNING trials whose heartbeat is older than the grace period (their worker is gone; the next
    worker that asks fails and re-queues them): trial number -> seconds since the last heartbeat."""
    heartbeat_s = int(heartbeat_s or study.user_attrs.get("heartbeat_s") or DEFAULT_HEARTBEAT_S)
    try:
        ages = heartbeat_ages(study)
    except Exception:  # a status line is not worth failing over
        return {}
    return {n: age for n, age in ages.items() if age > grace_period_s(heartbeat_s)}


def status_lines(study: optuna.Study, storage_url: str) -> list[str]:
    trials = study.get_trials(deepcopy=False)
    attrs = study.user_attrs
    spec = attrs.get(SPEC_ATTR, {})
    objective = spec.get("objective", {})
    n_total = attrs.get("n_trials", "?")
    c = counts(study)
    stale = stale_running(study) if c.get("RUNNING") else {}
    lines = [
        f"study {study.study_name}  ({mask_url(storage_url)})",
        f"objective: {objective.get('split', 'dev')} {objective.get('metric', '?')} on {objective.get('on', '?')} "
        f"({objective.get('selection', '?')}, {study.direction.name.lower()}); "
        f"trials {budget_used(trials)}/{n_total}: {c.get('COMPLETE', 0)} complete, {c.get('PRUNED', 0)} pruned, "
        f"{c.get('FAIL', 0)} failed, {c.get('RUNNING', 0)} running{f' ({len(stale)} stale)' if stale else ''}, "
        f"{c.get('WAITING', 0)} waiting",
        f"{'#':>4}  {'state':<8}  {'value':>7}  {'time':>7}  {'evals':>5}  params",
    ]
    for t in trials:
        value = f"{t.value:.4f}" if t.value is not None else "-"
        params = " ".join(f"{k}={_fmt_value(v)}" for k, v in t.params.items())
        extra = []
        if "failed_trial" in t.system_attrs:
            extra.append(f"retry of #{t.system_attrs['retry_history'][-1]}")
        reason = fail_reason(study, t)
        if reason:
            extra.append(f"reason: {reason}")
        state = f"RUNNING (stale: no heartbeat for {stale[t.number]:.0f} s)" if t.number in stale else t.state.name
        lines.append(
            f"{t.number:>4}  {state:<8}  {value:>7}  {_duration(t):>7}  {len(t.intermediate_values):>5}  "
            f"{params}{'  [' + '; '.join(extra) + ']' if extra else ''}"
        )
    best = best_trial(study)
    if best is None:
        lines.append("best: no complete trial yet")
        return lines
    base = [*spec.get("base", []), *spec.get("fixed", []), *spec.get("overrides", [])]
    overrides = [*base, *trial_overrides(best.params)]
    if not any(o.lstrip("+~").startswith("name=") for o in overrides):  # its own experiment: never mixed into another
        overrides.append(f"name={study.study_name}_best")
    run = "xlexp run " + " ".join(shlex.quote(o) for o in overrides)
    lines += [
        f"best: trial {best.number}, {objective.get('metric', 'value')} = {best.value:.4f} "
        f"(experiment {best.user_attrs.get('experiment', '?')}, run {best.user_attrs.get('run_id', '?')})",
        f"  {run}",
        f"  xlexp matrix --experiment {best.user_attrs.get('experiment', '?')}",
    ]
    return lines


def print_status(storage_url: str, study_name: str, heartbeat_s: int = DEFAULT_HEARTBEAT_S) -> None:
    """The status of one study whose name is known (after a sweep ran)."""
    study = optuna.load_study(study_name=study_name, storage=open_storage(storage_url, heartbeat_s))
    print("\n".join(status_lines(study, storage_url)))


def show_status(urls: list[str], study_name: str | None) -> int:
    shown = 0
    for url in urls:
        storage = open_storage(url, DEFAULT_HEARTBEAT_S)
        names = [s.study_name for s in optuna.study.get_all_study_summaries(storage, include_best_trial=False)]
        for name in names:
            if study_name and name != study_name:
                continue
            if shown:
                print()
            print("\n".join(status_lines(optuna.load_study(study_name=name, storage=storage), url)))
            shown += 1
    if not shown:
        where = ", ".join(mask_url(u) for u in urls)
        if not study_name:  # a fresh store: nothing to show is not an error
            print(
                f"no sweep studies yet{f' in {where}' if where else ''}; start one with `xlexp sweep sweeps/NAME.yaml`"
            )
            return 0
        raise XlexpError(
            f"no sweep study named {study_name!r} in {where or 'no storage'}; "
            f"start one with `xlexp sweep sweeps/NAME.yaml`"
        )
    return 0


def status_urls(storage: str | None, results_dir: Path) -> list[str]:
    """The storages ``--status`` looks in: the one named, else every SQLite study under <results>/sweeps/."""
    if storage or os.environ.get(STORAGE_ENV):
        return [storage or os.environ[STORAGE_ENV]]
    folder = results_dir / "sweeps"
    return [f"sqlite:///{p.resolve()}" for p in sorted(folder.glob("*.db"))]
