"""Tokenized splits, cached on disk, and the batches built from them.

Tokenization happens once per (tokenizer, task spec, language, split, max length, source file)
and is cached as a small ``.npz`` file; later runs, workers and sweep trials read it back.
Training batches are length-grouped (less padding, same randomness); evaluation batches are
sorted by length. Padding is dynamic: each batch is padded to its own longest sequence.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from xlexp.tasks import TaskSpec, load_split

log = logging.getLogger(__name__)


@dataclass
class TokenizedSplit:
    input_ids: list[np.ndarray]
    labels: np.ndarray
    n_truncated: int = 0
    example_ids: np.ndarray | None = None  # row index in the original split (kept through subsampling)

    def __post_init__(self) -> None:
        if self.example_ids is None:
            self.example_ids = np.arange(len(self.labels), dtype=np.int64)

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def lengths(self) -> np.ndarray:
        return np.fromiter((len(x) for x in self.input_ids), dtype=np.int64, count=len(self.input_ids))

    def subset(self, indices: np.ndarray) -> "TokenizedSplit":
        return TokenizedSplit([self.input_ids[i] for i in indices], self.labels[indices], self.n_truncated,
                              self.example_ids[indices])

    @staticmethod
    def concat(parts: list["TokenizedSplit"]) -> "TokenizedSplit":
        ids = [x for p in parts for x in p.input_ids]
        return TokenizedSplit(ids, np.concatenate([p.labels for p in parts]), sum(p.n_truncated for p in parts))


def tokenizer_fingerprint(tokenizer) -> str:
    """Content hash of a fast tokenizer (vocab, normaliser, specials): the cache key's first part."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    blob = backend.to_str() if backend is not None else repr(sorted(tokenizer.get_vocab().items()))
    return hashlib.sha1(blob.encode()).hexdigest()[:16]


class TokenCache:
    """Tokenizes (language, split) pairs of one task with one tokenizer, memoised in memory and on disk."""

    def __init__(self, spec: TaskSpec, tokenizer, max_length: int, data_dir: Path, cache_dir: Path, source: str = "auto"):
        self.spec, self.tokenizer, self.max_length = spec, tokenizer, max_length
        self.data_dir, self.source = Path(data_dir), source
        self.dir = Path(cache_dir) / "tokenized" / spec.name
        self.fingerprint = tokenizer_fingerprint(tokenizer)
        self._memory: dict[tuple[str, str], TokenizedSplit] = {}
        self.n_tokenized = 0  # splits tokenized by this cache object (0 on a fully cached re-run)

    def _key(self, code: str, split: str) -> str:
        path = self.spec.local_path(code, split, self.data_dir)
        stamp = ""
        if self.source != "hub" and path is not None and path.exists():
            st = path.stat()
            stamp = f"{path.resolve()}:{st.st_size}:{st.st_mtime_ns}"
        parts = [self.fingerprint, self.spec.fingerprint(), code, split, str(self.max_length), self.source, stamp]
        return hashlib.sha1("|".join(parts).encode()).hexdigest()[:20]

    def get(self, code: str, split: str) -> TokenizedSplit:
        if (code, split) in self._memory:
            return self._memory[(code, split)]
        file = self.dir / f"{code}.{split}.{self._key(code, split)}.npz"
        if file.exists():
            tok = _load_npz(file)
        else:
            tok = self._tokenize(code, split)
            _save_npz_atomic(file, tok)
        if tok.n_truncated:
            log.info("%s/%s: %d of %d examples truncated to %d tokens", code, split, tok.n_truncated, len(tok), self.max_length)
        self._memory[(code, split)] = tok
        return tok

    def _tokenize(self, code: str, split: str) -> TokenizedSplit:
        examples = load_split(self.spec, code, split, self.data_dir, self.source)
        enc = self.tokenizer([e.text for e in examples], truncation=False, add_special_tokens=True)["input_ids"]
        n_truncated = sum(len(x) > self.max_length for x in enc)
        ids = [_truncate(np.asarray(x, dtype=np.int32), self.max_length) for x in enc]
        self.n_tokenized += 1
        return TokenizedSplit(ids, np.array([e.label for e in examples], dtype=np.int64), n_truncated)


def _truncate(ids: np.ndarray, max_length: int) -> np.ndarray:
    if len(ids) <= max_length:
        return ids
    # keep the final special token (</s> or [SEP]) so the sequence stays well-formed
    return np.concatenate([ids[: max_length - 1], ids[-1:]])


def _save_npz_atomic(file: Path, tok: TokenizedSplit) -> None:
    file.parent.mkdir(parents=True, exist_ok=True)
    offsets = np.cumsum([0] + [len(x) for x in tok.input_ids]).astype(np.int64)
    flat = np.concatenate(tok.input_ids) if tok.input_ids else np.zeros(0, np.int32)
    tmp = file.with_name(f".{file.name}.{os.getpid()}.tmp")
    with tmp.open("wb") as f:
        np.savez(f, flat=flat, offsets=offsets, labels=tok.labels, n_truncated=np.int64(tok.n_truncated))
    os.replace(tmp, file)  # atomic: concurrent workers never read a half-written cache file


def _load_npz(file: Path) -> TokenizedSplit:
    with np.load(file) as z:
        flat, offsets = z["flat"], z["offsets"]
        ids = [flat[offsets[i] : offsets[i + 1]] for i in range(len(offsets) - 1)]
        return TokenizedSplit(ids, z["labels"], int(z["n_truncated"]))


# -- batching ---------------------------------------------------------------------------------
def train_batches(
    split: TokenizedSplit, batch_size: int, rng: np.random.Generator, group_by_length: bool = True,
    weights: np.ndarray | None = None,
) -> list[np.ndarray]:
    """One epoch of index batches. Length grouping sorts within shuffled mega-batches of 50 batches
    and then shuffles the batch order, so batches are random but hold similar lengths. With
    ``weights`` the epoch's examples are drawn with replacement with those probabilities."""
    if weights is None:
        order = rng.permutation(len(split))
    else:
        order = rng.choice(len(split), size=len(split), replace=True, p=weights)
    if not group_by_length:
        return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    lengths = split.lengths
    mega = batch_size * 50
    batches = []
    for start in range(0, len(order), mega):
        chunk = order[start : start + mega]
        chunk = chunk[np.argsort(-lengths[chunk], kind="stable")]
        batches.extend(chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size))
    return [batches[i] for i in rng.permutation(len(batches))]


def eval_batches(split: TokenizedSplit, batch_size: int) -> Iterator[np.ndarray]:
    """Indices sorted by length, longest first (a too-large batch fails at once, not at the end)."""
    order = np.argsort(-split.lengths, kind="stable")
    for i in range(0, len(order), batch_size):
        yield order[i : i + batch_size]


def collate(split: TokenizedSplit, indices: np.ndarray, pad_id: int) -> dict[str, torch.Tensor]:
    seqs = [split.input_ids[i] for i in indices]
    width = max(len(s) for s in seqs)
    input_ids = np.full((len(seqs), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(seqs), width), dtype=np.int64)
    for row, s in enumerate(seqs):
        input_ids[row, : len(s)] = s
        mask[row, : len(s)] = 1
    return {
        "input_ids": torch.from_numpy(input_ids),
        "attention_mask": torch.from_numpy(mask),
        "labels": torch.from_numpy(split.labels[indices]),
    }
