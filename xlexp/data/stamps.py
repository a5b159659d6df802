"""Content stamps of the files a cache key depends on: data files and model weights.

Why the content and not (path, size, mtime): the same bytes get a new mtime whenever a dataset is
copied again (``cp`` without ``-p``, ``rsync`` without ``-t``, a container image, a share mounted
afresh) and a new path when the folder moves. Keyed on those, two hours of cached SIB-200 sentence
vectors became misses the morning the shared data folder was laid out again, unchanged
(docs/faults.md). Hashing costs little next to what the caches save: SIB-200's 410 split files
(40 MB) hash in about 0.1 s, once per process (memoised by path, size and mtime).

Data files are hashed whole, whatever their size: one corrected label keeps its byte count, and a
stale tokenized split or vector would put a wrong number in the store. Model weights over 64 MiB
are stamped from their size and 16 evenly spaced 1 MiB blocks (first and last included): any
training, re-quantisation or rebuild rewrites every tensor, and a 14 GB checkpoint is not read
whole on each run.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path

WHOLE_LIMIT = 64 << 20  # weights up to this size are hashed whole
BLOCK = 1 << 20
BLOCKS = 16


def content_stamp(paths: Iterable[Path | str | None]) -> str:
    """One hash of the bytes of ``paths`` (in order; a missing file or None counts as absent), by
    content only: a copy elsewhere or a new mtime gives the same stamp."""
    h = hashlib.sha1()
    for p in paths:
        if p is None or not Path(p).is_file():
            h.update(b"-\x00")
            continue
        st = Path(p).stat()
        h.update(_whole(str(Path(p).resolve()), st.st_size, st.st_mtime_ns).encode() + b"\x00")
    return h.hexdigest()[:20]


def weights_stamp(path: Path | str) -> str:
    """The stamp of one weight file: whole below ``WHOLE_LIMIT``, else size + sampled blocks."""
    p = Path(path)
    st = p.stat()
    if st.st_size <= WHOLE_LIMIT:
        return _whole(str(p.resolve()), st.st_size, st.st_mtime_ns)
    return _sampled(str(p.resolve()), st.st_size, st.st_mtime_ns)


def model_stamps(path: Path | str, suffixes: tuple[str, ...] | None = None) -> list[str]:
    """A model by content: ``name:weights_stamp`` of each file of a local folder (those ending in
    ``suffixes`` when given), so the same files copied or moved keep the stamps; a hub id as it is."""
    folder = Path(path)
    if not folder.is_dir():
        return [str(path)]
    files = [f for f in sorted(folder.iterdir()) if f.is_file() and (suffixes is None or f.suffix in suffixes)]
    return [f"{f.name}:{weights_stamp(f)}" for f in files]


@lru_cache(maxsize=8192)
def _whole(path: str, size: int, mtime_ns: int) -> str:
    h = hashlib.sha1()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@lru_cache(maxsize=256)
def _sampled(path: str, size: int, mtime_ns: int) -> str:
    h = hashlib.sha1(str(size).encode())
    with open(path, "rb") as f:
        for i in range(BLOCKS):
            f.seek((size - BLOCK) * i // (BLOCKS - 1))
            h.update(f.read(BLOCK))
    return h.hexdigest()
