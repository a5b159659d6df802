"""regime=probe and bitext mining: bad input ends in one line before any model is loaded or text
embedded (issue #29). See docs/faults.md."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import compose_cfg, write_nusax_like
from xlexp import XlexpError, run_experiment

pytestmark = pytest.mark.integration

PROBE = [
    "model=tiny_random",
    "trainer.progress=false",
    "regime=probe",
    "langpair.sources=[eng]",
    "langpair.targets=[eng,ind]",
]


@pytest.fixture
def dirs(tmp_path: Path) -> dict[str, Path]:
    data = write_nusax_like(tmp_path / "data", sizes=(30, 12, 18))  # 10 train examples per label
    return {"data": data, "results": tmp_path / "results", "cache": tmp_path / "cache"}


def _refused(dirs, *overrides: str) -> str:
    with pytest.raises(XlexpError) as e:
        run_experiment(compose_cfg(dirs, *overrides))
    msg = str(e.value)
    assert "\n" not in msg
    assert not (dirs["results"] / "runs").exists() or not any((dirs["results"] / "runs").iterdir())
    assert not (dirs["cache"] / "embeddings").exists()  # nothing was embedded
    return msg


def test_fault_model_without_pooling_definition_is_one_line(dirs):
    msg = _refused(dirs, *PROBE, "model.embedding.pooling=null")
    assert "model 'tiny_random' has no sentence-embedding definition" in msg and "model.embedding.pooling=mean" in msg
    assert not (dirs["cache"] / "models").exists()  # refused before the model was built


def test_fault_fewer_than_per_label_examples_of_a_label_is_one_line(dirs):
    msg = _refused(dirs, *PROBE, "regime.per_label=11")
    assert "regime.per_label=11" in msg and "source 'eng'" in msg and "regime.per_label<=10" in msg


def test_fault_task_kind_without_sentence_labels_is_refused_before_the_data(dirs):
    msg = _refused(dirs, "model=tiny_random", "regime=probe", "task=masakhapos", "langpair=masakhapos_en_all")
    assert "task type 'token_classification'" in msg and "regime=probe" in msg


def test_fault_bitext_sides_of_different_lengths_is_one_line(dirs):
    folder = dirs["data"] / "tatoeba"
    folder.mkdir()
    (folder / "tatoeba.afr-eng.afr").write_text("een\ntwee\ndrie\n", encoding="utf-8")
    (folder / "tatoeba.afr-eng.eng").write_text("one\ntwo\n", encoding="utf-8")
    msg = _refused(
        dirs,
        "model=tiny_random",
        "trainer.progress=false",
        "regime=probe",
        "task=tatoeba",
        "langpair=tatoeba_all",
        "langpair.targets=[afr]",
    )
    assert "tatoeba.afr-eng.afr has 3 lines but" in msg and "line-aligned" in msg
