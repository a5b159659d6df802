"""Sweep files, search spaces, the objective and the trial budget: fast, no training."""

from __future__ import annotations

import math
from pathlib import Path

import optuna
import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState, create_trial

from xlexp import XlexpError
from xlexp.sweep.job import build_job
from xlexp.sweep.objective import ObjectiveError, ObjectiveTracker
from xlexp.sweep.space import Objective, default_study_name, format_value, load_sweep
from xlexp.sweep.status import status_lines
from xlexp.sweep.storage import budget_used, retried_numbers

pytestmark = pytest.mark.unit

# Optuna marks heartbeats and stale-trial retries experimental; xlexp relies on them on purpose
pytestmark = [
    pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning"),
    pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed to be used:UserWarning"),
]

ROOT = Path(__file__).resolve().parents[2]


def _write(tmp_path: Path, text: str, name: str = "s.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_issue_example_maps_to_optuna_distributions(tmp_path):
    spec = load_sweep(
        _write(
            tmp_path,
            """
base: [+experiment=quickstart]
objective: {metric: macro_f1, split: dev, on: source, selection: source_dev, direction: maximize}
params:
  optimizer.lr: tag(log, interval(5e-6, 1e-4))
  data.batch_size: choice(8, 16, 32)
  optimizer.weight_decay: interval(0.0, 0.1)
  trainer.epochs: interval(1, 4)
  data.max_length: range(32, 129, 32)
  langpair.sources: choice([eng],[ind])
  trainer.eval_every: 7
sampler: {name: tpe, seed: 0}
pruner: {name: median, n_warmup_steps: 1}
n_trials: 20
""",
        )
    )
    d = spec.distributions
    assert d["optimizer.lr"] == FloatDistribution(5e-6, 1e-4, log=True)
    assert d["data.batch_size"] == CategoricalDistribution([8, 16, 32])
    assert d["optimizer.weight_decay"] == FloatDistribution(0.0, 0.1)
    assert d["trainer.epochs"] == IntDistribution(1, 4)  # integer literals: an int range
    assert d["data.max_length"] == IntDistribution(32, 128, step=32)  # Hydra's range excludes the stop
    assert d["langpair.sources"] == CategoricalDistribution(["[eng]", "[ind]"])
    assert spec.fixed == ("trainer.eval_every=7",)
    # YAML 1.1 would read the key `on:` as True; the objective still parses
    assert spec.objective == Objective("macro_f1", "dev", "source", "source_dev", "maximize")
    assert spec.n_trials == 20 and spec.pruner == {"name": "median", "n_warmup_steps": 1}


@pytest.mark.parametrize("value", [3.2e-05, 1e-08, 16, 0.0, True, None, "eng", "cuda:0", "[eng,ind]", "a b", "it's"])
def test_formatted_values_parse_back_with_hydra(value):
    parsed = OverridesParser.create().parse_overrides([f"x={format_value(value)}"])[0].value()
    assert parsed == (["eng", "ind"] if value == "[eng,ind]" else value)


def test_inf_round_trips_for_failure_tests():
    parsed = OverridesParser.create().parse_overrides([f"x={format_value(math.inf)}"])[0].value()
    assert parsed == math.inf


@pytest.mark.parametrize(
    "text, message",
    [
        ("params:\n  optimizer.lr: interval(1e-5, 1e-4)\nobjective: {split: test}", "objective.split must be 'dev'"),
        (
            "params:\n  optimizer.lr: interval(1e-5, 1e-4)\nobjective: {selection: best}",
            "objective.selection must be one of",
        ),
        ("params: {optimizer.lr: 1e-4}", "no searched parameter"),
        ("params:\n  optimizer.lr: interval(1e-5", "cannot parse"),
        ("params:\n  optimizer.lr: interval(1e-5, 1e-4)\nsampler: {name: cmaes}", "sampler.name must be one of"),
        ("params:\n  optimizer.lr: interval(1e-5, 1e-4)\nn_trial: 3", "unknown key"),
    ],
)
def test_bad_sweep_files_fail_in_one_line(tmp_path, text, message):
    with pytest.raises(XlexpError, match=message):
        load_sweep(_write(tmp_path, text))


def test_shipped_sweeps_compose(tmp_path):
    """Every sweeps/*.yaml composes a valid trial config (typos in keys fail here, not on a GPU node)."""
    files = sorted((ROOT / "sweeps").glob("*.yaml"))
    assert {f.stem for f in files} >= {"quickstart", "xnli_xlmr_base", "sib200_xlmr_base"}
    for f in files:
        job = build_job(str(f), [], f"sqlite:///{tmp_path / 'x.db'}", None, None, None)
        assert job.study_name == f.stem and job.n_trials > 0
        assert job.run_line({p.key: 1e-5 for p in job.spec.params}).startswith("xlexp run ")


def test_preflight_catches_bad_keys_and_objectives(tmp_path):
    url = f"sqlite:///{tmp_path / 'x.db'}"
    bad_key = _write(tmp_path, "base: [model=tiny_random]\nparams:\n  optimizer.lrr: interval(1e-5, 1e-4)", "a.yaml")
    with pytest.raises(XlexpError, match="optimizer.lrr"):
        build_job(str(bad_key), [], url, None, None, None)
    no_targets = _write(
        tmp_path,
        "base: [model=tiny_random, regime.dev_targets=none]\n"
        "objective: {on: targets_mean}\nparams:\n  optimizer.lr: interval(1e-5, 1e-4)",
        "b.yaml",
    )
    with pytest.raises(XlexpError, match="targets_mean needs target dev"):
        build_job(str(no_targets), [], url, None, None, None)
    ok = _write(tmp_path, "base: [model=tiny_random]\nparams:\n  optimizer.lr: interval(1e-5, 1e-4)", "c.yaml")
    with pytest.raises(XlexpError, match="sets a parameter the sweep searches"):
        build_job(str(ok), ["optimizer.lr=1e-3"], url, None, None, None)
    # extra overrides make another study; the same overrides the same one
    spec = load_sweep(ok)
    assert default_study_name(spec, []) == "c"
    assert (
        default_study_name(spec, ["seed=1"])
        == default_study_name(spec, ["seed=1"])
        != default_study_name(spec, ["seed=2"])
    )


class _Unit:
    def __init__(self, select=("eng",), dev_targets=("ind", "jav")):
        self.select_languages, self.dev_targets = select, dev_targets


def _m(**scores) -> dict[str, dict[str, float]]:
    return {lang: {"accuracy": v[0], "macro_f1": v[1]} for lang, v in scores.items()}


EVALS = [  # (step, metrics): source dev accuracy peaks at step 20; ind peaks at 30; jav at 10
    (10, _m(eng=(0.5, 0.40), ind=(0.4, 0.30), jav=(0.6, 0.55))),
    (20, _m(eng=(0.8, 0.70), ind=(0.5, 0.45), jav=(0.3, 0.20))),
    (30, _m(eng=(0.8, 0.75), ind=(0.7, 0.65), jav=(0.2, 0.10))),
]


@pytest.mark.parametrize(
    "on, selection, expected, running0",
    [
        ("source", "source_dev", 0.70, 0.40),  # best source accuracy at step 20 (tie at 30 keeps 20)
        ("source", "last", 0.75, 0.40),
        ("targets_mean", "source_dev", (0.45 + 0.20) / 2, (0.30 + 0.55) / 2),
        ("targets_mean", "target_dev", (0.65 + 0.55) / 2, (0.30 + 0.55) / 2),  # each target at its own best step
        ("jav", "target_dev", 0.55, 0.55),
    ],
)
def test_objective_follows_the_selection_rule(on, selection, expected, running0):
    tracker = ObjectiveTracker(Objective(metric="macro_f1", on=on, selection=selection), primary_metric="accuracy")
    unit = _Unit()
    reported = [tracker.observe(unit, unit.select_languages, unit.dev_targets, step, m) for step, m in EVALS]
    assert [i for i, _ in reported] == [0, 1, 2]  # pruning steps: the n-th evaluation
    assert reported[0][1] == pytest.approx(running0)  # the running objective after the first evaluation
    assert tracker.value() == pytest.approx(expected) == reported[-1][1]


def test_objective_errors_and_several_units():
    tracker = ObjectiveTracker(Objective(on="targets_mean"), primary_metric="accuracy")
    with pytest.raises(ObjectiveError, match="targets_mean needs target dev"):
        tracker.observe("u", ("eng",), (), 5, _m(eng=(0.5, 0.5)))
    tracker = ObjectiveTracker(Objective(on="sun"), primary_metric="accuracy")
    with pytest.raises(ObjectiveError, match="'sun' is neither a source"):
        tracker.observe("u", ("eng",), ("ind",), 5, _m(eng=(0.5, 0.5), ind=(0.1, 0.1)))
    with pytest.raises(ObjectiveError, match="no dev evaluation"):
        ObjectiveTracker(Objective(), primary_metric="accuracy").value()
    # two units (e.g. two seeds): the mean of their objectives; evaluation indices keep counting
    tracker = ObjectiveTracker(Objective(metric="accuracy"), primary_metric="accuracy")
    tracker.observe("seed1", ("eng",), (), 5, _m(eng=(0.6, 0.0)))
    assert tracker.observe("seed2", ("eng",), (), 5, _m(eng=(0.8, 0.0))) == (1, pytest.approx(0.7))


def _trial(number: int, state: TrialState, **system_attrs):
    t = create_trial(
        state=state,
        value=0.5 if state == TrialState.COMPLETE else None,
        params={"x": 0.1},
        distributions={"x": FloatDistribution(0, 1)},
        system_attrs=system_attrs,
    )
    t.number = number
    return t


def test_budget_counts_retried_failures_once():
    trials = [
        _trial(0, TrialState.COMPLETE),
        _trial(1, TrialState.FAIL),
        _trial(2, TrialState.FAIL),
        _trial(3, TrialState.COMPLETE, failed_trial=1, retry_history=[1]),
        _trial(4, TrialState.WAITING, failed_trial=1, retry_history=[1, 3]),
    ]
    # trial 1 was re-queued as 3 (it does not count again), 2 failed for good (it counts), 4 is queued
    assert retried_numbers(trials) == {1, 3}
    assert budget_used(trials) == 4


def test_status_lists_trials_and_best_run_line():
    study = optuna.create_study(direction="maximize")
    study.set_user_attr(
        "xlexp_spec",
        {"base": ["model=tiny_random"], "fixed": [], "overrides": ["seed=3"], "objective": Objective().__dict__},
    )
    study.set_user_attr("n_trials", 3)
    dist = {
        "optimizer.lr": FloatDistribution(1e-5, 1e-3, log=True),
        "langpair.sources": CategoricalDistribution(["[eng]"]),
    }
    study.add_trial(
        create_trial(
            value=0.4,
            params={"optimizer.lr": 1e-4, "langpair.sources": "[eng]"},
            distributions=dist,
            user_attrs={"experiment": "s-t0000"},
        )
    )
    study.add_trial(
        create_trial(
            value=0.6,
            params={"optimizer.lr": 3e-4, "langpair.sources": "[eng]"},
            distributions=dist,
            user_attrs={"experiment": "s-t0001"},
        )
    )
    study.add_trial(
        create_trial(
            state=TrialState.FAIL,
            params={"optimizer.lr": 1e-3, "langpair.sources": "[eng]"},
            distributions=dist,
            user_attrs={"fail_reason": "FloatingPointError: non-finite training loss"},
        )
    )
    text = "\n".join(status_lines(study, "postgresql://me:hunter2@db:5432/optuna"))
    assert "hunter2" not in text and "postgresql://me:***@db:5432/optuna" in text
    assert "trials 3/3: 2 complete, 0 pruned, 1 failed" in text
    assert "reason: FloatingPointError: non-finite training loss" in text
    assert "best: trial 1, macro_f1 = 0.6000 (experiment s-t0001" in text
    assert "xlexp run model=tiny_random seed=3 optimizer.lr=0.0003 'langpair.sources=[eng]'" in text


def test_workers_get_the_storage_url_from_the_environment_not_argv(tmp_path, monkeypatch):
    from xlexp.sweep.processes import worker_command, worker_env

    f = _write(tmp_path, "base: [model=tiny_random]\nparams:\n  optimizer.lr: interval(1e-5, 1e-4)", "w.yaml")
    url = "postgresql://me:hunter2@db/optuna"
    job = build_job(str(f), [], url, None, None, None)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert not any("hunter2" in a for a in worker_command(job, 1))  # `ps` shows argv to every user
    env = worker_env(job, 1, 2, gpus=["0", "1"])
    assert env["XLEXP_SWEEP_STORAGE"] == url and env["CUDA_VISIBLE_DEVICES"] == "1"  # one GPU per worker
    assert worker_env(job, 3, 4, gpus=[])["OMP_NUM_THREADS"] == str(max(1, (__import__("os").cpu_count() or 1) // 4))


def test_slurm_launcher_config_composes_to_submitit_slurm():
    from hydra import compose, initialize_config_dir

    from xlexp.config.compose import CONF_DIR

    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose(
            "sweep_worker",
            overrides=["hydra/launcher=xlexp_slurm", "sweep_file=x", "study=s", "n_trials=8"],
            return_hydra_config=True,
        )
    launcher = cfg.hydra.launcher
    assert (
        launcher._target_.endswith("SlurmLauncher") and launcher.gpus_per_node == 1 and launcher.array_parallelism > 1
    )
    assert "storage" not in cfg  # the URL (maybe with a password) stays in the environment
