"""Bad input, caught before any work with one line that names the file (and line) or the key and
its fix (issues #14 and #20). See docs/faults.md for the catalogue."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.conftest import TINY, compose_cfg, write_nusax_like
from tests.faults.test_fault_store import cli, error_lines, n_records
from xlexp import TaskSpec, XlexpError, load_records, run_experiment
from xlexp.config.paths import CONF_DIR

SMALL = [*TINY, "trainer.epochs=1", "langpair.sources=[eng]", "langpair.targets=[eng,ind]", "regime.dev_targets=none"]


@pytest.fixture
def dirs(tmp_path: Path) -> dict[str, Path]:
    data = write_nusax_like(tmp_path / "data", sizes=(30, 12, 18))
    return {"data": data, "results": tmp_path / "results", "cache": tmp_path / "cache"}


def nusax_yaml() -> dict:
    return yaml.safe_load((Path(CONF_DIR) / "task" / "nusax_senti.yaml").read_text())


# -- strict YAML -------------------------------------------------------------------------------
@pytest.mark.unit
@pytest.mark.parametrize(
    "edit, message",
    [
        (
            lambda d: d.update(primary_metrc="accuracy"),
            r"unknown key 'primary_metrc' .*did you mean 'primary_metric'\?",
        ),
        (lambda d: d.update(lables=d.pop("labels")), r"unknown key 'lables' .*did you mean 'labels'\?"),
        (
            lambda d: d["local"].update(split_name={"dev": "valid"}),
            r"unknown key 'local.split_name' .*did you mean 'local.split_names'\?",
        ),
        (lambda d: d.update(label_mapp={"*": {}}), r"unknown key 'label_mapp' .*did you mean 'label_map'\?"),
        (lambda d: d["hub"].update(confg="x"), r"unknown key 'hub.confg' .*did you mean 'hub.config'\?"),
        (
            lambda d: d.update(languages={"eng": {"folder": "english", "tga": "en"}}),
            r"unknown key 'languages.eng.tga' .*did you mean 'languages.eng.tag'\?",
        ),
        (
            lambda d: d.update(pivot="eng"),
            r"unknown key 'pivot' .*task type sentence_classification",
        ),  # retrieval's key
    ],
)
def test_an_unknown_task_key_is_refused_with_the_closest_valid_one(edit, message):
    """#20.4: primary_metrc, local.split_name, label_mapp ran and wrote records (primary_metrc silently
    switched model selection to accuracy); lables: must be named as unknown too."""
    raw = nusax_yaml()
    edit(raw)
    with pytest.raises(XlexpError, match=message):
        TaskSpec.from_config(raw)


def test_a_typo_in_a_user_task_yaml_stops_the_cli_in_one_line(dirs, tmp_path):
    conf = tmp_path / "my_conf" / "task"
    conf.mkdir(parents=True)
    raw = nusax_yaml()
    raw.update(name="my_task", primary_metrc="accuracy")
    (conf / "my_task.yaml").write_text(yaml.safe_dump(raw))
    out = cli(dirs, "run", *SMALL, "task=my_task", env_extra={"XLEXP_CONFIG_PATH": str(tmp_path / "my_conf")})
    assert out.returncode == 2
    lines = error_lines(out.stderr)
    assert len(lines) == 1 and "did you mean 'primary_metric'?" in lines[0]
    assert "Traceback" not in out.stderr and n_records(dirs) == 0


def test_an_unknown_model_key_says_did_you_mean(dirs):
    out = cli(dirs, "run", *SMALL, "+model.peeft=lora")
    assert out.returncode == 2 and "did you mean 'model.peft'?" in error_lines(out.stderr)[0]


def test_an_unknown_model_lists_only_public_configs(dirs):
    """#14.13: model=nope listed the private _encoder base file among the options."""
    out = cli(dirs, "run", "model=nope")
    assert out.returncode != 0 and "tiny_random" in out.stderr
    assert "_encoder" not in out.stderr


# -- the data, read before training ------------------------------------------------------------
def test_a_bad_row_in_a_target_test_file_fails_before_training(dirs):
    """#20.2: without trimming, a bad row in a target's test file was found only after training."""
    bad = dirs["data"] / "nusax_senti" / "indonesian" / "test.csv"
    bad.write_text(bad.read_text() + "99,some text,very_positive\n")
    out = cli(dirs, "run", *SMALL, "model.trim_vocab=false")
    assert out.returncode == 2
    lines = error_lines(out.stderr)
    assert len(lines) == 1 and f"{bad}:20: label 'very_positive'" in lines[0]
    assert "training source model" not in out.stderr and n_records(dirs) == 0


@pytest.mark.parametrize("trim", ["true", "false"])
def test_an_empty_train_split_of_a_target_only_language_is_ignored(dirs, trim):
    """#20.3: a header-only train file of a language never trained on stopped trim_vocab runs."""
    train = dirs["data"] / "nusax_senti" / "javanese" / "train.csv"
    train.write_text("id,text,label\n")
    run_experiment(
        compose_cfg(
            dirs,
            *TINY,
            "trainer.epochs=1",
            "langpair.sources=[eng]",
            "langpair.targets=[eng,jav]",
            f"model.trim_vocab={trim}",
            "regime.dev_targets=none",
        )
    )
    df = load_records(dirs["results"])
    assert set(df[df.split == "test"].target) == {"eng", "jav"}
    with pytest.raises(XlexpError, match=r"train.csv: split 'train' of language 'jav' has zero examples"):
        run_experiment(
            compose_cfg(
                dirs,
                *TINY,
                "trainer.epochs=1",
                "langpair.sources=[jav]",
                "langpair.targets=[eng]",
                "regime.dev_targets=none",
            )
        )


@pytest.mark.unit
def test_a_conll_line_with_an_empty_token_is_rejected(tmp_path):
    """#20.5: " O" (a space before the tag) was split on one space and accepted as an empty token."""
    from xlexp.tasks.spec import load_split, load_task

    spec = load_task("masakhapos")
    folder = tmp_path / "masakhapos" / "data" / "hau"
    folder.mkdir(parents=True)
    (folder / "test.txt").write_text("Ina NOUN\n O\n\n")
    with pytest.raises(XlexpError, match=r"test.txt:2: expected 2 fields \(token TAG\), found 1"):
        load_split(spec, "hau", "test", tmp_path)
    (folder / "test.txt").write_text("Ina\tNOUN\n\tNOUN\n\n")
    with pytest.raises(XlexpError, match=r"test.txt:2: empty token or tag"):
        load_split(spec, "hau", "test", tmp_path)
    (folder / "test.txt").write_text("Ina   NOUN\r\nda\tADP\n10 000 NUM\n\n")  # runs of spaces, tabs, CRLF are fine,
    assert load_split(spec, "hau", "test", tmp_path)[0].tokens == ("Ina", "da", "10 000")  # and words with spaces (UD)


def test_non_utf8_bytes_name_the_file_and_line(dirs):
    bad = dirs["data"] / "nusax_senti" / "english" / "valid.csv"
    text = bad.read_bytes().split(b"\n")
    text[3] = text[3] + " caf\xe9".encode("latin1")
    bad.write_bytes(b"\n".join(text))
    out = cli(dirs, "run", *SMALL)
    assert out.returncode == 2
    lines = error_lines(out.stderr)
    assert len(lines) == 1 and f"{bad}:4: not UTF-8 (byte 0xe9" in lines[0] and "iconv" in lines[0]


def test_a_10mb_line_is_read_and_truncated_not_a_crash(dirs):
    train = dirs["data"] / "nusax_senti" / "english" / "train.csv"
    train.write_text(train.read_text() + "999," + "good " * 2_000_000 + ",positive\n")
    run_experiment(compose_cfg(dirs, *SMALL))
    assert not load_records(dirs["results"]).empty


def test_a_label_outside_the_list_in_one_language_names_the_label_map_fix(dirs):
    """Mixed label sets across languages: a target using another label name."""
    test = dirs["data"] / "nusax_senti" / "indonesian" / "test.csv"
    test.write_text(test.read_text().replace(",positive\n", ",pos\n", 1))
    with pytest.raises(
        XlexpError, match=r"label 'pos' is not in the task's label list .*label_map: \{ind: \{'pos': <label>\}\}"
    ):
        run_experiment(compose_cfg(dirs, *SMALL))
    assert load_records(dirs["results"]).empty
