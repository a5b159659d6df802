"""In-context cross-lingual transfer (regime=icl) with the tiny random decoder: K = 0 and K = 4 end
to end, shot sets saved and reused, verbaliser scoring checked against a plain forward pass,
prompts per language, calibration, and `xlexp compare` between a fine-tuned and an ICL matrix."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from conftest import compose_cfg
from xlexp import XlexpError, load_predictions, load_records, run_experiment

ICL = [
    "model=tiny_random_decoder",
    "regime=icl",
    "trainer.progress=false",
    "langpair.sources=[eng]",
    "langpair.targets=[eng,ind,jav]",
]


def test_icl_k0_and_k4_end_to_end(dirs):
    run_experiment(compose_cfg(dirs, *ICL, "regime.k=[0,4]", "name=icl"))
    df = load_records(dirs["results"])
    test = df[df["split"] == "test"]
    assert set(test["family"]) == {"decoder"} and set(test["finetune"]) == {"icl"} and set(test["regime"]) == {"icl"}
    assert sorted(test["k"].unique()) == [0, 4]
    assert test[test["k"] == 4]["shot_set"].unique().tolist() == [0]
    assert test[test["k"] == 0]["shot_set"].isna().all()
    # 3 targets x 2 K x (accuracy, macro_f1), once each: no checkpoint, so the one rule 'none'
    assert len(test) == 3 * 2 * 2 and set(test["selection"]) == {"none"}
    assert test.groupby(["target", "k", "metric"])["value"].nunique().eq(1).all()
    assert set(test["trainable_params"]) == {0} and (test["params"] > 0).all()
    assert test["value"].between(0, 1).all() and set(test["n_examples"]) == {40}
    shots = list((dirs["results"] / "shots" / "nusax_senti" / "eng").glob("k4-total-set0-*.json"))
    assert len(shots) == 1 and len(json.loads(shots[0].read_text())["ids"]) == 4
    assert len(load_predictions(dirs["results"])) == 40 * 3 * 2  # paired comparisons need them


def test_icl_shot_sets_are_deterministic_and_reusable_from_a_file(dirs, tmp_path):
    run_experiment(compose_cfg(dirs, *ICL, "regime.k=[4]", "name=drawn"))
    saved = next((dirs["results"] / "shots" / "nusax_senti" / "eng").glob("k4-*.json"))
    ids = json.loads(saved.read_text())["ids"]
    file = tmp_path / "shots.json"
    file.write_text(json.dumps({"eng": {"4": [ids]}}))
    run_experiment(compose_cfg(dirs, *ICL, "regime.k=[4]", f"regime.shots_file={file}", "name=reused"))
    df = load_records(dirs["results"])
    a, b = (
        df[(df["experiment"] == e) & (df["split"] == "test")]
        .sort_values(["target", "metric", "selection"])["value"]
        .tolist()
        for e in ("drawn", "reused")
    )
    assert a == b


def test_verbaliser_scores_equal_a_plain_forward_pass(dirs):
    """Batched, left-padded, length-sorted scoring with logits on the last positions only gives the
    summed log-probabilities of an unpadded forward pass of each (context, continuation)."""
    from tests.models.test_decoders import _tiny
    from xlexp.engine.lm_scoring import continuation_logprobs
    from xlexp.models.encoders import load_language_model

    m, path, tok = _tiny(dirs)
    lm = load_language_model(m, path).eval()
    contexts = ["the food was good here", "bad", "makanan itu sangat enak di sini kami"]
    conts = [["good", "bad awful", "ticket"]] * 3
    got, cut = continuation_logprobs(lm, tok, contexts, conts, 2, torch.device("cpu"), "fp32", 512)
    assert cut == 0
    for i, c in enumerate(contexts):
        for j, cont in enumerate(conts[i]):
            ctx_ids = tok(c)["input_ids"]
            cont_ids = tok(cont, add_special_tokens=False)["input_ids"]
            ids = torch.tensor([ctx_ids + cont_ids])
            with torch.no_grad():
                logp = torch.log_softmax(lm(ids).logits[0].float(), -1)
            want = sum(float(logp[len(ctx_ids) + t - 1, tok_id]) for t, tok_id in enumerate(cont_ids))
            assert got[i, j] == pytest.approx(want, abs=1e-4)
    # a context longer than the budget loses its oldest tokens, keeps <s>, and is counted
    short, cut = continuation_logprobs(
        lm, tok, [" ".join(["food"] * 40)], [["good"]], 2, torch.device("cpu"), "fp32", 10
    )
    assert cut == 1 and np.isfinite(short).all()


@pytest.mark.unit
def test_prompts_per_language_and_their_checks():
    from xlexp.tasks.prompts import prompt_for

    labels = ("negative", "neutral", "positive")
    options = {
        "prompt": {
            "template": "Text: {text}\nSentiment: {label}",
            "instruction": "Classify.",
            "languages": {"ind": {"verbalizers": {"negative": "negatif", "neutral": "netral", "positive": "positif"}}},
        }
    }
    eng, ind = prompt_for(options, "eng", labels, "t"), prompt_for(options, "ind", labels, "t")
    assert eng.verbalizers == labels and ind.verbalizers == ("negatif", "netral", "positif")
    assert eng.context("good") == "Text: good\nSentiment:" and eng.continuations()[2] == " positive"
    assert ind.demonstration("bagus", None, 2) == "Text: bagus\nSentiment: positif" and ind.instruction == "Classify."
    with pytest.raises(XlexpError, match="must end with"):
        prompt_for({"prompt": {"template": "{label}: {text}"}}, "eng", labels, "t")
    with pytest.raises(XlexpError, match="no word for label"):
        prompt_for({"prompt": {"verbalizers": {"negative": "bad"}}}, "eng", labels, "t")
    with pytest.raises(XlexpError, match="prompt.tempate is not a prompt key"):
        prompt_for({"prompt": {"tempate": "x {label}"}}, "eng", labels, "t")


def test_task_prompt_key_is_declared_and_calibration_runs(dirs):
    prompt = "+task.prompt={template: 'Review: {text} Sentiment: {label}', verbalizers: {negative: bad, neutral: okay, positive: good}}"
    run_experiment(compose_cfg(dirs, *ICL, "regime.k=[4]", "regime.calibrate=true", prompt, "name=cal"))
    df = load_records(dirs["results"])
    assert set(df[df["split"] == "test"]["k"]) == {4}


def test_compare_puts_fine_tuned_and_in_context_side_by_side(dirs):
    from xlexp.views.compare import compare

    run_experiment(compose_cfg(dirs, *ICL, "regime.k=[0,4]", "name=icl"))
    run_experiment(
        compose_cfg(
            dirs,
            "model=tiny_random_decoder",
            "optimizer.lr=1e-3",
            "trainer.epochs=1",
            "data.batch_size=8",
            "trainer.progress=false",
            "langpair.sources=[eng]",
            "langpair.targets=[eng,ind,jav]",
            "name=ft",
        )
    )
    zero = compare(dirs["results"], "ft", "icl", "macro_f1", n_boot=100)
    assert len(zero.cells) == 3
    four = compare(dirs["results"], "ft", "icl", "macro_f1", n_boot=100, k_b=4)
    assert len(four.cells) == 3
    assert not np.allclose(zero.cells.sort_values("target")["delta"].to_numpy(), np.nan, equal_nan=True)


def test_icl_refuses_what_it_cannot_score_with_one_line(dirs):
    with pytest.raises(XlexpError, match="needs a decoder") as e:
        run_experiment(
            compose_cfg(
                dirs,
                "model=tiny_random",
                "regime=icl",
                "trainer.progress=false",
                "langpair.sources=[eng]",
                "langpair.targets=[ind]",
            )
        )
    assert "\n" not in str(e.value)
    with pytest.raises(XlexpError, match="trim_vocab"):
        run_experiment(compose_cfg(dirs, *ICL, "model.trim_vocab=true"))
    with pytest.raises(XlexpError, match="regime.k"):
        run_experiment(compose_cfg(dirs, *ICL, "regime.k=[-1]"))
