from pathlib import Path

import pytest

from xlexp import XlexpError
from xlexp.results.languages import display_name, normalize_tag
from xlexp.tasks.spec import TaskSpec, load_split, load_task

pytestmark = pytest.mark.unit


def test_registry_lists_tasks_and_rejects_unknown():
    with pytest.raises(XlexpError, match="Available tasks: .*nusax_senti.*sib200"):
        load_task("nusax_sentiment")


def test_sib200_has_205_languages_with_scripts_kept():
    spec = load_task("sib200")
    assert len(spec.languages) == 205
    assert normalize_tag("zho_Hans") != normalize_tag("zho_Hant")


def test_language_normalisation_and_names():
    assert normalize_tag("eng") == "en"
    assert normalize_tag("swh_Latn") == normalize_tag("sw") == normalize_tag("swa") == normalize_tag("swh") == "sw"
    assert normalize_tag("en_ewt") == "en"
    assert display_name("bug") == "Buginese"


def test_load_split_reads_labels(data_dir):
    spec = load_task("nusax_senti")
    ex = load_split(spec, "ind", "dev", data_dir)
    assert len(ex) == 20 and {e.label for e in ex} == {0, 1, 2}


def test_missing_split_names_folder_and_hub(data_dir):
    spec = load_task("nusax_senti")
    with pytest.raises(XlexpError) as e:
        load_split(spec, "bug", "train", data_dir)
    msg = str(e.value)
    assert "buginese/train.csv" in msg and "indonlp/NusaX-senti" in msg and "XLEXP_DATA_DIR" in msg


def test_unknown_language_lists_valid_ones(data_dir):
    spec = load_task("nusax_senti")
    with pytest.raises(XlexpError, match="Valid languages \\(12\\): ace, ban"):
        load_split(spec, "xxx", "train", data_dir)


@pytest.mark.parametrize(
    "line, expected",
    [
        ("1,some text,positive,extra\n", r"test.csv:3: expected 3 columns"),
        ("1,,positive\n", r"test.csv:3: empty text"),
        ("1,some text,joyful\n", r"test.csv:3: label 'joyful' is not in the task's label list"),
    ],
)
def test_malformed_rows_name_file_and_line(data_dir, line, expected):
    path = Path(data_dir) / "nusax_senti" / "english" / "test.csv"
    rows = path.read_text().splitlines(keepends=True)
    path.write_text(rows[0] + rows[1] + line + "".join(rows[2:]))
    with pytest.raises(XlexpError, match=expected):
        load_split(load_task("nusax_senti"), "eng", "test", data_dir)


def test_zero_examples_is_an_error(data_dir):
    path = Path(data_dir) / "nusax_senti" / "english" / "test.csv"
    path.write_text("id,text,label\n")
    with pytest.raises(XlexpError, match="zero examples"):
        load_split(load_task("nusax_senti"), "eng", "test", data_dir)


def test_duplicate_language_entries_rejected():
    base = dict(name="t", type="sentence_classification", text_fields=["text"], label_field="label", labels=["a", "b"])
    with pytest.raises(XlexpError, match="duplicate language entries \\['eng'\\]"):
        TaskSpec.from_config({**base, "languages": ["eng", "fra", "eng"]})


def test_real_sib200_reads_when_shared_data_exists():
    from conftest import SHARED_DATA

    if not (SHARED_DATA / "sib200").is_dir():
        pytest.skip("../shared/data not present")
    ex = load_split(load_task("sib200"), "zho_Hant", "test", SHARED_DATA)
    assert len(ex) == 204


def test_every_language_of_every_shipped_task_has_a_family_and_a_name():
    """#20.7: arq had no family while ary had one; 2-letter and treebank codes (en, en_ewt) had none."""
    from xlexp.results.languages import info
    from xlexp.tasks.spec import available_tasks, load_task

    missing = {t: [c for c in load_task(t).languages if not info(c).family] for t in available_tasks()}
    assert not {t: m for t, m in missing.items() if m}
    assert info("arq").family == info("ary").family == "Afro-Asiatic"
    assert info("en_ewt").family == "Indo-European" and info("pcm").family == "Creole"
