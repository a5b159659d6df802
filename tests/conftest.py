"""Shared fixtures: small NusaX-layout data built by the tests, and Hydra composition."""

from __future__ import annotations

import csv
import random
from pathlib import Path

import pytest

from xlexp.config.compose import compose_config

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

# per language: words that signal each label, and filler words
LEXICON = {
    "english": {
        "positive": ["good", "great", "love", "tasty"],
        "negative": ["bad", "awful", "hate", "dirty"],
        "neutral": ["ticket", "order", "store", "open"],
        "filler": ["the", "food", "was", "very", "here", "we"],
    },
    "indonesian": {
        "positive": ["bagus", "hebat", "suka", "enak"],
        "negative": ["buruk", "jelek", "benci", "kotor"],
        "neutral": ["tiket", "pesan", "toko", "buka"],
        "filler": ["makanan", "itu", "sangat", "di", "sini", "kami"],
    },
    "javanese": {
        "positive": ["apik", "hebat", "seneng", "enak"],
        "negative": ["elek", "ala", "sengit", "reged"],
        "neutral": ["karcis", "pesen", "toko", "bukak"],
        "filler": ["panganan", "kuwi", "banget", "ing", "kene", "awake"],
    },
}
LANGS = {"eng": "english", "ind": "indonesian", "jav": "javanese"}


def write_nusax_like(root: Path, sizes=(60, 20, 40), seed: int = 0) -> Path:
    """A NusaX-senti-layout folder (``nusax_senti/<language>/{train,valid,test}.csv``), parallel
    across languages like the real data, with a learnable signal."""
    rng = random.Random(seed)
    labels = ["positive", "negative", "neutral"]
    for split, n in zip(("train", "valid", "test"), sizes):
        plan = [(i, labels[i % 3], [rng.random() for _ in range(6)]) for i in range(n)]
        for folder, lex in LEXICON.items():
            out = root / "nusax_senti" / folder
            out.mkdir(parents=True, exist_ok=True)
            with (out / f"{split}.csv").open("w", newline="", encoding="utf-8") as f:
                w = csv.writer(f)
                w.writerow(["id", "text", "label"])
                for i, label, r in plan:
                    words = [lex["filler"][int(x * len(lex["filler"]))] for x in r[:4]]
                    words.insert(int(r[4] * 4), lex[label][int(r[5] * 4)])
                    w.writerow([i, " ".join(words), label])
    return root


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return write_nusax_like(tmp_path / "data")


@pytest.fixture
def dirs(tmp_path: Path, data_dir: Path) -> dict[str, Path]:
    return {"data": data_dir, "results": tmp_path / "results", "cache": tmp_path / "cache"}


TINY = ["model=tiny_random", "optimizer.lr=1e-3", "trainer.epochs=2", "data.batch_size=8", "trainer.progress=false"]


def compose_cfg(dirs: dict[str, Path], *overrides: str):
    base = [
        f"paths.data_dir={dirs['data']}",
        f"paths.results_dir={dirs['results']}",
        f"paths.cache_dir={dirs['cache']}",
    ]
    return compose_config([*base, *overrides])


def model_of(cfg):
    """The composed config's model group as typed settings (what models/ functions take)."""
    from omegaconf import OmegaConf

    from xlexp.config.schema import model_settings

    return model_settings(OmegaConf.to_container(cfg.model, resolve=True))


@pytest.fixture(scope="session")
def shared_cache(tmp_path_factory) -> Path:
    """The real-model cache: XLEXP_CACHE_DIR when set (CI keeps the built e5 there), else a temp dir."""
    import os

    env = os.environ.get("XLEXP_CACHE_DIR")
    return Path(env) if env else tmp_path_factory.mktemp("xlexp-cache")


# ---- tiers: every test is `unit` (in-process, trains no model, seconds: `make test-fast`) or `integration`
# (trains a model; spawns xlexp, torchrun, SLURM, PostgreSQL, W&B or a browser; reads the real data sets;
# or runs a whole command end to end, as reproduction dry runs and HTML reports). A module marks its tier with
# `pytestmark`; a module with both marks its unit tests one by one and leaves the rest to the default,
# integration: an unmarked new test stays out of the fast tier until someone says it is fast.
TIERS = ("unit", "integration")
ALWAYS_INTEGRATION = ("slow", "slurm", "docs_numbers")


def pytest_collection_modifyitems(config, items):
    bad = []
    for item in items:
        tiers = {m.name for m in item.iter_markers() if m.name in TIERS}
        if len(tiers) > 1:
            bad.append(f"{item.nodeid}: marked both unit and integration")
        elif tiers == {"unit"} and any(item.get_closest_marker(m) for m in ALWAYS_INTEGRATION):
            bad.append(f"{item.nodeid}: unit, but marked {'/'.join(ALWAYS_INTEGRATION)} (those are integration)")
        elif not tiers:
            item.add_marker(pytest.mark.integration)
    if bad:
        raise pytest.UsageError("test tiers: " + "; ".join(bad))
