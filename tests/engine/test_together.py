"""trainer.sources_together: N source models trained in one stacked pass give every unit the records it
gets when trained alone (fp32, tiny random BERT with dropout on: same data order, dropout masks,
AdamW updates, schedule, evaluations, checkpoint choices and test predictions)."""

from __future__ import annotations

import csv
import logging
import shutil

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import TINY, compose_cfg
from xlexp import XlexpError, load_records, run_experiment

SOURCES = "langpair.sources=[eng,ind,jav,sun]"
# four sources with different train sizes (so different step counts and epoch ends), clipping, warmup,
# weight decay, dev evaluations every 3 steps, a watched target dev split under the budget
BASE = [
    *TINY,
    "trainer.num_threads=1",
    SOURCES,
    "langpair.targets=[eng,ind,jav,sun]",
    "regime.dev_targets=[jav,sun]",
    "trainer.precision=fp32",
    "trainer.eval_every=3",
    "optimizer.grad_clip=1.0",
    "optimizer.warmup_ratio=0.1",
    "optimizer.weight_decay=0.01",
    "regime.target_dev_budget=0.5",
    "regime.target_dev_min=10",
]
KEY = ["source", "target", "split", "metric", "selection", "step", "seed", "n_examples"]


@pytest.fixture
def four(dirs):
    """The conftest NusaX-like data plus a fourth language (Sundanese: the Indonesian rows with each
    word reversed, a vocabulary of its own) and a Javanese train split cut to 45 rows."""
    root = dirs["data"] / "nusax_senti"
    shutil.copytree(root / "indonesian", root / "sundanese")
    for split in ("train", "valid", "test"):
        path = root / "sundanese" / f"{split}.csv"
        rows = list(csv.reader(path.open(encoding="utf-8")))
        rows[1:] = [[i, " ".join(w[::-1] for w in text.split()), label] for i, text, label in rows[1:]]
        csv.writer(path.open("w", newline="", encoding="utf-8")).writerows(rows)
    path = root / "javanese" / "train.csv"
    rows = list(csv.reader(path.open(encoding="utf-8")))
    csv.writer(path.open("w", newline="", encoding="utf-8")).writerows(rows[:46])
    return dirs


def _records(results, name: str) -> pd.DataFrame:
    df = load_records(results)
    return df[df["experiment"] == name].sort_values(KEY).reset_index(drop=True)


def _run(dirs, name: str, *extra: str) -> pd.DataFrame:
    run_experiment(compose_cfg(dirs, *BASE, f"name={name}", *extra))
    return _records(dirs["results"], name)


def test_four_sources_together_equal_one_at_a_time(four, caplog):
    alone = _run(four, "alone")
    caplog.set_level(logging.INFO, logger="xlexp.experiment.together")
    stacked = _run(four, "stacked", "trainer.sources_together=4")
    assert "training 4 source models together in one stack" in caplog.text
    assert len(alone) == len(stacked) > 0
    assert alone[KEY].equals(stacked[KEY])  # the same cells, rules, chosen steps and example counts
    assert set(alone["split"]) == {"dev", "test"} and set(alone["selection"]) >= {"source_dev", "target_dev", "last"}
    np.testing.assert_allclose(stacked["value"], alone["value"], atol=1e-4, rtol=0)
    # the sources really differ in length: Javanese (45 rows) stops before the others
    steps = alone[alone["selection"] == "last"].groupby("source")["step"].max()
    assert steps["jav"] < steps["eng"]


def test_resume_with_two_of_four_done_stacks_the_other_two(four, caplog):
    run_experiment(compose_cfg(four, *BASE, "name=resumed", "langpair.sources=[ind,sun]"))
    caplog.set_level(logging.INFO, logger="xlexp.experiment.together")
    run_experiment(compose_cfg(four, *BASE, "name=resumed", "trainer.sources_together=4"))
    assert "training 2 source models together in one stack: eng (seed 42), jav (seed 42)" in caplog.text
    assert "training 4" not in caplog.text
    df = _records(four["results"], "resumed")
    assert sorted(df["source"].unique()) == ["eng", "ind", "jav", "sun"]


def test_two_seeds_of_multi_source_in_one_stack(dirs):
    common = [
        *TINY,
        "trainer.num_threads=1",
        "regime=multi_source",
        "langpair.sources=[eng,ind]",
        "langpair.targets=[jav]",
        "regime.seeds=[1,2]",
        "regime.sampling=uniform",
        "trainer.precision=fp32",
    ]
    run_experiment(compose_cfg(dirs, *common, "name=ms_alone"))
    run_experiment(compose_cfg(dirs, *common, "name=ms_stacked", "trainer.sources_together=2"))
    alone, stacked = _records(dirs["results"], "ms_alone"), _records(dirs["results"], "ms_stacked")
    assert alone[KEY].equals(stacked[KEY])
    np.testing.assert_allclose(stacked["value"], alone["value"], atol=1e-4, rtol=0)


@pytest.mark.parametrize(
    "override, words",
    [
        ("regime=few_shot", "regime few_shot does not train its units in a stack"),
        ("optimizer=sgd", "optimizer=sgd is not stacked"),
        ("trainer.compile=true", "trainer.compile=True"),
        ("model.peft=lora", "LoRA"),
        ("model.gradient_checkpointing=true", "gradient_checkpointing"),
    ],
)
def test_what_is_not_stacked_is_one_line_before_any_work(dirs, override, words, monkeypatch):
    import xlexp.experiment.runner as runner

    monkeypatch.setattr(runner, "_model_and_cache", lambda *a: pytest.fail("loaded a model before the check"))
    with pytest.raises(XlexpError, match=words.replace("(", r"\(").replace("[", r"\[")) as e:
        run_experiment(
            compose_cfg(
                dirs,
                *TINY,
                "langpair.sources=[eng,ind]",
                "langpair.targets=[jav]",
                override,
                "trainer.sources_together=2",
            )
        )
    assert "\n" not in str(e.value) and "sources_together=1" in str(e.value)


def test_sources_together_must_be_positive(dirs):
    with pytest.raises(XlexpError, match="trainer.sources_together must be a positive integer"):
        run_experiment(
            compose_cfg(dirs, *TINY, "langpair.sources=[eng]", "langpair.targets=[jav]", "trainer.sources_together=0")
        )


@pytest.mark.unit
def test_stacked_adamw_is_torch_adamw_per_model():
    """Per-model clipping, no-decay rule and learning rates: each model's rows move as torch's AdamW
    moves that model alone (the one-at-a-time optimizer, fused), model 2 with lr 0 not at all."""
    from xlexp.config.schema import OptimizerSettings
    from xlexp.engine.loop import build_optimizer
    from xlexp.engine.stacked_models import StackedAdamW, StackedModels

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.norm, self.b = torch.nn.Linear(5, 4), torch.nn.LayerNorm(4), torch.nn.Linear(4, 3)

        def forward(self, x, mask):
            return self.b(self.norm(self.a(x))) * mask

    torch.manual_seed(0)
    opt = OptimizerSettings(lr=1e-2, weight_decay=0.1)
    models = [Net() for _ in range(3)]
    stack = StackedModels(models)
    stacked_opt = StackedAdamW(stack, opt)
    lrs = [1e-2, 5e-3, 0.0]
    refs = [build_optimizer(m, opt) for m in models]
    before = {k: v.detach().clone() for k, v in stack.params.items()}
    for _ in range(3):
        x = torch.randn(3, 6, 5)
        out = stack.forward([0, 1, 2], x, torch.ones(3, 6, 1))
        out.pow(2).sum().backward()
        stacked_opt.clip(0.5)
        stacked_opt.step(lrs)
        stacked_opt.zero_grad()
        for i, (m, o) in enumerate(zip(models[:2], refs[:2])):
            for g in o.param_groups:
                g["lr"] = lrs[i]
            m(x[i], torch.ones(6, 1)).pow(2).sum().backward()
            torch.nn.utils.clip_grad_norm_(m.parameters(), 0.5)
            o.step()
            o.zero_grad()
    for i in range(2):
        for k, p in models[i].named_parameters():
            torch.testing.assert_close(stack.params[k][i], p.detach(), atol=1e-6, rtol=1e-6)
    for k, v in stack.params.items():
        assert torch.equal(v[2], before[k][2])


def _engine_case(device: torch.device, dropout: float, token: bool):
    """Four tiny classifiers of different train sizes: the stacked engine vs loop.train one at a time."""
    from transformers import BertConfig, BertModel

    from xlexp.config.schema import OptimizerSettings
    from xlexp.data.tokenized import TokenizedSplit
    from xlexp.engine import stacked, stacked_models
    from xlexp.engine.inference import predict
    from xlexp.engine.loop import TrainSettings, train
    from xlexp.models.encoders import SequenceClassifier
    from xlexp.models.heads import TokenClassifier

    cfg = BertConfig(
        vocab_size=100,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        pad_token_id=0,
        hidden_dropout_prob=dropout,
        attention_probs_dropout_prob=dropout,
    )

    def split(n, seed):
        r = np.random.default_rng(seed)
        ids = [r.integers(1, 100, size=r.integers(3, 20)) for _ in range(n)]
        tl = [np.where(r.random(len(x)) < 0.7, r.integers(0, 3, len(x)), -100) for x in ids] if token else None
        return TokenizedSplit(ids, r.integers(0, 3, n), token_labels=tl)

    def build():
        torch.manual_seed(7)
        enc = BertModel(cfg, add_pooling_layer=False)
        head = TokenClassifier(enc, 3, dropout) if token else SequenceClassifier(enc, 3, "mean", dropout)
        return head.to(device)

    opt = OptimizerSettings(lr=1e-3, weight_decay=0.01, warmup_ratio=0.1, grad_clip=1.0)
    splits = [split(n, k) for k, n in enumerate([40, 33, 50, 21])]

    def settings():
        return TrainSettings(
            epochs=2,
            batch_size=8,
            eval_batch_size=16,
            group_by_length=True,
            eval_every=None,
            precision="fp32",
            seed=42,
            grad_accum_steps=2,
        )

    alone, alone_losses = [], []
    for sp in splits:
        m, losses = build(), []
        train(m, sp, opt, settings(), 0, device, on_step=lambda s, loss, lr, out=losses: out.append(loss))
        alone.append(m)
        alone_losses.append(losses)
    models, gens = [], []
    for _ in splits:
        models.append(build())
        gens.append(stacked.generator_after_seeding(device))
    stack = stacked_models.StackedModels(models)
    losses = [[] for _ in splits]
    members = [
        stacked.Member(f"s{k}", sp, settings(), gens[k], on_step=lambda s, loss, lr, out=losses[k]: out.append(loss))
        for k, sp in enumerate(splits)
    ]
    due = []
    result = stacked.train_together(
        stack, members, opt, 0, device, lambda step, who: due.append((step, who)), stacked.model_sizes(models[0])
    )
    assert result.steps == [6, 6, 8, 4]  # ceil(ceil(n / 8) / 2) x 2 epochs: each model its own length
    assert due[0] == (2, [3]) and due[-1] == (8, [2])  # each model evaluates at its own epoch ends
    test = split(30, 99)
    preds = stacked.predict_together(stack, [0, 1, 2, 3], test, 16, 0, device)
    for k, ref in enumerate(alone):
        np.testing.assert_allclose(losses[k], alone_losses[k], atol=1e-4, rtol=0)
        state = stack.slot(k).state_dict()
        for name, p in ref.state_dict().items():
            torch.testing.assert_close(state[name], p, atol=1e-4, rtol=0)
        want = predict(ref, test, 16, 0, device)
        if token:
            assert all(np.array_equal(a, b) for a, b in zip(want, preds[k]))
        else:
            assert np.array_equal(want, preds[k])


@pytest.fixture
def one_thread():
    """One torch thread (restored after): on a machine shared with other jobs two spinning threads are slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("token", [False, True])
def test_stacked_engine_trains_each_model_as_the_loop_does(token, one_thread):
    """With dropout on (per-model generators), gradient accumulation, clipping, warmup and models of
    different lengths: losses, weights and test predictions of each model equal loop.train's."""
    _engine_case(torch.device("cpu"), 0.1, token)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_stacked_engine_trains_like_the_loop_on_gpu():
    """On a GPU (fp32, no dropout: torch's fused CUDA dropout is not bernoulli_) the same equality."""
    _engine_case(torch.device("cuda"), 0.0, False)
