"""Extractive QA (task type ``extractive_qa``): the SQuAD/MLQA metric, the SQuAD JSON reader and its
options (bad answers, the XQuAD exclusion, seeded splits), windowing with offsets, span
post-processing, and a tiny end-to-end run with stored predictions and ``xlexp compare``."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import yaml

from xlexp import XlexpError
from xlexp.tasks import qa_metric
from xlexp.tasks.spec import TaskSpec, load_split, load_task

REAL = Path(os.environ.get("XLEXP_DATA_DIR", "data"))
HAS_QA = (REAL / "qa" / "xquad" / "xquad.en.json").exists() and (REAL / "qa" / "squad_it").is_dir()
needs_real = pytest.mark.skipif(not HAS_QA, reason=f"real QA data not under {REAL}/qa (set XLEXP_DATA_DIR)")


# -- the metric ---------------------------------------------------------------------------------
@pytest.mark.unit
@pytest.mark.parametrize(
    "pred, gold, em, f1",
    [
        ("The Panthers", "Panthers", 1.0, 1.0),  # article and case
        ("panthers!", "the Panthers.", 1.0, 1.0),  # punctuation
        ("Denver Broncos", "Broncos", 0.0, 2 / 3),  # P = 1/2, R = 1 -> 2/3
        ("in the year 1990", "1990 year", 0.0, 0.8),  # P = 2/3, R = 1 -> 0.8
        ("", "Broncos", 0.0, 0.0),  # empty prediction
        ("the", "a", 1.0, 0.0),  # both normalise to '': EM 1, F1 0 (as the official script)
        ("an apple", "anapple", 0.0, 0.0),  # articles only as whole words
        ("Santa  Clara,  California", "santa clara california", 1.0, 1.0),  # whitespace
        ("rock-n-roll", "rocknroll", 1.0, 1.0),  # ASCII punctuation is deleted, not split on
        ("cats cats", "cats", 0.0, 2 / 3),  # token multiset: P = 1/2, R = 1
    ],
)
def test_squad_metric_hand_computed(pred, gold, em, f1):
    assert qa_metric.exact_match(pred, gold) == em
    assert qa_metric.f1(pred, gold) == pytest.approx(f1)


@pytest.mark.unit
def test_squad_metric_max_over_gold_answers_and_corpus_mean():
    assert qa_metric.score("Denver Broncos", ["Broncos", "the Denver Broncos", "Denver"]) == (1.0, 1.0)
    assert qa_metric.score("Denver", ["Broncos", "Denver Broncos"]) == (0.0, pytest.approx(2 / 3))
    assert qa_metric.score("anything", []) == (0.0, 0.0)
    scores = qa_metric.corpus_scores(["Broncos", "x", ""], [["Broncos"], ["y z"], ["w"]])
    assert scores == {"exact_match": pytest.approx(1 / 3), "f1": pytest.approx(1 / 3)}


@pytest.mark.unit
def test_squad_keeps_unicode_punctuation_mlqa_drops_it():
    # the v1.1 script only knows string.punctuation: '«»' and '。' stay, so EM fails
    assert qa_metric.exact_match("«Roma»", "Roma") == 0.0
    assert qa_metric.exact_match("«Roma»", "Roma", "mlqa", "es") == 1.0


@pytest.mark.unit
def test_mlqa_language_aware_normalisation():
    # Spanish and German articles go, English ones stay in German text
    assert qa_metric.exact_match("la casa", "casa", "mlqa", "es") == 1.0
    assert qa_metric.exact_match("die Mauer", "Mauer", "mlqa", "de") == 1.0
    assert qa_metric.exact_match("the Mauer", "Mauer", "mlqa", "de") == 0.0
    # Chinese: no article removal, character-level F1 (the squad mode sees one token each)
    assert qa_metric.f1("北京大学", "北京", "mlqa", "zh") == pytest.approx(2 * 1 * 0.5 / 1.5)
    assert qa_metric.f1("北京大学", "北京", "squad") == 0.0
    assert qa_metric.normalize_answer("台北，是首都。", "mlqa", "zh-Hant") == "台 北 是 首 都"
    # mixed: Latin runs stay whitespace tokens
    assert qa_metric.normalize_answer("iPhone 手机", "mlqa", "zh") == "iphone 手 机"
    with pytest.raises(ValueError):
        qa_metric.normalize_answer("x", "bleu")


# -- a tiny SQuAD JSON task ---------------------------------------------------------------------
CONTEXT = "Super Bowl 50 was an American football game. The Denver Broncos defeated the Carolina Panthers 24 to 10."


def squad_json(path: Path, paragraphs: list[tuple[str, list[tuple[str, str, str, int]]]]) -> Path:
    data = {
        "version": "1.1",
        "data": [
            {
                "title": "t",
                "paragraphs": [
                    {
                        "context": ctx,
                        "qas": [
                            {"id": qid, "question": q, "answers": [{"text": a, "answer_start": s}]}
                            for qid, q, a, s in qas
                        ],
                    }
                    for ctx, qas in paragraphs
                ],
            }
        ],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def tiny_spec(**options) -> TaskSpec:
    raw = {
        "name": "tinyqa",
        "type": "extractive_qa",
        "metrics": ["f1", "exact_match"],
        "local": {"path": "tinyqa/{folder}/{split}.json"},
        "languages": ["en", "xx"],
        **options,
    }
    return TaskSpec.from_config(raw)


@pytest.mark.unit
def test_reader_reads_squad_json(tmp_path):
    squad_json(
        tmp_path / "tinyqa/en/test.json",
        [
            (
                CONTEXT,
                [
                    ("q1", "Who won?", "Denver Broncos", CONTEXT.index("Denver")),
                    ("q2", "Who lost?", "Carolina Panthers", CONTEXT.index("Carolina")),
                ],
            )
        ],
    )
    ex = load_split(tiny_spec(), "en", "test", tmp_path)
    assert [e.qid for e in ex] == ["q1", "q2"]
    assert (
        ex[0].question == "Who won?"
        and ex[0].context == CONTEXT
        and ex[0].answers == (("Denver Broncos", CONTEXT.index("Denver")),)
    )


@pytest.mark.unit
def test_bad_answer_start_one_line_error_or_counted_skip(tmp_path, caplog):
    squad_json(
        tmp_path / "tinyqa/en/train.json",
        [
            (
                CONTEXT,
                [
                    ("good", "Who won?", "Denver Broncos", CONTEXT.index("Denver")),
                    ("bad-7", "Who lost?", "Carolina Panthers", 70),
                ],
            )
        ],
    )
    with pytest.raises(XlexpError) as err:
        load_split(tiny_spec(), "en", "train", tmp_path)
    msg = str(err.value)
    assert "\n" not in msg and "tinyqa/en/train.json" in msg and "question bad-7" in msg and "answer_start 70" in msg
    assert "bad_answers: repair" in msg and "skip" in msg
    with caplog.at_level("WARNING"):
        ex = load_split(tiny_spec(bad_answers="skip"), "en", "train", tmp_path)
    assert [e.qid for e in ex] == ["good"]
    assert "1 skipped, 1 question(s) left without an answer skipped" in caplog.text


# ARCD's case (issue #33): a no-break space in the context where the answer text has a plain space
NBSP_CONTEXT = CONTEXT.replace("Carolina Panthers", "Carolina\u00a0Panthers")


@pytest.mark.unit
def test_a_test_split_keeps_questions_whose_offsets_miss_and_scores_them_on_texts(tmp_path, caplog):
    """Test (and dev) splits are scored on answer texts as the official script does: a wrong offset
    drops no question, whatever bad_answers says (it was: the test set lost them with `skip`)."""
    squad_json(
        tmp_path / "tinyqa/en/test.json",
        [
            (
                NBSP_CONTEXT,
                [
                    ("good", "Who won?", "Denver Broncos", NBSP_CONTEXT.index("Denver")),
                    (
                        "nbsp",
                        "Who lost?",
                        "Carolina Panthers",
                        NBSP_CONTEXT.index("Carolina"),
                    ),  # text has a plain space
                    ("far", "How many?", "24", 3),
                ],
            )
        ],
    )  # offset off, text there
    for options in ({}, {"bad_answers": "skip"}):
        with caplog.at_level("WARNING"):
            ex = load_split(tiny_spec(**options), "en", "test", tmp_path)
        assert [e.qid for e in ex] == ["good", "nbsp", "far"]
        assert ex[1].answers == (("Carolina Panthers", NBSP_CONTEXT.index("Carolina")),)  # the file's text, scored
        assert ex[2].answers == (("24", NBSP_CONTEXT.index("24")),)  # offset repaired
        assert "2 answer(s) whose answer_start misses their text" in caplog.text and "are kept" in caplog.text
        caplog.clear()
    from xlexp.engine.qa import score_answers

    em, f1 = score_answers(["Carolina Panthers", "24", "Denver"], ex[1:] + ex[:1])
    assert list(em) == [1.0, 1.0, 0.0]


@pytest.mark.unit
def test_training_offsets_are_repaired_near_answer_start_whitespace_normalised(tmp_path, caplog):
    from xlexp.tasks.types.extractive_qa import repair_answer

    squad_json(
        tmp_path / "tinyqa/en/train.json",
        [
            (
                NBSP_CONTEXT,
                [
                    ("nbsp", "Who lost?", "Carolina Panthers", NBSP_CONTEXT.index("Carolina")),
                    ("gone", "Who?", "Kansas City", 5),
                ],
            )
        ],
    )
    with caplog.at_level("WARNING"):
        ex = load_split(tiny_spec(bad_answers="repair"), "en", "train", tmp_path)
    start = NBSP_CONTEXT.index("Carolina")
    assert [e.qid for e in ex] == ["nbsp"] and ex[0].answers == (("Carolina\u00a0Panthers", start),)
    assert ex[0].context[start : start + len(ex[0].answers[0][0])] == ex[0].answers[0][0]  # a valid span to train on
    assert "1 repaired near answer_start, 1 skipped" in caplog.text
    # the occurrence nearest answer_start wins; none within the window: not repaired
    ctx = "the cat sat. " + "x" * 300 + " the cat ran."
    assert repair_answer(ctx, "the cat", len(ctx) - 14) == ("the cat", ctx.rindex("the cat"))
    assert repair_answer(ctx, "the  cat", 2) == ("the cat", 0)
    assert repair_answer(ctx, "the dog", 0) is None and repair_answer(ctx, "ran", 0) is None


@pytest.mark.unit
def test_splits_layout_partition_and_exclusion_option(tmp_path):
    paras = [
        (f"Context number {i} says {i}.", [(f"q{i}", f"What number {i}?", str(i), 22 if i < 10 else 23)])
        for i in range(20)
    ]
    squad_json(tmp_path / "tinyqa/xx/all.json", paras)
    squad_json(tmp_path / "tinyqa/en/test.json", [paras[3], paras[4]])
    layout = {
        "*": {"test": "test"},
        "xx": {"train": {"file": "all", "part": [0.0, 0.8]}, "dev": {"file": "all", "part": [0.8, 1.0]}},
    }
    plain = tiny_spec(splits=layout)
    train, dev = load_split(plain, "xx", "train", tmp_path), load_split(plain, "xx", "dev", tmp_path)
    assert len(train) == 16 and len(dev) == 4 and not {e.qid for e in train} & {e.qid for e in dev}
    assert not plain.has_split("en", "dev", tmp_path) and not plain.has_split("xx", "test", tmp_path)
    assert {"q3", "q4"} <= {e.qid for e in train + dev}  # nothing dropped without the option
    excl = tiny_spec(splits=layout, exclude_ids_from={"xx": {"language": "en", "split": "test"}})
    kept = {e.qid for s in ("train", "dev") for e in load_split(excl, "xx", s, tmp_path)}
    assert kept == {f"q{i}" for i in range(20)} - {"q3", "q4"}
    assert excl.fingerprint() != plain.fingerprint()  # the tokenized cache tells them apart


@pytest.mark.unit
def test_hub_layout_squad_source_and_tydiqa_id_prefix(tmp_path):
    mlqa, tydiqa, xquad = load_task("mlqa"), load_task("tydiqa"), load_task("xquad")
    assert mlqa.hub_location("de", "test") == ("facebook/mlqa", "mlqa.de.de", "test")
    assert mlqa.hub_location("de", "dev") == ("facebook/mlqa", "mlqa.de.de", "validation")
    assert mlqa.hub_location("de", "train") is None and mlqa.has_split("de", "dev", tmp_path)
    assert mlqa.hub_location("en", "train") == ("rajpurkar/squad", None, "train")
    assert tydiqa.hub_location("sw", "test") == ("google-research-datasets/tydiqa", "secondary_task", "validation")
    assert not tydiqa.has_split("sw", "dev", tmp_path) and tydiqa.has_split("en", "dev", tmp_path)
    # XQuAD English: test from the local file, train only from the hub (never the XQuAD file itself)
    assert xquad.local_path("en", "train", tmp_path) is None and xquad.local_path("en", "test", tmp_path) is not None
    assert xquad.hub_location("it", "train") is None
    rows = [
        (
            1,
            {
                "id": "swahili-1",
                "question": "q?",
                "context": "abc def",
                "answers": {"text": ["def"], "answer_start": [4]},
            },
        ),
        (
            2,
            {
                "id": "arabic-2",
                "question": "q?",
                "context": "abc def",
                "answers": {"text": ["abc"], "answer_start": [0]},
            },
        ),
    ]
    got = tydiqa.kind.examples(tydiqa, "sw", rows, "hub:google-research-datasets/tydiqa/secondary_task/validation")
    assert [e.qid for e in got] == ["swahili-1"]
    squad_rows = [
        (1, {"id": "56be", "question": "q?", "context": "abc def", "answers": {"text": ["abc"], "answer_start": [0]}})
    ]
    assert len(tydiqa.kind.examples(tydiqa, "en", squad_rows, "hub:rajpurkar/squad/None/train")) == 1
    assert mlqa.kind.examples(mlqa, "zh", squad_rows, "hub:x")[0].norm == "mlqa"


@pytest.mark.unit
def test_unknown_option_is_refused():
    with pytest.raises(XlexpError, match="exclude_ids_fro"):
        tiny_spec(exclude_ids_fro={"xx": {"language": "en"}})


# -- the real data ------------------------------------------------------------------------------
@needs_real
def test_no_xquad_paragraph_in_the_italian_training_data():
    spec = load_task("xquad")
    xquad = [
        load_split(spec, lang, "test", REAL)
        for lang in ("en", "ar", "de", "el", "es", "hi", "ro", "ru", "th", "tr", "vi", "zh")
    ]
    ids = {e.qid for e in xquad[0]}
    assert len(ids) == 1190 and all({e.qid for e in x} == ids for x in xquad)  # same ids in every language
    it = {s: load_split(spec, "it", s, REAL) for s in ("train", "dev")}
    assert not ids & {e.qid for s in it.values() for e in s}
    # paragraph level: no Italian context whose source paragraph held an XQuAD question
    raw = yaml.safe_load((Path(__file__).parents[2] / "xlexp/conf/task/xquad.yaml").read_text())
    assert raw["exclude_ids_from"]["it"] == {"language": "en", "split": "test"}
    from xlexp.tasks.types.extractive_qa import read_squad_json

    paras = read_squad_json(REAL / "qa/squad_it/SQuAD_it-test.json.gz")
    dropped_ctx = {ctx for ctx, qas in paras if any(q["id"] in ids for q in qas)}
    assert len(dropped_ctx) == 212 and sum(len(q) for c, q in paras if c in dropped_ctx) == 778
    assert not dropped_ctx & {e.context for s in it.values() for e in s}
    # 6,831 questions remain; the seeded 90/10 split loses only the counted bad answers
    assert sum(len(q) for c, q in paras if c not in dropped_ctx) == 6831
    assert 6700 < len(it["train"]) + len(it["dev"]) <= 6831 and len(it["dev"]) < len(it["train"]) / 5
    # without the option the overlap would be there: it is the option that removes it
    no_excl = TaskSpec.from_config({**raw, "exclude_ids_from": {}})
    assert ids & {e.qid for s in ("train", "dev") for e in load_split(no_excl, "it", s, REAL)}


@needs_real
def test_windows_recover_every_gold_span_of_a_real_sample():
    from transformers import AutoTokenizer  # noqa: F401  (the tiny model's tokenizer is a fast one)

    from xlexp.data.qa import tokenize_qa

    spec = load_task("xquad")
    tok = _tiny_tokenizer(spec)
    for lang, split in (("it", "train"), ("zh_hant", "train")):
        examples = load_split(spec, lang, split, REAL)[:150]
        windows = tokenize_qa(tok, examples, max_length=128, doc_stride=48, max_query_length=24)
        assert windows.n_truncated > 20  # long contexts were split
        assert all(len(x) <= 128 for x in windows.input_ids)
        found = set()
        for i, (s, e) in enumerate(windows.labels):
            ex = examples[windows.example_ids[i]]
            if s == 0:
                continue  # this window does not hold the answer
            off = windows.offsets[i]
            assert off[s, 0] >= 0 and off[e, 0] >= 0 and s <= e  # inside the context, never the question
            text, start = ex.answers[0]
            got = ex.context[off[s, 0] : off[e, 1]]
            # pieces may cover a few more characters than the answer (e.g. a word's tail), never fewer
            assert off[s, 0] <= start and off[e, 1] >= start + len(text) and text in got
            found.add(int(windows.example_ids[i]))
        # consecutive windows overlap by 48 pieces, so every answer shorter than that is wholly in one
        short = {
            i
            for i, ex in enumerate(examples)
            if len(tok(ex.answers[0][0], add_special_tokens=False)["input_ids"]) + 2 <= 48
        }
        assert len(short) > 130 and short <= found


def _tiny_tokenizer(spec):
    from omegaconf import OmegaConf
    from transformers import AutoTokenizer

    from xlexp.config.compose import compose_config
    from xlexp.config.schema import model_settings
    from xlexp.models.encoders import build_tiny_random

    texts = [
        t
        for lang in ("it", "zh_hant")
        for e in load_split(spec, lang, "train", REAL)[:300]
        for t in (e.question, e.context)
    ]
    cfg = model_settings(OmegaConf.to_container(compose_config(["model=tiny_random"]).model, resolve=True))
    import tempfile

    return AutoTokenizer.from_pretrained(str(build_tiny_random(cfg, texts, Path(tempfile.mkdtemp()))))


# -- post-processing ----------------------------------------------------------------------------
@pytest.mark.unit
def test_best_span_is_valid_and_best_over_windows():
    from xlexp.data.tokenized import TokenizedSplit
    from xlexp.engine.qa import best_span

    # positions 0-2: special/question pieces (offsets -1), 3-7: context
    off = np.array([[-1, -1], [-1, -1], [-1, -1], [0, 5], [6, 9], [10, 14], [15, 20], [-1, -1]])
    start = np.array([9.0, 8.0, 0.0, 1.0, 3.0, -1.0, -1.0, 9.0])
    end = np.array([9.0, 0.0, 8.0, 0.0, 0.0, 2.0, 5.0, 9.0])
    # the question/special positions score highest but are never chosen; end 6 is best, but
    # max_answer_length 2 allows only spans of at most 2 pieces: (4, 5)
    assert best_span(start, end, off, n_best=20, max_answer_length=30) == (8.0, 4, 6)
    assert best_span(start, end, off, n_best=1, max_answer_length=30) == (8.0, 4, 6)
    assert best_span(start, end, off, n_best=20, max_answer_length=2) == (5.0, 4, 5)
    # an end before the start is never a span
    assert best_span(
        np.array([0, 0, 0, 0, 0, 0, 9.0, 0]), np.array([0, 0, 0, 9.0, 0, 0, 1.0, 0]), off, max_answer_length=30
    ) == (pytest.approx(10.0), 6, 6)
    assert best_span(start, end, np.full((8, 2), -1)) is None

    # across windows: predict_answers keeps the best-scoring window of each question
    import torch

    from xlexp.engine.qa import predict_answers
    from xlexp.tasks.types.extractive_qa import QAExample

    class Fixed(torch.nn.Module):
        def __init__(self, logits):
            super().__init__()
            self.logits = logits

        def forward(self, input_ids, attention_mask):
            return torch.stack([self.logits[int(x[0])] for x in input_ids])

    ctx = "alpha beta gamma delta"
    ex = [QAExample(text="q?", text_pair=ctx, qid="a", answers=(("gamma", 11),))]
    w_off = [np.array([[-1, -1], [0, 5], [6, 10], [-1, -1]]), np.array([[-1, -1], [11, 16], [17, 22], [-1, -1]])]
    logits = {
        0: torch.tensor([[0, 0], [2.0, 0], [0, 2.0], [0, 0]]),  # best in window 0: "alpha beta" (4)
        1: torch.tensor([[0, 0], [5.0, 5.0], [0, 0], [0, 0]]),
    }  # window 1: "gamma" (10) wins
    split = TokenizedSplit(
        [np.array([0, 5, 6, 7]), np.array([1, 5, 6, 7])],
        np.zeros((2, 2), np.int64),
        example_ids=np.array([0, 0]),
        offsets=w_off,
        examples=ex,
    )
    preds = predict_answers(Fixed(logits), split, 8, 0, torch.device("cpu"))
    assert preds.texts == ["gamma"] and preds.exact_match.tolist() == [1.0] and preds.f1.tolist() == [1.0]


# -- end to end -----------------------------------------------------------------------------------
def small_mirror(root: Path) -> Path:
    """A small copy of the real qa/ layout (same file names and JSON), so runs stay quick: the first
    two XQuAD articles, SQuAD-it's paragraphs of those articles (which the exclusion must drop) plus
    30 others, and 40 DRCD paragraphs per file."""
    import gzip

    def subset(src: Path, keep) -> dict:
        opener = gzip.open if src.suffix == ".gz" else open
        with opener(src, "rt", encoding="utf-8") as f:
            data = json.load(f)
        data["data"] = keep(data["data"])
        return data

    def write(dst: Path, data: dict) -> None:
        dst.parent.mkdir(parents=True, exist_ok=True)
        opener = gzip.open if dst.suffix == ".gz" else open
        with opener(dst, "wt", encoding="utf-8") as f:
            json.dump(data, f, ensure_ascii=False)

    def first_paragraphs(n):
        def keep(articles):
            out, left = [], n
            for a in articles:
                if left <= 0:
                    break
                out.append({**a, "paragraphs": a["paragraphs"][:left]})
                left -= len(out[-1]["paragraphs"])
            return out

        return keep

    xq = REAL / "qa" / "xquad"
    for lang in ("en", "de", "zh"):
        write(root / f"qa/xquad/xquad.{lang}.json", subset(xq / f"xquad.{lang}.json", lambda a: a[:2]))
    ids = {
        q["id"]
        for a in subset(xq / "xquad.en.json", lambda a: a[:2])["data"]
        for p in a["paragraphs"]
        for q in p["qas"]
    }

    def italian(articles):
        out = []
        for a in articles:
            paras = [p for p in a["paragraphs"] if any(q["id"] in ids for q in p["qas"])]
            out.append({**a, "paragraphs": paras})
        out.append({"title": "rest", "paragraphs": [p for a in articles for p in a["paragraphs"][-1:]][:30]})
        return out

    write(root / "qa/squad_it/SQuAD_it-test.json.gz", subset(REAL / "qa/squad_it/SQuAD_it-test.json.gz", italian))
    for split in ("dev", "test"):
        write(root / f"qa/drcd/DRCD_{split}.json", subset(REAL / f"qa/drcd/DRCD_{split}.json", first_paragraphs(40)))
    return root


@needs_real
def test_tiny_end_to_end_run_records_predictions_and_compare(tmp_path):
    import pandas as pd

    from xlexp import load_predictions, load_records, run_experiment
    from xlexp.config.compose import compose_config
    from xlexp.views.compare import compare

    targets = ["de", "zh"]
    data = small_mirror(tmp_path / "data")
    spec = load_task("xquad")
    it_ids = {e.qid for s in ("train", "dev") for e in load_split(spec, "it", s, data)}
    assert it_ids and not it_ids & {e.qid for e in load_split(spec, "en", "test", data)}  # the overlap was dropped
    base = [
        f"paths.data_dir={data}",
        f"paths.results_dir={tmp_path / 'results'}",
        f"paths.cache_dir={tmp_path / 'cache'}",
        "task=xquad",
        "model=tiny_random",
        "optimizer.lr=1e-3",
        "trainer.epochs=1",
        "data.batch_size=8",
        "trainer.progress=false",
        "langpair.sources=[it]",
        f"langpair.targets=[{','.join(targets)}]",
        "data.max_train_examples=30",
        "data.max_eval_examples=25",
        "data.max_length=128",
    ]
    run_experiment(compose_config([*base, "name=qa_a"]))
    run_experiment(compose_config([*base, "name=qa_b", "optimizer.lr=3e-3"]))  # same eval questions
    df = load_records(tmp_path / "results")
    test = df[(df["split"] == "test") & (df["experiment"] == "qa_a")]
    assert set(test["target"]) == set(targets) and set(test["metric"]) == {"f1", "exact_match"}
    assert set(test["selection"]) == {"source_dev", "last"}  # XQuAD targets have no dev: no target_dev cells
    assert (test["n_examples"] == 25).all() and test["value"].between(0, 1).all()  # 25 of the mirror's questions
    assert set(df[df["split"] == "dev"]["target"]) == {"it"}
    preds = load_predictions(tmp_path / "results")
    a = preds[(preds["experiment"] == "qa_a") & (preds["selection"] == "source_dev")]
    assert len(a) == 25 * len(targets) and a["pred_text"].map(type).eq(str).all()
    # the stored per-question scores reproduce the recorded metric
    rec = test[(test["selection"] == "source_dev") & (test["metric"] == "f1")].set_index("target")["value"]
    assert a.groupby("target")["f1"].mean().to_dict() == pytest.approx(rec.to_dict())
    c = compare(tmp_path / "results", "qa_a", "qa_b", "f1", n_boot=200)
    assert set(c.cells["method"]) == {"examples"} and set(c.cells["target"]) == set(targets)
    with pytest.raises(XlexpError, match="'qa_a' has no test metric 'accuracy'; its metrics: exact_match, f1"):
        compare(tmp_path / "results", "qa_a", "qa_b", "accuracy", n_boot=200)
    assert compare(tmp_path / "results", "qa_a", "qa_b", n_boot=200).metric == "f1"  # QA's primary metric by default
    assert isinstance(df, pd.DataFrame)


@needs_real
def test_few_shot_draws_questions_not_windows(tmp_path):
    from xlexp import load_records, run_experiment
    from xlexp.config.compose import compose_config

    data = small_mirror(tmp_path / "data")
    base = [
        f"paths.data_dir={data}",
        f"paths.results_dir={tmp_path / 'results'}",
        f"paths.cache_dir={tmp_path / 'cache'}",
        "task=xquad",
        "model=tiny_random",
        "optimizer.lr=1e-3",
        "trainer.epochs=1",
        "data.batch_size=8",
        "trainer.progress=false",
        "langpair.sources=[it]",
        "langpair.targets=[zh_hant]",
        "regime=few_shot",
        "regime.k=[4]",
        "regime.shot_sets=1",
        "data.max_train_examples=12",
        "data.max_eval_examples=8",
        "data.max_length=128",
    ]
    with pytest.raises(XlexpError, match="k_per=total"):
        run_experiment(compose_config([*base, "name=fs_class"]))
    run_experiment(compose_config([*base, "regime.k_per=total", "name=fs"]))
    df = load_records(tmp_path / "results")
    cells = df[(df["experiment"] == "fs") & (df["split"] == "test") & (df["metric"] == "f1")]
    assert 4 in set(cells["k"].dropna().astype(int))
    shots = json.loads(next((tmp_path / "results" / "shots" / "xquad" / "zh_hant").glob("*.json")).read_text())
    n_train = len(load_split(load_task("xquad"), "zh_hant", "train", data))
    assert len(shots["ids"]) == 4 and max(shots["ids"]) < n_train  # 4 questions (not windows) of DRCD's train part
