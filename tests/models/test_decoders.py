"""Decoder (GPT-style) models as classifiers: the tiny random Llama-style decoder end to end (full
fine-tuning and LoRA), last-token pooling, the pad token, vocabulary trimming with a tied LM head,
LoRA targets from the architecture, and the hub configs' one-line offline error."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import SHARED_DATA, compose_cfg, model_of
from xlexp import XlexpError, load_records, run_experiment

DEC = [
    "model=tiny_random_decoder",
    "optimizer.lr=1e-3",
    "trainer.epochs=2",
    "data.batch_size=8",
    "trainer.progress=false",
]
THREE = ["langpair.sources=[eng]", "langpair.targets=[eng,ind,jav]"]
HUB_DECODERS = ["qwen2_5_0_5b", "qwen2_5_1_5b", "qwen2_5_7b", "llama3_2_1b", "gemma2_2b", "bloomz_560m", "mgpt"]
HUB_SEQ2SEQ = ["mt5_small", "nllb_600m", "m2m100_418m", "mbart50"]


def _tiny(dirs, *overrides):
    """The tiny decoder's folder and its typed settings, built from the test data's text."""
    from xlexp import TaskSpec
    from xlexp.experiment import regimes
    from xlexp.experiment.context import training_texts
    from xlexp.experiment.plan import make_plan
    from xlexp.models.encoders import load_tokenizer, resolve_model_path

    cfg = compose_cfg(dirs, *DEC, *THREE, *overrides)
    m = model_of(cfg)
    spec = TaskSpec.from_config(cfg.task)
    regime = regimes.get("zero_shot")
    plan = make_plan(
        regime, regime.settings_class(name="zero_shot"), ["eng"], ["eng", "ind", "jav"], spec, dirs["data"]
    )
    path = resolve_model_path(m, dirs["cache"], training_texts(spec, plan, dirs["data"], "auto"), 0)
    return m, path, load_tokenizer(m, path)


@pytest.mark.parametrize("peft,method", [(None, "full"), ("lora", "lora-r16")])
def test_decoder_zero_shot_matrix_full_and_lora(dirs, peft, method):
    extra = [f"model.peft={peft}", "optimizer.lr=3e-3"] if peft else []
    run_experiment(compose_cfg(dirs, *DEC, *THREE, *extra, "name=dec"))
    df = load_records(dirs["results"])
    test = df[df["split"] == "test"]
    assert len(test) == 3 * 2 * 3  # targets x (accuracy, macro_f1) x rules
    assert set(test["family"]) == {"decoder"} and set(test["finetune"]) == {method}
    assert set(test["model"]) == {"tiny_random_decoder"} and test["value"].between(0, 1).all()
    row = test.iloc[0]
    if peft:  # adapters + head only
        assert row["trainable_params"] < row["params"] / 3
    else:
        assert row["trainable_params"] == row["params"]


def test_tiny_decoder_has_no_pad_token_so_eos_pads_and_pooling_takes_the_last_real_token(dirs):
    from xlexp.models.encoders import load_classifier

    m, path, tok = _tiny(dirs)
    assert tok.pad_token == tok.eos_token == "</s>" and tok.bos_token == "<s>"
    ids = tok(["the food was good", "bad"])["input_ids"]
    assert ids[0][0] == tok.bos_token_id
    model = load_classifier(m, path, 3).eval()
    width = max(map(len, ids))
    batch = torch.full((2, width + 3), tok.pad_token_id)
    mask = torch.zeros_like(batch)
    for i, x in enumerate(ids):
        batch[i, : len(x)] = torch.tensor(x)
        mask[i, : len(x)] = 1
    with torch.no_grad():
        together = model(batch, mask)
        alone = model(torch.tensor([ids[1]]), torch.ones(1, len(ids[1]), dtype=torch.long))
    # the short row's padding does not change its logits: pooling reads its last real token
    torch.testing.assert_close(together[1:], alone, rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_decoder_learns_on_nusax_english(tmp_path):
    """Trained on real NusaX English with the lr the config documents (1e-3), the tiny decoder beats
    the majority class on the English test split."""
    if not (SHARED_DATA / "nusax_senti" / "english" / "train.csv").exists():
        pytest.skip(f"real NusaX data not found under {SHARED_DATA}")
    dirs = {"data": SHARED_DATA, "results": tmp_path / "results", "cache": tmp_path / "cache"}
    run_experiment(
        compose_cfg(
            dirs,
            "model=tiny_random_decoder",
            "optimizer.lr=1e-3",
            "trainer.epochs=8",
            "data.batch_size=16",
            "trainer.progress=false",
            "langpair.sources=[eng]",
            "langpair.targets=[eng]",
            "name=learn",
        )
    )
    df = load_records(dirs["results"])
    f1 = df[(df["metric"] == "macro_f1") & (df["split"] == "test") & (df["selection"] == "source_dev")]["value"].item()
    import pandas as pd

    labels = pd.read_csv(SHARED_DATA / "nusax_senti" / "english" / "test.csv")["label"]
    top = labels.value_counts(normalize=True).iloc[0]
    majority_f1 = (2 * top / (1 + top)) / 3  # F1 of the majority class, 0 for the two others
    print(f"tiny decoder, NusaX English test macro-F1 {f1:.4f} vs majority class {majority_f1:.4f}")
    assert f1 > majority_f1 + 0.05, (f1, majority_f1)


def test_trimming_keeps_the_decoder_classifier_and_the_tied_lm_head_exact(dirs):
    from xlexp.data.tokenized import TokenizedSplit
    from xlexp.data.vocab import plan_trim, trim_embeddings
    from xlexp.models.encoders import load_classifier, load_language_model

    m, path, tok = _tiny(dirs)
    texts = ["the food was good", "makanan itu enak", "bad awful store"]
    ids = [np.asarray(x, dtype=np.int32) for x in tok(texts)["input_ids"]]
    split = TokenizedSplit(ids, np.zeros(len(ids), dtype=np.int64))
    # an unk token is needed for the ids nothing uses
    trim = plan_trim([split], tok, len(tok))
    new_ids = [torch.tensor(trim.old_to_new[x], dtype=torch.long)[None] for x in ids]

    torch.manual_seed(0)
    clf = load_classifier(m, path, 3).eval()
    with torch.no_grad():
        before = [clf(torch.tensor(x, dtype=torch.long)[None], torch.ones(1, len(x), dtype=torch.long)) for x in ids]
        trim_embeddings(clf.encoder, trim)
        after = [clf(x, torch.ones_like(x)) for x in new_ids]
    for a, b in zip(before, after):
        torch.testing.assert_close(a, b)

    lm = load_language_model(m, path).eval()
    assert lm.get_output_embeddings().weight.data_ptr() == lm.get_input_embeddings().weight.data_ptr()  # tied
    kept = torch.from_numpy(trim.kept.astype(np.int64))
    with torch.no_grad():
        full = lm(torch.tensor(ids[0], dtype=torch.long)[None]).logits[..., kept]
        trim_embeddings(lm, trim)
        small = lm(new_ids[0]).logits
    assert lm.get_output_embeddings().weight.data_ptr() == lm.get_input_embeddings().weight.data_ptr()  # still tied
    assert small.shape[-1] == trim.size
    torch.testing.assert_close(full, small)


def test_lora_targets_come_from_the_architecture(dirs):
    from xlexp.models.encoders import load_classifier
    from xlexp.models.finetune import prepare
    from xlexp.models.peft_setup import lora_targets

    m, path, _ = _tiny(dirs, "model.peft=lora")
    clf = load_classifier(m, path, 3)
    assert lora_targets(clf.encoder, ("auto",), m.name) == ["q_proj", "k_proj", "v_proj", "o_proj"]
    with pytest.raises(XlexpError, match="not linear layers"):
        lora_targets(clf.encoder, ("query",), m.name)
    clf = prepare(clf, m)
    names = [n for n, p in clf.named_parameters() if p.requires_grad]
    assert names and all("lora_" in n or n.startswith("classifier.") for n in names)


def test_qlora_needs_cuda_one_line(dirs):
    if torch.cuda.is_available():
        pytest.skip("a GPU is present: QLoRA runs there (benchmarks/gpu_decoder.py)")
    with pytest.raises(XlexpError, match="needs a CUDA GPU") as e:
        run_experiment(compose_cfg(dirs, *DEC, *THREE, "model.peft=qlora"))
    assert "\n" not in str(e.value)


@pytest.mark.unit
def test_decoder_settings_are_checked():
    from xlexp.config.schema import model_settings

    with pytest.raises(XlexpError, match="model.pooling"):
        model_settings({"name": "d", "family": "decoder", "pooling": "cls"})
    with pytest.raises(XlexpError, match="model.peft"):
        model_settings({"name": "e", "peft": "qlora"})  # encoders: no 4-bit path
    with pytest.raises(XlexpError, match="model.family"):
        model_settings({"name": "x", "family": "decodr"})
    assert model_settings({"name": "d", "family": "decoder", "peft": "qlora"}).finetune == "qlora-r8"


@pytest.mark.parametrize("name", HUB_DECODERS + HUB_SEQ2SEQ)
def test_hub_decoders_and_seq2seq_fail_offline_with_one_line(dirs, tmp_path, monkeypatch, name):
    """Offline with an empty HF cache: the encoders' one-line error naming `hf download <id>`."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    cfg = compose_cfg(dirs, f"model={name}", "langpair.targets=[eng]", "trainer.epochs=1", "trainer.progress=false")
    assert cfg.model.path and cfg.model.family in ("decoder", "seq2seq")
    with pytest.raises(XlexpError, match=f"hf download {cfg.model.path}") as e:
        run_experiment(cfg)
    assert "\n" not in str(e.value)


def test_decoder_tagger_runs_a_pos_matrix(tmp_path):
    """Decoders as taggers (a head on every position, labels on each word's first piece): the
    MasakhaPOS path end to end on a few real sentences, with LoRA."""
    if not (SHARED_DATA / "masakhapos").is_dir():
        pytest.skip("../shared/data/masakhapos not present")
    dirs = {"data": SHARED_DATA, "results": tmp_path / "results", "cache": tmp_path / "cache"}
    run_experiment(
        compose_cfg(
            dirs,
            "model=tiny_random_decoder",
            "task=masakhapos",
            "langpair.sources=[en_ewt]",
            "langpair.targets=[en_ewt,hau]",
            "data.max_train_examples=32",
            "data.max_eval_examples=16",
            "trainer.epochs=1",
            "trainer.progress=false",
            "regime.dev_targets=none",
            "optimizer.lr=1e-3",
            "model.peft=lora",
        )
    )
    df = load_records(dirs["results"])
    test = df[(df.split == "test") & (df.metric == "accuracy")]
    assert set(test.target) == {"en_ewt", "hau"} and set(df.family) == {"decoder"}
    assert test["value"].between(0, 1).all() and (test["n_examples"] == 16).all()
