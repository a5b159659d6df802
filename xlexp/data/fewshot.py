"""Few-shot shot sets: deterministic draws of K target examples, saved and importable.

A shot set is a function of (task, language, K, per-class or total, set index, sampling seed): the
same arguments give the same example ids on any machine, and every set used is written to the
results store as an id list with its hash, so published shot sets can be reused via a file.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from xlexp.config.names import temp_path
from xlexp.errors import XlexpError


@dataclass(frozen=True)
class ShotSet:
    task: str
    language: str
    k: int
    k_per: str  # class | total
    index: int
    sampling_seed: int
    ids: tuple[int, ...]  # row indices in the language's train split

    @property
    def hash(self) -> str:
        return hashlib.sha1(json.dumps(list(self.ids)).encode()).hexdigest()[:12]


def _rng(task: str, language: str, k: int, k_per: str, index: int, sampling_seed: int) -> np.random.Generator:
    digest = hashlib.sha1(f"{task}|{language}|{k}|{k_per}|{index}|{sampling_seed}".encode()).hexdigest()
    return np.random.default_rng(int(digest[:16], 16))


def sample_shots(
    labels: np.ndarray,
    label_names: tuple[str, ...],
    task: str,
    language: str,
    k: int,
    k_per: str,
    index: int,
    sampling_seed: int,
) -> ShotSet:
    if k_per not in ("class", "total"):
        raise XlexpError(f"regime.k_per must be 'class' or 'total', got '{k_per}'")
    rng = _rng(task, language, k, k_per, index, sampling_seed)
    if k_per == "total":
        if k > len(labels):
            raise XlexpError(
                f"{task}/{language}: K={k} shots requested but the train pool has only {len(labels)} examples"
            )
        ids = rng.choice(len(labels), size=k, replace=False)
    else:
        picked = []
        for c, name in enumerate(label_names):
            pool = np.flatnonzero(labels == c)
            if len(pool) < k:
                raise XlexpError(
                    f"{task}/{language}: K={k} shots per class requested but the train pool has only {len(pool)} "
                    f"example(s) of class '{name}'; use a smaller regime.k or regime.k_per=total"
                )
            picked.append(rng.choice(pool, size=k, replace=False))
        ids = np.concatenate(picked)
    return ShotSet(task, language, k, k_per, index, sampling_seed, tuple(sorted(int(i) for i in ids)))


def save_shot_set(shots: ShotSet, results_dir: Path | str) -> Path:
    """Write the id list once (same arguments -> same file); atomic like every results file."""
    folder = Path(results_dir) / "shots" / shots.task / shots.language
    path = folder / f"k{shots.k}-{shots.k_per}-set{shots.index}-seed{shots.sampling_seed}-{shots.hash}.json"
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        tmp = temp_path(path)
        tmp.write_text(json.dumps({**asdict(shots), "ids": list(shots.ids), "hash": shots.hash}, indent=1))
        os.replace(tmp, path)
    return path


def read_shot_file(path: Path | str) -> dict:
    """The shot file's JSON, checked for its shape ``{"<lang>": {"<K>": [[row ids], ...]}}``: one line
    naming the file and the first wrong part (called when the settings are read, before training)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise XlexpError(f"regime.shots_file {path}: {e}") from None
    shape = 'JSON {"<lang>": {"<K>": [[train row ids], ...]}}'
    if not isinstance(data, dict):
        raise XlexpError(f"regime.shots_file {path}: expected {shape}, got a {type(data).__name__}")
    for lang, by_k in data.items():
        if not isinstance(by_k, dict):
            raise XlexpError(f"regime.shots_file {path}: '{lang}' must map K to shot sets ({shape})")
        for k, sets in by_k.items():
            if not isinstance(sets, list) or not all(isinstance(ids, list) for ids in sets):
                raise XlexpError(
                    f"regime.shots_file {path}: '{lang}'/'{k}' must be a list of lists of row ids ({shape})"
                )
    return data


def load_shot_file(path: Path | str, task: str, language: str, k: int, n_train: int) -> list[ShotSet]:
    """Shot sets from a JSON file ``{"<lang>": {"<K>": [[ids...], ...]}}`` (ids = train-split rows)."""
    data = read_shot_file(path)
    sets = data.get(language, {}).get(str(k))
    if not sets:
        raise XlexpError(f"regime.shots_file {path} has no shot sets for language '{language}' and K={k}")
    out = []
    for i, ids in enumerate(sets):
        bad = [x for x in ids if not isinstance(x, int) or not 0 <= x < n_train]
        if bad:
            raise XlexpError(
                f"regime.shots_file {path}: {language}/K={k} set {i} has ids outside 0..{n_train - 1}: {bad[:5]}"
            )
        out.append(ShotSet(task, language, k, "file", i, -1, tuple(sorted(ids))))
    return out
