"""The regime x task-type grid run end to end with tiny models (issue #27): every pair a regime
declares runs and its records say exactly what happened (regime, K, shot set, selection rule, source
and target shape); every other pair is refused before any work (``test_numbers_right``). Extractive
QA's pairs are run by tests/tasks/test_qa.py (zero-shot and few-shot on the real SQuAD-it/DRCD data);
retrieval's by tests/tasks/test_task_types.py (zero-shot) and tests/experiment/test_probe.py (probe)."""

from __future__ import annotations

import random

import pandas as pd
import pytest

from conftest import compose_cfg, write_nusax_like
from tests.tasks.test_task_types import write_conll, write_pawsx
from xlexp import load_records, run_experiment
from xlexp.experiment import regimes

pytestmark = pytest.mark.integration

QUICK = [
    "optimizer.lr=1e-3",
    "trainer.epochs=1",
    "data.batch_size=8",
    "trainer.progress=false",
    "data.max_train_examples=24",
    "data.max_eval_examples=12",
]


def _parallel(root) -> None:
    rng = random.Random(2)
    folder = root / "tatoeba"
    folder.mkdir(parents=True, exist_ok=True)
    words = ["haus", "hund", "katze", "baum", "auto", "ist", "groß", "klein"]
    for code in ("deu", "nld"):
        src = [" ".join(rng.choice(words) for _ in range(4)) for _ in range(80)]
        (folder / f"tatoeba.{code}-eng.{code}").write_text("".join(s + "\n" for s in src), encoding="utf-8")
        (folder / f"tatoeba.{code}-eng.eng").write_text("".join(s.upper() + "\n" for s in src), encoding="utf-8")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("grid") / "data"
    write_nusax_like(root, sizes=(40, 12, 12))
    write_pawsx(root, sizes=(40, 12, 12))
    write_conll(root, "wikiann", sizes=(30, 10, 10))
    _parallel(root)
    return root


# task type -> (task, source, targets, extra overrides)
TASKS = {
    "sentence_classification": ("nusax_senti", "eng", "eng,ind", []),
    "pair_classification": ("pawsx", "en", "en,de", []),
    "token_classification": ("wikiann", "en", "en,de", []),
    "generation": ("tatoeba_mt", "deu", "deu,nld", ["model.max_new_tokens=8", "trainer.eval_every=100000"]),
}
SECOND = {
    "sentence_classification": "ind",
    "pair_classification": "de",
    "token_classification": "de",
    "generation": "nld",
}
MODEL = {"generation": "tiny_random_seq2seq"}
GRID = [
    (r, t)
    for r in ("zero_shot", "few_shot", "full", "multi_source", "icl")
    for t in TASKS
    if regimes.get(r).task_types is None or t in regimes.get(r).task_types
]


@pytest.mark.parametrize("regime,task_type", GRID)
def test_each_declared_pair_runs_and_its_records_say_what_happened(tmp_path, data, regime, task_type):
    task, source, targets, extra = TASKS[task_type]
    model = "tiny_random_decoder" if regime == "icl" else MODEL.get(task_type, "tiny_random")
    dirs = {"data": data, "results": tmp_path / "results", "cache": tmp_path / "cache"}
    args = [
        *QUICK,
        *extra,
        f"task={task}",
        f"model={model}",
        f"regime={regime}",
        f"langpair.targets=[{targets}]",
        f"name={regime}-{task_type}",
    ]
    if regime == "multi_source":
        args.append(f"langpair.sources=[{source},{SECOND[task_type]}]")
    elif regime != "full":
        args.append(f"langpair.sources=[{source}]")
    if regime == "few_shot":
        args += ["regime.k=[2]", "regime.shot_sets=1", "regime.k_per=total"]
    if regime == "icl":
        args += ["regime.k=[0,2]", "model.trim_vocab=false"]
    run_experiment(compose_cfg(dirs, *args))
    df = load_records(dirs["results"])
    test = df[df["split"] == "test"]
    assert len(test) and set(test["regime"]) == {regime} and set(test["task"]) == {task}
    k = pd.to_numeric(test["k"], errors="coerce")
    if regime == "few_shot":
        shots = test[k > 0]
        assert len(shots) and set(shots["k"].astype(int)) == {2} and shots["shot_set"].notna().all()
        assert set(shots["selection"]) <= {"last", "target_dev"}
    elif regime == "icl":
        assert set(k.fillna(-1).astype(int)) == {0, 2} and set(test["selection"]) == {"none"}
    else:
        assert (k.isna() | (k == 0)).all() and test["shot_set"].isna().all()
    if regime == "full":
        assert (test["source"] == test["target"]).all()
    if regime == "multi_source":
        assert set(test["source"]) == {f"{source}+{SECOND[task_type]}"}
