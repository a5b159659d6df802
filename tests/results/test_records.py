import pytest

from xlexp.results.store import RECORD_COLUMNS, Record, load_records, write_records

pytestmark = pytest.mark.unit


def _rec(target="ind", value=0.5, **kw):
    base = dict(
        experiment="e",
        run_id="r1",
        model="m",
        task="t",
        regime="zero_shot",
        source="eng",
        target=target,
        target_tag=target,
        split="test",
        metric="accuracy",
        value=value,
        n_examples=10,
        seed=1,
        selection="source_dev",
        config_hash="h",
        git_commit="c",
        timestamp="2026-01-01T00:00:00+00:00",
    )
    return Record(**{**base, **kw})


def test_write_is_atomic_and_immutable(tmp_path):
    path = write_records([_rec(), _rec("jav", 0.25)], tmp_path, "r1-0000-eng")
    assert path.exists() and not list(path.parent.glob(".*"))  # no temp file left behind
    with pytest.raises(FileExistsError):
        write_records([_rec()], tmp_path, "r1-0000-eng")
    write_records([_rec(run_id="r2", value=0.75)], tmp_path, "r2-0000-eng")
    df = load_records(tmp_path)
    assert list(df.columns) == RECORD_COLUMNS
    assert len(df) == 3 and sorted(df["value"]) == [0.25, 0.5, 0.75]


def test_empty_store_has_columns(tmp_path):
    assert list(load_records(tmp_path).columns) == RECORD_COLUMNS
