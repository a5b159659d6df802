"""Frozen sentence embeddings, computed once per (model, task, language, split, side, recipe) and
cached on disk like tokenized splits.

Why a cache of vectors and not of token ids: frozen-encoder regimes (``regime=probe``) and bitext
mining never train the encoder, so a text's vector is a pure function of the model, the text and the
*recipe* (the model's own pooling, normalisation and prefix, ``model.embedding``). A 205 x 205 probe
matrix then costs 205 embedding passes (the expensive part) and 42,025 cheap classifier fits; a second
run, another ``per_label`` or another classifier re-reads the vectors.

The cache key holds everything that changes a vector: the model's name and weight files (their
content), the tokenizer's content hash, the recipe (pooling, normalisation, prefix, max length),
the task spec's fingerprint and the content of the data files read (not their path or mtime: a
dataset copied again keeps its vectors, ``xlexp.data.stamps``). Files:
``<cache_dir>/embeddings/<task>/<model>/<lang>.<split>[.<side>].<key>.npz`` with ``emb`` (float32)
and ``labels``; written atomically (temp file, then rename), so a killed job resumes where it stopped.

Sides: ``""`` is each example's ``text``, ``pair`` its ``text_pair`` (the second sentence of a pair
task, the pivot sentence of a retrieval task).
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from xlexp.config.schema import TransformerSettings
from xlexp.data.stamps import content_stamp, model_stamps
from xlexp.data.tokenized import tokenizer_fingerprint
from xlexp.errors import XlexpError
from xlexp.tasks.readers import data_root
from xlexp.tasks.spec import TaskSpec, load_split

log = logging.getLogger(__name__)

SIDES = ("", "pair")


@dataclass(frozen=True)
class Recipe:
    """How a text becomes one vector: the model's pooling, normalisation and prefix, and the longest
    input in tokens (longer texts are truncated, as sentence-transformers does at ``max_seq_length``)."""

    pooling: str
    normalize: bool
    prefix: str
    max_length: int

    def describe(self) -> str:
        return (
            f"{self.pooling} pooling{', L2-normalised' if self.normalize else ''}, "
            f"prefix {self.prefix!r}, max {self.max_length} tokens"
        )


def recipe_of(model: TransformerSettings, prefix: str | None = None) -> Recipe:
    """The model's embedding recipe (``model.embedding``), with ``prefix`` in place of the model's
    own when given. One line, before any work, when the model defines none."""
    e = model.embedding
    if e.pooling is None:
        raise XlexpError(
            f"model '{model.name}' has no sentence-embedding definition (model.embedding.pooling is null): "
            f"frozen-embedding regimes need the model's own pooling; set model.embedding.pooling=mean or "
            f"cls (and model.embedding.normalize / model.embedding.prefix) as its sentence-transformers "
            f"config does"
        )
    return Recipe(
        e.pooling, bool(e.normalize), e.prefix if prefix is None else str(prefix), int(model.max_length or 512)
    )


def model_fingerprint(name: str, path: str) -> str:
    """The name, plus the content stamps of a local folder's weight and config files (a rebuilt or
    retrained model gets new vectors; the same files copied or moved keep theirs:
    ``xlexp.data.stamps.model_stamps``); a hub id is taken as it is."""
    parts = [name, *model_stamps(path, (".safetensors", ".bin", ".pt", ".json", ".model"))]
    return hashlib.sha1("|".join(parts).encode()).hexdigest()[:16]


@torch.inference_mode()
def embed_texts(
    encoder: torch.nn.Module,
    tokenizer,
    texts: list[str],
    recipe: Recipe,
    batch_size: int = 64,
    device: torch.device | str = "cpu",
    on_batch: Callable[[int], None] | None = None,
) -> np.ndarray:
    """One vector per text: ``prefix + text`` tokenized (truncated to ``max_length``), the encoder's
    last hidden states pooled (mean over non-pad tokens, or the first token) and optionally
    L2-normalised. Batches are sorted by length (less padding); rows come back in input order."""
    encoder.eval()
    ids = tokenizer([recipe.prefix + t for t in texts], truncation=True, max_length=recipe.max_length)["input_ids"]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    out = np.empty((len(texts), encoder.config.hidden_size), dtype=np.float32)
    order = np.argsort([len(x) for x in ids], kind="stable")
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        width = max(len(ids[i]) for i in idx)
        input_ids = torch.full((len(idx), width), pad, dtype=torch.long)
        mask = torch.zeros((len(idx), width), dtype=torch.long)
        for row, i in enumerate(idx):
            input_ids[row, : len(ids[i])] = torch.as_tensor(ids[i])
            mask[row, : len(ids[i])] = 1
        input_ids, mask = input_ids.to(device), mask.to(device)
        hidden = encoder(input_ids=input_ids, attention_mask=mask).last_hidden_state.float()
        if recipe.pooling == "mean":
            m = mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * m).sum(1) / m.sum(1).clamp(min=1.0)
        else:
            pooled = hidden[:, 0]
        if recipe.normalize:
            pooled = torch.nn.functional.normalize(pooled, dim=-1)
        out[idx] = pooled.cpu().numpy()
        if on_batch is not None:
            on_batch(len(idx))
    return out


@dataclass
class Embedded:
    """One (language, split, side): a vector and a label per example (labels are -1 for retrieval)."""

    emb: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)


class EmbeddingCache:
    """Vectors of (language, split, side) for one task, model and recipe, in memory and on disk.
    The encoder is built on the first miss only (``encoder_factory``), so a fully cached run loads
    no model."""

    def __init__(
        self,
        spec: TaskSpec,
        model_name: str,
        model_path: str,
        tokenizer,
        recipe: Recipe,
        data_dir: Path,
        cache_dir: Path,
        source: str = "auto",
        encoder_factory: Callable[[], torch.nn.Module] | None = None,
        batch_size: int = 64,
        device: torch.device | str = "cpu",
    ):
        self.spec, self.tokenizer, self.recipe = spec, tokenizer, recipe
        self.data_dir, self.source, self.batch_size, self.device = Path(data_dir), source, batch_size, device
        self.files_root = data_root(spec, self.data_dir, source)  # maybe the embedded copy: what is read
        self.dir = Path(cache_dir) / "embeddings" / spec.name / model_name
        self.model_key = model_fingerprint(model_name, model_path)
        self.tokenizer_key = tokenizer_fingerprint(tokenizer)
        self.encoder_factory = encoder_factory
        self._encoder: torch.nn.Module | None = None
        self._memory: dict[tuple[str, str, str], Embedded] = {}
        self.n_embedded = 0  # (language, split, side) computed by this object (0 on a fully cached run)
        self.seconds = 0.0  # time spent embedding

    def _key(self, code: str, split: str, side: str) -> str:
        # the bytes of the files read, not their path or mtime (xlexp.data.stamps)
        stamp = "" if self.source == "hub" else content_stamp(self.spec.local_files(code, split, self.files_root))
        r = self.recipe
        parts = [
            self.model_key,
            self.tokenizer_key,
            r.pooling,
            str(r.normalize),
            r.prefix,
            str(r.max_length),
            self.spec.fingerprint(),
            code,
            split,
            side,
            self.source,
            stamp,
        ]
        return hashlib.sha1("\x1f".join(parts).encode()).hexdigest()[:20]

    def file(self, code: str, split: str, side: str = "") -> Path:
        return self.dir / f"{code}.{split}{'.' + side if side else ''}.{self._key(code, split, side)}.npz"

    def cached(self, code: str, split: str, side: str = "") -> bool:
        return (code, split, side) in self._memory or self.file(code, split, side).exists()

    @property
    def encoder(self) -> torch.nn.Module:
        if self._encoder is None:
            if self.encoder_factory is None:
                raise RuntimeError("EmbeddingCache: a split is not cached and no encoder factory was given")
            self._encoder = self.encoder_factory()
        return self._encoder

    def get(self, code: str, split: str, side: str = "") -> Embedded:
        if side not in SIDES:
            raise ValueError(f"side must be one of {SIDES}, got {side!r}")
        key = (code, split, side)
        if key in self._memory:
            return self._memory[key]
        file = self.file(code, split, side)
        got = None
        if file.exists():
            try:
                with np.load(file) as z:
                    got = Embedded(z["emb"], z["labels"])
            except (OSError, ValueError, KeyError):  # a torn or foreign file: compute again
                log.warning("embedding cache file %s is unreadable; computing it again", file)
        if got is None:
            got = self._compute(code, split, side)
            self._save(file, got)
        self._memory[key] = got
        return got

    def _compute(self, code: str, split: str, side: str) -> Embedded:
        examples = load_split(self.spec, code, split, self.data_dir, self.source)
        texts = [(e.text_pair if side == "pair" else e.text) or "" for e in examples]
        started = time.perf_counter()
        emb = embed_texts(self.encoder, self.tokenizer, texts, self.recipe, self.batch_size, self.device)
        took = time.perf_counter() - started
        self.seconds += took
        self.n_embedded += 1
        log.info(
            "embedded %s/%s%s: %d texts in %.1fs (%s)",
            code,
            split,
            f" ({side})" if side else "",
            len(texts),
            took,
            self.recipe.describe(),
        )
        labels = np.asarray([e.label if e.label is not None else -1 for e in examples], dtype=np.int64)
        return Embedded(emb, labels)

    def _save(self, file: Path, got: Embedded) -> None:
        file.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{file.name}.", suffix=".npz", dir=file.parent)
        os.close(fd)
        try:
            np.savez(tmp, emb=got.emb, labels=got.labels)
            os.replace(tmp, file)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def cache_for_settings(
    s, spec: TaskSpec, prefix: str | None = None, device: torch.device | str = "cpu"
) -> EmbeddingCache:
    """The embedding cache a run with settings ``s`` (``xlexp.config.schema.Settings``) reads: the
    model's recipe (``prefix`` in place of its own when given), its tokenizer, and an encoder built on
    the first miss. One line, before any model is loaded, when the model has no embedding recipe."""
    from xlexp.models.encoders import load_encoder, load_tokenizer, resolve_model_path

    recipe = recipe_of(s.model, prefix)
    path = resolve_model_path(s.model, s.paths.cache_dir, None, s.seed)
    tokenizer = load_tokenizer(s.model, path)
    return EmbeddingCache(
        spec,
        s.model.name,
        path,
        tokenizer,
        recipe,
        s.paths.data_dir,
        s.paths.cache_dir,
        s.data.source,
        lambda: load_encoder(s.model, path).to(device),
        s.data.eval_batch_size,
        device,
    )
