"""Task kinds (xlexp.experiment.kinds): every task type has one, and a new kind is one module (its
task type and its kind) plus a task YAML, registered from outside the package as a regime can be.
Two toy kinds show both ways a kind shapes a run: its own tokenization inside the regime's
classifier chain, and a unit executor of its own that the runner picks without testing a type."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import TINY, compose_cfg
from xlexp.config.compose import CONF_DIR
from xlexp.config.paths import list_configs
from xlexp.data.tokenized import tokenize_sequences
from xlexp.errors import XlexpError
from xlexp.experiment import executors, kinds
from xlexp.experiment.runner import resolve_settings, run_experiment
from xlexp.results.store import load_records
from xlexp.tasks import types
from xlexp.tasks.spec import load_split
from xlexp.tasks.types.sentence_classification import SentenceClassification


@pytest.mark.unit
def test_every_task_type_has_a_kind_and_every_shipped_task_runs_through_one():
    assert set(types.available()) <= set(kinds.available())
    for name in list_configs("task"):
        task = yaml.safe_load((Path(CONF_DIR) / "task" / f"{name}.yaml").read_text())
        assert kinds.get(task["type"]).name == task["type"], name


# -- the toy module: what a user writes (a task type that reads the rows, a kind that carries them) ---
SEEN: list[str] = []


class ReversedType(SentenceClassification):
    """Reads NusaX-layout rows like sentence classification."""

    name = "toy_reversed"


class ReversedKind(kinds.TaskKind):
    """A sentence classifier that reads each text's words backwards: its own ``tokenize``; the rest
    of the chain (head, loss, scores, counts) is the default one-label-per-example kind's."""

    name = "toy_reversed"

    def tokenize(self, spec, tokenizer, examples, max_length, side=""):
        texts = [" ".join(reversed(e.text.split())) for e in examples]
        SEEN.extend(texts)
        return tokenize_sequences(tokenizer(texts, truncation=False)["input_ids"], examples, max_length)


class MajorityType(SentenceClassification):
    name = "toy_majority"


class MajorityKind(kinds.TaskKind):
    """No model at all: its executor predicts the source's most frequent train label everywhere."""

    name = "toy_majority"
    executor = "toy_majority"


def majority_unit(ctx, unit, index, out) -> None:
    s = ctx.settings
    train = [e.label for e in load_split(ctx.spec, unit.source, "train", s.paths.data_dir, s.data.source)]
    label = int(np.bincount(train).argmax())
    for target in unit.targets:
        gold = np.asarray([e.label for e in load_split(ctx.spec, target, "test", s.paths.data_dir, s.data.source)])
        out.add(target, "test", {"accuracy": float(np.mean(gold == label))}, len(gold), s.regime.selection, None)


def task_yaml(name: str) -> str:
    raw = yaml.safe_load((Path(CONF_DIR) / "task" / "nusax_senti.yaml").read_text())
    raw.update(name=name, type=name, metrics=["accuracy"], primary_metric="accuracy")
    return yaml.safe_dump(raw)


@pytest.fixture
def toy_kinds(tmp_path, monkeypatch):
    folder = tmp_path / "conf"
    (folder / "task").mkdir(parents=True)
    for name in ("toy_reversed", "toy_majority"):
        (folder / "task" / f"{name}.yaml").write_text(task_yaml(name))
    monkeypatch.setenv("XLEXP_CONFIG_PATH", str(folder))
    for t in (ReversedType, MajorityType):
        types.register(t)
    for k in (ReversedKind, MajorityKind):
        kinds.register(k)
    executors.register("toy_majority", majority_unit)
    SEEN.clear()
    yield
    for name in ("toy_reversed", "toy_majority"):
        types.REGISTRY.unregister(name)
        kinds.REGISTRY.unregister(name)
    executors.unregister("toy_majority")


def test_a_kind_from_outside_tokenizes_its_own_way_in_the_regime_chain(dirs, toy_kinds):
    run_experiment(
        compose_cfg(
            dirs,
            *TINY,
            "task=toy_reversed",
            "langpair.sources=[eng]",
            "langpair.targets=[eng,ind]",
            "trainer.epochs=1",
            "name=rev",
        )
    )
    df = load_records(dirs["results"])
    test = df[df["split"] == "test"]
    assert set(test["task"]) == {"toy_reversed"} and set(test["target"]) == {"eng", "ind"}
    assert {"source_dev", "last"} <= set(test["selection"]) and set(test["n_examples"]) == {40}
    first = load_split(_spec("toy_reversed"), "eng", "train", dirs["data"])[0].text  # tokenized reversed, not as read
    assert " ".join(reversed(first.split())) in SEEN and first not in SEEN


def test_a_kind_from_outside_names_its_own_unit_executor(dirs, toy_kinds):
    run_experiment(
        compose_cfg(
            dirs, *TINY, "task=toy_majority", "langpair.sources=[eng]", "langpair.targets=[eng,jav]", "name=maj"
        )
    )
    df = load_records(dirs["results"])
    assert set(df["split"]) == {"test"} and set(df["metric"]) == {"accuracy"}  # no training: no dev records
    gold = [e.label for e in load_split(_spec("toy_majority"), "jav", "test", dirs["data"])]
    train = [e.label for e in load_split(_spec("toy_majority"), "eng", "train", dirs["data"])]
    expected = float(np.mean(np.asarray(gold) == np.bincount(train).argmax()))
    assert df[df["target"] == "jav"]["value"].tolist() == [expected]


@pytest.mark.unit
def test_a_type_without_a_kind_and_a_family_a_kind_does_not_take_are_one_line_at_settings(dirs, toy_kinds):
    kinds.REGISTRY.unregister("toy_majority")
    with pytest.raises(XlexpError, match=r"unknown task kind 'toy_majority' \(task 'toy_majority' has no task kind"):
        resolve_settings(compose_cfg(dirs, "task=toy_majority", "model=tiny_random"))
    with pytest.raises(XlexpError, match=r"task 'tatoeba_mt' \(type generation\) needs a seq2seq or decoder model"):
        resolve_settings(compose_cfg(dirs, "task=tatoeba_mt", "model=tiny_random"))


def _spec(name: str):
    from xlexp.tasks.spec import load_task

    return load_task(name)
