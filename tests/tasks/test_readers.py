"""Readers as users' files are (issue #33): TSV/CSV with standard quoting, the `quoting:` option, JSONL,
a per-language label file, and a bad row's error that names the file, the line, what was expected and
the option that fixes it."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from xlexp import XlexpError
from xlexp.tasks.spec import TaskSpec, load_split, load_task

pytestmark = pytest.mark.unit

LABELS = ["business", "health", "politics", "sports"]
# MasakhaNEWS's shape: an id, the label, a headline and a text; real files quote fields that hold
# quotes, tabs or newlines (pcm/train.tsv:892 was the first such row)
ROWS = [
    ("1", "sports", "Eagles win", "Di Super Eagles don win dia match for Uyo."),
    (
        "2",
        "politics",
        'Tinubu: "We go fix am"',
        'Di president talk say "we go fix am" for Abuja.\nHe add: "e go better".',
    ),
    ("3", "health", "Lassa fever\tnew cases", "NCDC report 12 new cases\tfor di week."),
    ("4", "business", "Naira", 'Naira fall again; traders say "e don tire us".'),
    ("5", "sports", '"Quoted headline"', "A text wey get ,commas, and ;semicolons;"),
]


def write_tsv(path: Path, rows=ROWS, header=("id", "label", "headline", "text")) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f, delimiter="\t", lineterminator="\n")  # as pandas' to_csv(sep="\t") writes
        w.writerow(header)
        w.writerows(rows)
    return path


def news_spec(**local) -> TaskSpec:
    return TaskSpec.from_config(
        {
            "name": "news",
            "type": "sentence_classification",
            "text_fields": ["headline", "text"],
            "label_field": "label",
            "labels": LABELS,
            "metrics": ["accuracy", "macro_f1"],
            "local": {"path": "news/{folder}/{split}.tsv", "format": "tsv", **local},
            "languages": ["pcm", "hau"],
        }
    )


def test_a_quoted_field_tsv_shaped_like_masakhanews_reads_as_pandas_reads_it(tmp_path):
    path = write_tsv(tmp_path / "news/pcm/train.tsv")
    assert '"' in path.read_text() and path.read_text().count("\n") > len(ROWS) + 1  # quoted, multi-line fields
    frame = pd.read_csv(path, sep="\t", dtype=str)
    examples = load_split(news_spec(), "pcm", "train", tmp_path)
    assert len(examples) == len(frame) == len(ROWS)
    # text fields are joined by one space, in text_fields' order (documented in docs/tasks.md)
    assert [e.text for e in examples] == [f"{h.strip()} {t.strip()}" for h, t in zip(frame.headline, frame.text)]
    assert [LABELS[e.label] for e in examples] == list(frame.label)
    assert '"we go fix am"' in examples[1].text and "\t" in examples[2].text


def test_a_bad_row_names_file_first_line_expected_columns_and_the_option(tmp_path):
    rows = [*ROWS[:2], ("9", "sports", "only three fields"), *ROWS[2:]]
    path = write_tsv(tmp_path / "news/pcm/train.tsv", rows)
    line = 5  # header (1), row 1 (2), row 2 on lines 3-4 (a newline inside quotes): the bad row starts at 5
    with pytest.raises(XlexpError) as err:
        load_split(news_spec(), "pcm", "train", tmp_path)
    msg = str(err.value)
    assert msg.startswith(f"{path}:{line}: expected 4 columns (id, label, headline, text), found 3"), msg
    assert "local.quoting: none" in msg and "local.format: csv" in msg and "\n" not in msg
    # the old reading (every quote is text) fails on the quoted rows, and the error names the fix
    write_tsv(tmp_path / "news/hau/train.tsv")
    with pytest.raises(XlexpError) as err:
        load_split(news_spec(quoting="none"), "hau", "train", tmp_path)
    assert ":4: expected 4 columns" in str(err.value) and "local.quoting: standard" in str(err.value)
    with pytest.raises(XlexpError, match=r"local.quoting: 'csv' is not one of standard, none"):
        load_split(news_spec(quoting="csv"), "hau", "train", tmp_path)


def test_quoting_none_keeps_bare_quotes_as_text(tmp_path):
    path = tmp_path / "news/pcm/test.tsv"
    path.parent.mkdir(parents=True)
    path.write_text('id\tlabel\theadline\ttext\n1\tsports\t"Eagles\tthey said "win" today\n', encoding="utf-8")
    ex = load_split(news_spec(quoting="none"), "pcm", "test", tmp_path)
    assert [e.text for e in ex] == ['"Eagles they said "win" today']


def test_jsonl_rows(tmp_path):
    path = tmp_path / "news/pcm/dev.jsonl"
    path.parent.mkdir(parents=True)
    path.write_text(
        "\n".join(json.dumps({"id": r[0], "label": r[1], "headline": r[2], "text": r[3]}) for r in ROWS) + "\n\n",
        encoding="utf-8",
    )
    spec = news_spec(path="news/{folder}/{split}.jsonl", format="jsonl")
    assert [e.text.split(" ", 1)[0] for e in load_split(spec, "pcm", "dev", tmp_path)] == [
        r[2].split()[0] for r in ROWS
    ]
    path.write_text(path.read_text() + "{not json\n", encoding="utf-8")
    with pytest.raises(XlexpError, match=rf"{path}:{len(ROWS) + 2}: not valid JSON .*local.format"):
        load_split(spec, "pcm", "dev", tmp_path)


def test_a_per_language_label_file(tmp_path):
    """MasakhaNEWS gives each language its own labels.txt (not every language has every category)."""
    write_tsv(tmp_path / "news/pcm/train.tsv")
    write_tsv(tmp_path / "news/hau/train.tsv")
    (tmp_path / "news/pcm/labels.txt").write_text("business\nhealth\npolitics\nsports\n")
    (tmp_path / "news/hau/labels.txt").write_text("health\npolitics\nsports\n")
    spec = news_spec(label_file="news/{folder}/labels.txt")
    assert len(load_split(spec, "pcm", "train", tmp_path)) == len(ROWS)
    with pytest.raises(XlexpError) as err:  # a 'business' row in Hausa, whose label file lacks it
        load_split(spec, "hau", "train", tmp_path)
    assert f"{tmp_path}/news/hau/train.tsv:6: label 'business' is not in {tmp_path}/news/hau/labels.txt" in str(
        err.value
    )
    (tmp_path / "news/hau/labels.txt").write_text("health\nentertainment\n")
    with pytest.raises(XlexpError, match=r"labels.txt:2: label 'entertainment' of language 'hau' is not in the task's"):
        load_split(spec, "hau", "train", tmp_path)
    (tmp_path / "news/hau/labels.txt").unlink()
    with pytest.raises(XlexpError, match=r"the label file of language 'hau' \(local.label_file"):
        load_split(spec, "hau", "train", tmp_path)


def test_errors_name_the_real_task_file(tmp_path, monkeypatch):
    """The typo error and the label error name the YAML file itself, not 'task/x.yaml in a config folder'."""
    conf = tmp_path / "conf"
    (conf / "task").mkdir(parents=True)
    raw = yaml.safe_load(Path(__file__).parents[2].joinpath("xlexp/conf/task/nusax_senti.yaml").read_text())
    (conf / "task" / "mytask.yaml").write_text(yaml.safe_dump({**raw, "name": "mytask", "lables": ["x"]}))
    monkeypatch.setenv("XLEXP_CONFIG_PATH", str(conf))
    with pytest.raises(XlexpError) as err:
        load_task("mytask")
    assert f"in {conf / 'task' / 'mytask.yaml'}" in str(err.value) and "did you mean 'labels'" in str(err.value)
    (conf / "task" / "mytask.yaml").write_text(yaml.safe_dump({**raw, "name": "mytask", "labels": ["neg", "pos"]}))
    with pytest.raises(XlexpError) as err:
        load_split(load_task("mytask"), "eng", "dev", Path("/nonexistent"))  # the embedded copy: auto
    assert f"in {conf / 'task' / 'mytask.yaml'})" in str(err.value) and "label_map" in str(err.value)
