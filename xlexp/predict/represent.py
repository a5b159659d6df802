"""What a model sees of a language: mean-pooled hidden states and sub-word ids of unlabeled text.

NN-Rank's signal (Ebrahimi et al., 2025) is the similarity of the encoder's representations of
source and target text; the sub-word overlap under the model's tokenizer is the cheap half of it.
Both come from the same few hundred sentences per language (the task's own text: the test split
of a target, which needs no labels, or the train split; only the words are read), are computed
once and cached under ``<cache_dir>/predict/`` with a key of the model, its files' content and the exact
text, so a second ``xlexp predict`` reads them back and a changed model or text recomputes.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from xlexp.config.names import temp_path
from xlexp.config.paths import find_config
from xlexp.config.schema import EncoderSettings, model_settings
from xlexp.data.stamps import model_stamps
from xlexp.errors import XlexpError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LanguageView:
    code: str
    mean: np.ndarray  # mean-pooled last hidden state over the sentences (hidden,)
    token_counts: dict[int, int]


def encoder_settings(name: str) -> EncoderSettings:
    """A model config by name (``model=NAME`` of a run) as settings, outside a Hydra composition."""
    path = find_config("model", name)
    if path is None:
        raise XlexpError(f"unknown model '{name}' (no model/{name}.yaml in the config folders)")
    raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    base = find_config("model", "base/encoder")
    merged = {**((yaml.safe_load(base.read_text(encoding="utf-8")) or {}) if base else {}), **raw}
    settings = model_settings(merged)
    if not isinstance(settings, EncoderSettings) or settings.family != "encoder":
        raise XlexpError(f"model '{name}' is not a transformer encoder: model similarity needs one")
    return settings


def language_texts(task: str, code: str, data_dir: Path, n: int, source: str = "local") -> list[str]:
    """Up to ``n`` sentences of ``code`` from the task's data (test split, else train), text only."""
    from xlexp.tasks.spec import load_split, load_task

    spec = load_task(task)
    if code not in spec.languages:  # a language the task does not have: no text, the feature is missing
        return []
    for split in ("test", "train", "dev"):
        try:
            if not spec.has_split(code, split, data_dir, source):
                continue
            examples = load_split(spec, code, split, data_dir, source, allow_empty=True)
        except XlexpError:
            continue
        texts = [" ".join(e.tokens) if e.tokens else e.text for e in examples]
        texts = [t for t in texts if t]
        if texts:
            return texts[:n]
    return []


def _key(*parts: str) -> str:
    return hashlib.sha1("\x00".join(parts).encode()).hexdigest()[:16]


class Representations:
    """Loads the encoder lazily (only when some language is not cached) and caches per language."""

    def __init__(
        self,
        model: str,
        cache_dir: Path,
        texts_for_tiny: list[str] | None = None,
        max_length: int = 128,
        batch_size: int = 32,
    ):
        self.settings = encoder_settings(model)
        self.cache_dir = Path(cache_dir).expanduser()
        self.texts_for_tiny = texts_for_tiny
        self.max_length = max_length
        self.batch_size = batch_size
        self._path: str | None = None
        self._model = None
        self._tokenizer = None

    @property
    def path(self) -> str:
        if self._path is None:
            from xlexp.models.encoders import resolve_model_path

            self._path = resolve_model_path(self.settings, self.cache_dir, self.texts_for_tiny)
        return self._path

    def _load(self):
        if self._model is None:
            from xlexp.models.encoders import load_encoder, load_tokenizer

            self._tokenizer = load_tokenizer(self.settings, self.path)
            self._model = load_encoder(self.settings, self.path).eval()
        return self._tokenizer, self._model

    def view(self, code: str, texts: list[str]) -> LanguageView | None:
        if not texts:
            return None
        key = _key(self.settings.name, ";".join(model_stamps(self.path)), str(self.max_length), *texts)
        file = self.cache_dir / "predict" / self.settings.name / f"{code}-{key}.npz"
        if file.is_file():
            with np.load(file) as z:
                return LanguageView(code, z["mean"], dict(zip(z["ids"].tolist(), z["counts"].tolist())))
        tokenizer, model = self._load()
        import torch

        total, count, counts = None, 0, {}
        for i in range(0, len(texts), self.batch_size):
            batch = tokenizer(
                texts[i : i + self.batch_size],
                padding=True,
                truncation=True,
                max_length=self.max_length,
                return_tensors="pt",
            )
            with torch.inference_mode():  # a context, never a global switch: the same process may train next
                hidden = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
            m = batch["attention_mask"].unsqueeze(-1).float()
            pooled = (hidden * m).sum(1) / m.sum(1).clamp(min=1)  # one vector per sentence
            total = pooled.sum(0) if total is None else total + pooled.sum(0)
            count += pooled.shape[0]
            ids = batch["input_ids"][batch["attention_mask"].bool()].tolist()
            special = set(tokenizer.all_special_ids)
            for t in ids:
                if t not in special:
                    counts[t] = counts.get(t, 0) + 1
        mean = (total / count).to(torch.float32).numpy()
        file.parent.mkdir(parents=True, exist_ok=True)
        tmp = temp_path(file, ".tmp.npz")
        np.savez(
            tmp,
            mean=mean,
            ids=np.array(list(counts), dtype=np.int64),
            counts=np.array(list(counts.values()), dtype=np.int64),
        )
        os.replace(tmp, file)
        return LanguageView(code, mean, counts)


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-12))


def vocab_overlap(source: LanguageView, target: LanguageView) -> float:
    """Share of the target's sub-word occurrences whose id also occurs in the source text."""
    total = sum(target.token_counts.values())
    if not total:
        return float("nan")
    return sum(c for t, c in target.token_counts.items() if t in source.token_counts) / total
