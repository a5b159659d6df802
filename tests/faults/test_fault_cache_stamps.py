"""A dataset copied again (same bytes, new mtime, new folder) keeps its cached sentence vectors and
tokenized splits; one changed byte, even with the size unchanged, recomputes them. The caches used
to key on the data file's path, size and mtime: the morning the shared data folder was laid out
again, unchanged, two hours of SIB-200 vectors became misses (docs/faults.md)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.conftest import compose_cfg, write_nusax_like
from tests.faults.test_fault_probe import PROBE  # the same small probe: eng -> eng, ind
from xlexp import run_experiment
from xlexp.data.stamps import content_stamp, weights_stamp
from xlexp.tasks.spec import load_task


def _copy_with_new_mtimes(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst, copy_function=shutil.copyfile)  # bytes only: fresh mtimes
    for f in dst.rglob("*"):
        if f.is_file():
            os.utime(f, ns=(1_000_000_000, 1_000_000_000))  # and surely different ones
    return dst


def _vectors(cache: Path) -> set[str]:
    return {f.name for f in (cache / "embeddings").rglob("*.npz")}


@pytest.mark.integration
def test_fault_copied_dataset_keeps_its_vectors_and_a_changed_label_recomputes(tmp_path):
    first = write_nusax_like(tmp_path / "a", sizes=(30, 12, 18))
    cache = tmp_path / "cache"

    def probe(data: Path, results: str):
        dirs = {"data": data, "results": tmp_path / results, "cache": cache}
        return run_experiment(compose_cfg(dirs, *PROBE))

    score = probe(first, "r1")
    before = _vectors(cache)
    assert len(before) == 3  # eng train, eng test, ind test

    copy = _copy_with_new_mtimes(first, tmp_path / "elsewhere" / "b")
    assert probe(copy, "r2") == score
    assert _vectors(cache) == before  # nothing embedded again

    train = copy / "nusax_senti" / "english" / "train.csv"  # eng's folder (write_nusax_like)
    text = train.read_text(encoding="utf-8")
    changed = text.replace("positive", "negative", 1)  # the same length: size and path unchanged
    assert changed != text and len(changed) == len(text)
    train.write_text(changed, encoding="utf-8")
    probe(copy, "r3")
    new = _vectors(cache) - before
    assert len(new) == 1 and next(iter(new)).startswith("eng.train."), new  # the edited split only


@pytest.mark.unit
def test_fault_bitext_stamp_covers_both_sides_and_ignores_mtime_and_folder(tmp_path):
    spec = load_task("tatoeba")
    a = tmp_path / "a"
    (a / "tatoeba").mkdir(parents=True)
    (a / "tatoeba" / "tatoeba.afr-eng.afr").write_text("een\ntwee\n", encoding="utf-8")
    (a / "tatoeba" / "tatoeba.afr-eng.eng").write_text("one\ntwo\n", encoding="utf-8")
    files = spec.local_files("afr", "test", a)
    assert [f.name for f in files] == ["tatoeba.afr-eng.afr", "tatoeba.afr-eng.eng"]
    stamp = content_stamp(files)
    b = _copy_with_new_mtimes(a, tmp_path / "b")
    assert content_stamp(spec.local_files("afr", "test", b)) == stamp
    (b / "tatoeba" / "tatoeba.afr-eng.eng").write_text("one\ntwa\n", encoding="utf-8")  # the pivot side
    assert content_stamp(spec.local_files("afr", "test", b)) != stamp


@pytest.mark.unit
def test_weights_stamp_is_content_whole_or_sampled(tmp_path, monkeypatch):
    import xlexp.data.stamps as stamps

    w = tmp_path / "model.safetensors"
    w.write_bytes(bytes(range(256)) * 4096)  # 1 MiB
    s = weights_stamp(w)
    os.utime(w, ns=(5, 5))
    assert weights_stamp(w) == s
    data = bytearray(w.read_bytes())
    data[-1] ^= 1
    w.write_bytes(bytes(data))
    assert weights_stamp(w) != s
    monkeypatch.setattr(stamps, "WHOLE_LIMIT", 1024)  # the sampled stamp of large files: the last block counts
    monkeypatch.setattr(stamps, "BLOCK", 4096)
    big = weights_stamp(w)
    data[-1] ^= 1
    w.write_bytes(bytes(data))
    assert weights_stamp(w) != big
