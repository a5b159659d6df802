"""Issue 3: pair classification, POS/NER token classification, retrieval; validation; caching."""

import json
import random
from pathlib import Path

import numpy as np
import pytest

from conftest import TINY, compose_cfg, model_of
from xlexp import XlexpError, load_records, run_experiment
from xlexp.data.tokenized import tokenize_words
from xlexp.engine.inference import retrieval_accuracy, token_metrics
from xlexp.errors import XlexpError
from xlexp.results.query import pivot
from xlexp.tasks.spec import load_split, load_task

NER_LEX = {
    "en": {
        "PER": ["john", "mary", "peter"],
        "LOC": ["paris", "london", "berlin"],
        "ORG": ["acme", "unesco", "fifa"],
        "O": ["the", "went", "to", "and", "saw", "with", "a", "visit"],
    },
    "de": {
        "PER": ["johann", "maria", "peter"],
        "LOC": ["paris", "london", "berlin"],
        "ORG": ["acme", "unesco", "fifa"],
        "O": ["der", "ging", "nach", "und", "sah", "mit", "ein", "besuch"],
    },
}


def write_conll(root: Path, task_dir: str, sizes=(80, 20, 30), seed=0) -> None:
    rng = random.Random(seed)
    for lang, lex in NER_LEX.items():
        for split, n in zip(("train", "dev", "test"), sizes):
            out = root / task_dir / lang
            out.mkdir(parents=True, exist_ok=True)
            lines = []
            for _ in range(n):
                for _ in range(rng.randint(3, 8)):
                    kind = rng.choice(["O", "O", "O", "PER", "LOC", "ORG"])
                    if kind == "O":
                        lines.append(f"{rng.choice(lex['O'])} O")
                    else:
                        lines.append(f"{rng.choice(lex[kind])} B-{kind}")
                        if rng.random() < 0.3:
                            lines.append(f"{rng.choice(lex[kind])} I-{kind}")
                lines.append("")
            (out / f"{split}.txt").write_text("\n".join(lines) + "\n")


@pytest.fixture
def ner_dirs(tmp_path):
    write_conll(tmp_path / "data", "wikiann")
    return {"data": tmp_path / "data", "results": tmp_path / "results", "cache": tmp_path / "cache"}


def test_ner_conll_end_to_end_span_f1(ner_dirs):
    run_experiment(
        compose_cfg(
            ner_dirs,
            *TINY,
            "task=wikiann",
            "langpair.sources=[en]",
            "langpair.targets=[en,de]",
            "trainer.epochs=8",
            "name=ner",
        )
    )
    df = load_records(ner_dirs["results"])
    test = df[(df["split"] == "test") & (df["selection"] == "source_dev")]
    assert {"span_f1", "span_f1/PER", "span_f1/LOC", "span_f1/ORG"} <= set(test["metric"])
    m = pivot(df, "ner", "span_f1")
    assert m.shape == (1, 2)
    assert m.mean.loc["en", "en"] > 0.5  # learnable in-language
    assert set(test["n_examples"]) == {30}  # sentences, not windows


@pytest.mark.unit
def test_seqeval_span_f1_by_hand():
    labels = ("O", "B-PER", "I-PER", "B-LOC", "I-LOC")
    gold = [np.array([1, 2, 0, 3]), np.array([0, 3, 4])]
    pred = [np.array([1, 2, 0, 0]), np.array([0, 3, 4])]  # 2 of 3 gold spans found, no false positive
    out = token_metrics(pred, gold, np.array([0, 1]), ("span_f1", "accuracy"), labels)
    assert out["span_f1"] == pytest.approx(2 * 1.0 * (2 / 3) / (1.0 + 2 / 3))
    assert out["span_f1/PER"] == 1.0 and out["span_f1/LOC"] == pytest.approx(2 / 3)
    assert out["accuracy"] == pytest.approx(6 / 7)


@pytest.mark.unit
def test_pos_long_sentences_keep_every_word_label(ner_dirs):
    cfg = compose_cfg(ner_dirs, "model=tiny_random")
    from xlexp.models.encoders import load_tokenizer, resolve_model_path

    tok = load_tokenizer(model_of(cfg), resolve_model_path(model_of(cfg), ner_dirs["cache"], ["some text here"] * 5))
    words = tuple(f"w{i}" for i in range(50))
    tags = tuple(i % 5 for i in range(50))
    split = tokenize_words(tok, [words, words[:5]], [tags, tags[:5]], max_length=16)
    assert split.n_truncated == 1  # the long sentence was split into windows
    labelled = np.concatenate([tl[tl != -100] for tl, ex in zip(split.token_labels, split.example_ids) if ex == 0])
    assert labelled.tolist() == list(tags)  # every word labelled once, in order
    assert max(len(x) for x in split.input_ids) <= 16


def write_pawsx(root: Path, sizes=(60, 20, 30), seed=1) -> None:
    """A PAWS-X-layout folder (``pawsx/<lang>/<split>.jsonl``): label 1 when the two sentences are equal."""
    rng = random.Random(seed)
    words = {"en": ["cat", "dog", "house", "tree", "car"], "de": ["katze", "hund", "haus", "baum", "auto"]}
    for lang, vocab in words.items():
        for split, n in zip(("train", "dev", "test"), sizes):
            rows = []
            for i in range(n):
                a = rng.sample(vocab, 3)
                same = i % 2 == 0
                b = list(a) if same else rng.sample(vocab, 3)
                rows.append({"sentence1": " ".join(a), "sentence2": " ".join(b), "label": "1" if same else "0"})
            out = root / "pawsx" / lang
            out.mkdir(parents=True, exist_ok=True)
            (out / f"{split}.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")


def test_pair_classification_from_local_hub_layout(tmp_path):
    write_pawsx(tmp_path / "data")
    dirs = {"data": tmp_path / "data", "results": tmp_path / "results", "cache": tmp_path / "cache"}
    ex = load_split(load_task("pawsx"), "de", "dev", dirs["data"])
    assert ex[0].text_pair and ex[0].label in (0, 1)
    run_experiment(
        compose_cfg(dirs, *TINY, "task=pawsx", "langpair.sources=[en]", "langpair.targets=[en,de]", "name=px")
    )
    m = pivot(load_records(dirs["results"]), "px", "accuracy")
    assert m.shape == (1, 2) and not m.mean.isna().any().any()


def test_retrieval_no_training_both_directions(tmp_path):
    rng = random.Random(2)
    base = [" ".join(rng.sample(["alpha", "beta", "gamma", "delta", "omega", "kappa", "sigma"], 4)) for _ in range(40)]
    folder = tmp_path / "data" / "tatoeba"
    folder.mkdir(parents=True)
    for code in ("afr", "deu"):
        (folder / f"tatoeba.{code}-eng.eng").write_text("\n".join(base) + "\n")
        (folder / f"tatoeba.{code}-eng.{code}").write_text(
            "\n".join(s.upper() for s in base) + "\n"
        )  # lowercased by the tokenizer
    dirs = {"data": tmp_path / "data", "results": tmp_path / "results", "cache": tmp_path / "cache"}
    run_experiment(
        compose_cfg(
            dirs,
            "model=tiny_random",
            "task=tatoeba",
            "langpair.targets=[afr,deu]",
            "trainer.progress=false",
            "name=ret",
        )
    )
    df = load_records(dirs["results"])
    assert set(df["metric"]) == {"acc1_xx2en", "acc1_en2xx"} and set(df["split"]) == {"test"}
    assert set(df["source"]) == {"eng"} and len(df) == 4
    assert df["value"].min() > 0.5  # identical text up to case: near-perfect retrieval even untrained
    # mis-aligned files: one clear error
    (folder / "tatoeba.deu-eng.deu").write_text("\n".join(base[:10]) + "\n")
    with pytest.raises(XlexpError, match="has 10 lines but .* has 40"):
        load_split(load_task("tatoeba"), "deu", "test", dirs["data"])


@pytest.mark.unit
def test_retrieval_accuracy_math():
    a = np.eye(3)
    b = np.array([[1.0, 0, 0], [0, 0, 1.0], [0, 1.0, 0]])
    out = retrieval_accuracy(a, b)
    assert out == {"acc1_xx2en": pytest.approx(1 / 3), "acc1_en2xx": pytest.approx(1 / 3)}


@pytest.mark.unit
@pytest.mark.parametrize(
    "line, expected",
    [
        ("paris B-LOC extra\n", r"de/test.txt:\d+: expected 2 fields \(token TAG\), found 3"),
        ("paris B-CITY\n", r"de/test.txt:\d+: label 'B-CITY' is not in the task's label list .*label_map"),
    ],
)
def test_conll_validation_names_file_and_line(ner_dirs, line, expected):
    path = ner_dirs["data"] / "wikiann" / "de" / "test.txt"
    path.write_text(line + path.read_text())
    with pytest.raises(XlexpError, match=expected):
        load_split(load_task("wikiann"), "de", "test", ner_dirs["data"])


def test_label_map_reconciles_label_sets(ner_dirs):
    path = ner_dirs["data"] / "wikiann" / "de" / "test.txt"
    path.write_text(path.read_text().replace("B-LOC", "B-GPE"))
    run_experiment(
        compose_cfg(
            ner_dirs,
            *TINY,
            "task=wikiann",
            "langpair.sources=[en]",
            "langpair.targets=[de]",
            "trainer.epochs=1",
            "+task.label_map={de: {B-GPE: B-LOC}}",
            "name=mapped",
        )
    )
    assert not load_records(ner_dirs["results"]).empty


@pytest.mark.unit
def test_missing_split_lists_what_exists(ner_dirs):
    (ner_dirs["data"] / "wikiann" / "de" / "dev.txt").unlink()
    with pytest.raises(XlexpError, match=r"no 'dev' split .* that folder has: test.txt, train.txt"):
        load_split(load_task("wikiann"), "de", "dev", ner_dirs["data"])


def test_second_run_does_no_tokenization(ner_dirs):
    overrides = [*TINY, "task=wikiann", "langpair.sources=[en]", "langpair.targets=[en,de]", "trainer.epochs=1"]
    run_experiment(compose_cfg(ner_dirs, *overrides, "name=c1"))
    files = {p: p.stat().st_mtime_ns for p in (ner_dirs["cache"] / "tokenized").rglob("*.npz")}
    assert len(files) == 5  # en train/dev/test, de dev/test
    from xlexp.data import tokenized as data

    calls = []
    original = data.tokenize_words
    data.tokenize_words = lambda *a, **k: calls.append(1) or original(*a, **k)
    try:
        run_experiment(compose_cfg(ner_dirs, *overrides, "name=c2"))
    finally:
        data.tokenize_words = original
    assert calls == []
    assert {p: p.stat().st_mtime_ns for p in (ner_dirs["cache"] / "tokenized").rglob("*.npz")} == files


@pytest.mark.unit
def test_real_masakhapos_and_tatoeba_layouts_read():
    from conftest import SHARED_DATA

    if not (SHARED_DATA / "masakhapos").is_dir():
        pytest.skip("../shared/data not present")
    pos = load_task("masakhapos")
    assert len(load_split(pos, "yor", "test", SHARED_DATA)) > 500
    assert not pos.has_split("bm_crb", "train", SHARED_DATA)  # test-only treebank
    tat = load_task("tatoeba")
    assert len(tat.languages) == 112 and len(load_split(tat, "deu", "test", SHARED_DATA)) == 1000
