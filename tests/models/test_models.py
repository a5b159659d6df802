"""Model options: vocabulary trimming, LoRA, freezing, gradient accumulation and checkpointing,
precision, and the records that say which was used."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import TINY, compose_cfg
from xlexp import XlexpError, load_records, run_experiment
from xlexp.config.schema import OptimizerSettings, model_settings
from xlexp.data.tokenized import TokenizedSplit
from xlexp.data.vocab import count_parameters, plan_trim, trim_embeddings
from xlexp.engine.hardware import resolve_precision
from xlexp.engine.loop import TrainSettings, train
from xlexp.models import finetune
from xlexp.models.encoders import build_tiny_random, load_classifier, load_tokenizer

TEXTS = ["the food was very good here", "we hate the dirty store", "order a ticket", "makanan itu sangat enak"]
MODEL_CFG = model_settings(
    {
        "name": "tiny_random",
        "source": "tiny_random",
        "vocab_size": 300,
        "hidden_size": 32,
        "num_layers": 2,
        "num_heads": 2,
        "intermediate_size": 64,
        "local_files_only": True,
        "pooling": "mean",
        "dropout": 0.0,
        "lora": {"r": 4, "alpha": 8, "dropout": 0.0, "target_modules": ["query", "value"]},
    }
)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> tuple[str, object]:
    path = build_tiny_random(MODEL_CFG, TEXTS * 5, tmp_path_factory.mktemp("tiny"), seed=0)
    return str(path), load_tokenizer(MODEL_CFG, str(path))


def _split(tokenizer, texts: list[str], labels: list[int] | None = None) -> TokenizedSplit:
    ids = [np.asarray(x, dtype=np.int32) for x in tokenizer(texts)["input_ids"]]
    return TokenizedSplit(ids, np.asarray(labels or [0] * len(texts), dtype=np.int64))


def _logits(model, split: TokenizedSplit, pad_id: int) -> torch.Tensor:
    from xlexp.data.tokenized import collate

    batch = collate(split, np.arange(len(split)), pad_id)
    model.eval()
    with torch.no_grad():
        return model(batch["input_ids"], batch["attention_mask"])


@pytest.mark.unit
def test_trimmed_model_gives_identical_logits_on_kept_tokens(tiny):
    path, tokenizer = tiny
    model = load_classifier(MODEL_CFG, path, 3)
    split = _split(tokenizer, TEXTS)
    before = _logits(model, split, tokenizer.pad_token_id)
    n_before = count_parameters(model)[0]

    trim = plan_trim([split], tokenizer, len(tokenizer))
    trimmed = copy.deepcopy(model)
    trim_embeddings(trimmed.encoder, trim)
    remapped = TokenizedSplit([trim.old_to_new[x] for x in split.input_ids], split.labels)
    after = _logits(trimmed, remapped, int(trim.old_to_new[tokenizer.pad_token_id]))

    assert trim.size < len(tokenizer)
    assert trimmed.encoder.get_input_embeddings().num_embeddings == trim.size == trimmed.encoder.config.vocab_size
    assert count_parameters(trimmed)[0] == n_before - (len(tokenizer) - trim.size) * 32
    torch.testing.assert_close(after, before, rtol=0, atol=1e-6)
    # a text outside the kept set would differ: the map sends its unknown ids to [UNK]
    assert all(trim.old_to_new[i] == i_new for i_new, i in enumerate(trim.kept))


@pytest.mark.unit
def test_trim_keeps_special_tokens(tiny):
    _, tokenizer = tiny
    trim = plan_trim([_split(tokenizer, TEXTS[:1])], tokenizer, len(tokenizer))
    assert set(tokenizer.all_special_ids) <= set(trim.kept.tolist())


def _train_copy(model, split, pad_id, epochs=1, batch_size=4, accum=1, lr=1e-2):
    m = copy.deepcopy(model)
    opt = OptimizerSettings(name="sgd", lr=lr, weight_decay=0.0)
    settings = TrainSettings(
        epochs=epochs,
        batch_size=batch_size,
        eval_batch_size=8,
        group_by_length=False,
        eval_every=None,
        precision="fp32",
        seed=0,
        grad_accum_steps=accum,
    )
    result = train(m, split, opt, settings, pad_id, torch.device("cpu"))
    return m, result


def test_gradient_accumulation_equals_the_large_batch(tiny):
    path, tokenizer = tiny
    torch.manual_seed(0)
    model = load_classifier(MODEL_CFG, path, 3)
    split = _split(tokenizer, TEXTS * 2, [0, 1, 2, 0] * 2)
    big, r1 = _train_copy(model, split, tokenizer.pad_token_id, batch_size=8, accum=1)
    small, r2 = _train_copy(model, split, tokenizer.pad_token_id, batch_size=4, accum=2)
    assert r1.steps == r2.steps == 1
    for (n, a), (_, b) in zip(big.named_parameters(), small.named_parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=n)
    # and differs from two separate small steps
    two_steps, r3 = _train_copy(model, split, tokenizer.pad_token_id, batch_size=4, accum=1)
    assert r3.steps == 2
    assert not torch.allclose(two_steps.classifier.weight, big.classifier.weight)


def test_freeze_embeddings_and_layers_keeps_them_fixed(tiny):
    path, tokenizer = tiny
    cfg = replace(MODEL_CFG, freeze="embeddings", freeze_layers=1)
    model = finetune.prepare(load_classifier(cfg, path, 3), cfg)
    before = copy.deepcopy(model.state_dict())
    trained, _ = _train_copy(model, _split(tokenizer, TEXTS, [0, 1, 2, 0]), tokenizer.pad_token_id, epochs=2)
    after = trained.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert not any(k.startswith("encoder.embeddings.") for k in changed)
    assert not any(k.startswith("encoder.encoder.layer.0.") for k in changed)
    assert any(k.startswith("encoder.encoder.layer.1.") for k in changed)
    assert "classifier.weight" in changed
    assert cfg.finetune == "freeze-emb+1l"


def test_lora_trains_only_adapters_and_head(tiny):
    path, tokenizer = tiny
    cfg = replace(MODEL_CFG, peft="lora")
    model = finetune.prepare(load_classifier(cfg, path, 3), cfg)
    total, trainable = count_parameters(model)
    assert 0 < trainable < total / 5
    before = copy.deepcopy(model.state_dict())
    trained, _ = _train_copy(model, _split(tokenizer, TEXTS, [0, 1, 2, 0]), tokenizer.pad_token_id, epochs=2)
    changed = {k for k, v in trained.state_dict().items() if not torch.equal(before[k], v)}
    assert changed and all("lora_" in k or k.startswith("classifier.") for k in changed)
    assert any("lora_B" in k for k in changed)
    # checkpoints hold only what trains: adapters, head (and buffers)
    state = finetune.trainable_state(trained)
    assert all(
        "lora_" in k or k.startswith("classifier.") or "position_ids" in k or "token_type_ids" in k for k in state
    )
    assert cfg.finetune == "lora-r4"


def test_gradient_checkpointing_gives_the_same_gradients(tiny):
    path, tokenizer = tiny
    split = _split(tokenizer, TEXTS, [0, 1, 2, 0])
    torch.manual_seed(0)
    plain = load_classifier(MODEL_CFG, path, 3)
    checkpointed = finetune.prepare(copy.deepcopy(plain), replace(MODEL_CFG, gradient_checkpointing=True))
    a, _ = _train_copy(plain, split, tokenizer.pad_token_id)
    b, _ = _train_copy(checkpointed, split, tokenizer.pad_token_id)
    for (n, p), (_, q) in zip(a.named_parameters(), b.named_parameters()):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6, msg=n)


def test_step_losses_reach_on_step_in_order_before_each_evaluation(tiny):
    """The loop reads each step's loss one step late (no GPU sync between steps): every step is still
    reported, in order, before the evaluation at that step, and the losses are the steps' own."""
    path, tokenizer = tiny
    torch.manual_seed(0)
    model = load_classifier(MODEL_CFG, path, 3)
    split = _split(tokenizer, TEXTS * 3, [0, 1, 2, 0] * 3)
    events: list[tuple] = []
    opt = OptimizerSettings(name="sgd", lr=1e-2, weight_decay=0.0)
    settings = TrainSettings(
        epochs=2, batch_size=4, eval_batch_size=8, group_by_length=False, eval_every=2, precision="fp32", seed=0
    )
    result = train(
        model,
        split,
        opt,
        settings,
        tokenizer.pad_token_id,
        torch.device("cpu"),
        on_eval=lambda step, epoch: events.append(("eval", step)),
        on_step=lambda step, loss, lr: events.append(("step", step, loss)),
    )
    steps = [e[1] for e in events if e[0] == "step"]
    assert steps == list(range(1, 7)) and result.steps == 6
    assert [e for e in events if e[0] == "eval"] == [("eval", 2), ("eval", 4), ("eval", 6)]
    for i, e in enumerate(events):
        if e[0] == "eval":
            assert events[i - 1][:2] == ("step", e[1])
    losses = [e[2] for e in events if e[0] == "step"]
    assert all(np.isfinite(losses)) and len(set(losses)) > 1
    assert result.train_loss == pytest.approx(np.mean(losses[-3:]))


def test_non_finite_loss_stops_training(tiny):
    path, tokenizer = tiny
    model = load_classifier(MODEL_CFG, path, 3)
    with torch.no_grad():
        model.classifier.weight.fill_(float("nan"))
    opt = OptimizerSettings(name="sgd", lr=1e-2, weight_decay=0.0)
    settings = TrainSettings(
        epochs=1, batch_size=4, eval_batch_size=8, group_by_length=False, eval_every=None, precision="fp32", seed=0
    )
    with pytest.raises(FloatingPointError, match="non-finite training loss at step 1"):
        train(
            model,
            _split(tokenizer, TEXTS * 2, [0, 1, 2, 0] * 2),
            opt,
            settings,
            tokenizer.pad_token_id,
            torch.device("cpu"),
        )


@pytest.mark.parametrize(
    "override, message",
    [
        ("model.peft=adapters", "model.peft must be null or lora"),
        ("model.freeze=everything", "model.freeze must be null or embeddings"),
        ("model.freeze_layers=9", "has 2 layers"),
        ("model.lora.target_modules=[q_proj]", "are not linear layers"),
        ("data.max_length=1024", "exceeds model 'tiny_random''s limit"),
        ("trainer.grad_accum_steps=0", "trainer.grad_accum_steps must be a positive integer"),
        ("trainer.compile=fast", "trainer.compile must be true, false, step-graph"),
    ],
)
def test_bad_model_options_fail_with_one_clear_error(dirs, override, message):
    extra = ["model.peft=lora"] if "lora.target" in override else []
    cfg = compose_cfg(dirs, *TINY, "langpair.targets=[eng]", "trainer.epochs=1", *extra, override)
    with pytest.raises(XlexpError, match=message):
        run_experiment(cfg)
    assert not (dirs["results"] / "runs").exists() or not list((dirs["results"] / "runs").glob("*.parquet"))


@pytest.mark.unit
def test_precision_auto_follows_the_hardware():
    assert resolve_precision("fp32", torch.device("cpu")) == "fp32"
    assert resolve_precision("bf16", torch.device("cpu")) == "bf16"
    from xlexp.engine.hardware import cpu_has_bf16

    assert resolve_precision("auto", torch.device("cpu")) == ("bf16" if cpu_has_bf16() else "fp32")


def test_run_records_say_how_the_model_was_tuned(dirs):
    common = [*TINY, "langpair.targets=[eng,ind]", "trainer.epochs=1", "trainer.precision=fp32"]
    run_experiment(compose_cfg(dirs, *common, "name=tune"))
    run_experiment(
        compose_cfg(
            dirs,
            *common,
            "name=tune",
            "model.peft=lora",
            "model.trim_vocab=true",
            "trainer.grad_accum_steps=2",
            "trainer.precision=bf16",
        )
    )
    df = load_records(dirs["results"])
    full, lora = df[df.experiment == "tune"], df[df.experiment == "tune+lora-r8"]
    assert len(full) and len(lora) and len(full) == len(lora)
    assert set(full.finetune) == {"full"} and set(lora.finetune) == {"lora-r8"}
    assert set(full.precision) == {"fp32"} and set(lora.precision) == {"bf16"}
    # trimming shrinks the model; LoRA trains a small part of it
    assert lora.params.iloc[0] < full.params.iloc[0]
    assert lora.trainable_params.iloc[0] < full.trainable_params.iloc[0] == full.params.iloc[0]
    assert (df.peak_memory_mb > 0).all()
    assert np.isfinite(lora.value).all()


def test_retrieval_is_unchanged_by_trimming(tmp_path):
    import random

    rng = random.Random(3)
    words = ["alpha", "beta", "gamma", "delta", "omega", "kappa", "sigma", "tau", "rho"]
    base = [" ".join(rng.sample(words, 4)) for _ in range(30)]
    folder = tmp_path / "data" / "tatoeba"
    folder.mkdir(parents=True)
    for code in ("afr", "deu"):
        (folder / f"tatoeba.{code}-eng.eng").write_text("\n".join(base) + "\n")
        (folder / f"tatoeba.{code}-eng.{code}").write_text(
            "\n".join(" ".join(reversed(s.split())) for s in base) + "\n"
        )
    dirs = {"data": tmp_path / "data", "results": tmp_path / "results", "cache": tmp_path / "cache"}
    common = [
        "model=tiny_random",
        "task=tatoeba",
        "langpair.targets=[afr,deu]",
        "trainer.progress=false",
        "trainer.precision=fp32",
    ]
    run_experiment(compose_cfg(dirs, *common, "name=plain"))
    run_experiment(compose_cfg(dirs, *common, "name=trimmed", "model.trim_vocab=true"))
    df = load_records(dirs["results"]).sort_values(["target", "metric"])
    plain, trimmed = df[df.experiment == "plain"], df[df.experiment == "trimmed"]
    assert trimmed.params.iloc[0] < plain.params.iloc[0]
    np.testing.assert_allclose(trimmed.value.to_numpy(), plain.value.to_numpy())


@pytest.mark.parametrize("name", ["mbert", "xlmr_base", "xlmr_large", "mdeberta_v3_base", "labse", "me5_small"])
def test_zoo_model_missing_from_the_cache_says_how_to_download(dirs, name, tmp_path, monkeypatch):
    """Offline with an empty HF cache: one error naming the `hf download` command (no traceback)."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    cfg = compose_cfg(dirs, f"model={name}", "langpair.targets=[eng]", "trainer.epochs=1", "trainer.progress=false")
    assert cfg.model.max_length == 512 and cfg.model.path
    with pytest.raises(XlexpError, match=f"hf download {cfg.model.path}"):
        run_experiment(cfg)


def test_tiny_random_builds_the_same_tokenizer_and_weights_in_every_process(tmp_path):
    """A cold cache must not change a seeded run: tokenizers' WordPieceTrainer broke ties between
    equally frequent merges in per-process hash order (three fresh builds of NusaX text gave three
    vocabularies); the vocabulary is now chosen by (count, piece)."""
    # many equally frequent words and pairs: ties everywhere
    texts = [" ".join(f"{a}{b}{c}" for b in "klmn" for c in "xyz") for a in "abcdefgh"] * 3
    script = (
        "import sys, json; from xlexp.config.schema import model_settings; "
        "from xlexp.models.encoders import build_tiny_random; "
        "m = model_settings({'name': 'tiny_random', 'source': 'tiny_random', 'vocab_size': 60, 'hidden_size': 16, "
        "'num_layers': 1, 'num_heads': 1, 'intermediate_size': 32}); "
        "print(build_tiny_random(m, json.loads(sys.argv[2]), sys.argv[1], seed=0))"
    )
    folders = [
        subprocess.run(
            [sys.executable, "-c", script, str(tmp_path / f"c{i}"), json.dumps(texts)],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        for i in range(3)
    ]
    files = ["tokenizer.json", "model.safetensors", "config.json"]
    first = {f: (Path(folders[0]) / f).read_bytes() for f in files}
    for folder in folders[1:]:
        assert {f: (Path(folder) / f).read_bytes() for f in files} == first
    vocab = json.loads(first["tokenizer.json"])["model"]["vocab"]
    assert len(vocab) == 60 and "##x" in vocab and "[PAD]" in vocab


@pytest.mark.unit
def test_class_balance_options():
    """#20.6: class-weighted loss and balanced sampling for small imbalanced sets."""
    from xlexp.engine.loop import balanced_sampling, balanced_weights, class_counts

    split = TokenizedSplit([np.array([1, 2])] * 10, np.array([0] * 7 + [1] * 2 + [2] * 1))
    counts = class_counts(split)
    assert counts.tolist() == [7, 2, 1]
    w = balanced_weights(counts)
    assert np.allclose(w, [10 / 21, 10 / 6, 10 / 3]) and np.isclose((w[split.labels]).mean(), 1.0)
    p = balanced_sampling(split, counts, None)
    assert np.isclose(p.sum(), 1.0) and np.allclose([p[split.labels == c].sum() for c in range(3)], 1 / 3)
    tokens = TokenizedSplit([np.array([1, 2])], np.array([0]), token_labels=[np.array([-100, 3])])
    assert class_counts(tokens).tolist() == [0, 0, 0, 1]
    with pytest.raises(XlexpError, match="data.sampling=balanced needs one label per example"):
        balanced_sampling(tokens, class_counts(tokens), None)


def test_balanced_options_run_end_to_end(dirs):
    df_dirs = dirs
    run_experiment(
        compose_cfg(
            df_dirs,
            *TINY,
            "trainer.epochs=1",
            "langpair.sources=[eng]",
            "langpair.targets=[ind]",
            "optimizer.class_weights=balanced",
            "data.sampling=balanced",
            "name=bal",
        )
    )
    assert not load_records(dirs["results"]).empty
    with pytest.raises(XlexpError, match="data.sampling must be one of uniform, balanced"):
        run_experiment(compose_cfg(dirs, *TINY, "data.sampling=oversample"))


def test_a_collapsed_model_is_warned_about(dirs, caplog):
    """#20.6: a model that predicts one class on the source dev split gets a warning naming the options."""
    train = dirs["data"] / "nusax_senti" / "english" / "train.csv"
    rows = train.read_text().splitlines()
    train.write_text("\n".join([rows[0]] + [r.rsplit(",", 1)[0] + ",positive" for r in rows[1:]]) + "\n")
    with caplog.at_level("WARNING"):
        run_experiment(
            compose_cfg(
                dirs,
                *TINY,
                "trainer.epochs=1",
                "langpair.sources=[eng]",
                "langpair.targets=[ind]",
                "regime.dev_targets=none",
            )
        )
    warned = [r.getMessage() for r in caplog.records if "collapsed to one class" in r.getMessage()]
    assert len(warned) == 1 and "predicts only 'positive' on the eng dev split" in warned[0]
    assert "optimizer.class_weights=balanced" in warned[0]
