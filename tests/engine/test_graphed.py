"""The whole-step CUDA graph (``trainer.compile=step-graph``): what can be checked without a GPU.

The capture itself runs only on a CUDA device (benchmarks/gpu_mfu.py measures it and checks that its
loss curve follows the eager loop's); here: the length buckets, that padding a batch to its bucket
leaves the loss unchanged, that the device-tensor schedule gives LambdaLR's rates, and the one-line
errors for settings it does not support.
"""

import pytest
import torch
from torch import nn

from xlexp import XlexpError
from xlexp.config.schema import OptimizerSettings, compile_setting
from xlexp.engine import graphed
from xlexp.engine.loop import DeviceLR, linear_factor, linear_schedule


@pytest.mark.unit
def test_buckets_are_quarters_rounded_to_eight():
    assert graphed.buckets(128) == [32, 64, 96, 128]
    assert graphed.buckets(100) == [32, 56, 80, 100]
    assert graphed.buckets(7) == [7]
    sizes = graphed.buckets(512)
    assert [graphed.bucket_length(n, sizes) for n in (1, 128, 129, 512, 600)] == [128, 128, 256, 512, 512]


@pytest.mark.unit
@pytest.mark.parametrize("token_level", [False, True])
def test_padding_to_a_bucket_keeps_the_loss(token_level):
    torch.manual_seed(0)
    emb, head = nn.Embedding(50, 8), nn.Linear(8, 5)

    def loss_of(batch):
        h = emb(batch["input_ids"]) * batch["attention_mask"].unsqueeze(-1)
        if token_level:
            logits = head(h)
        else:
            logits = head(h.sum(1) / batch["attention_mask"].sum(1, keepdim=True))
        return nn.functional.cross_entropy(logits.reshape(-1, 5), batch["labels"].reshape(-1), ignore_index=-100)

    ids = torch.randint(1, 50, (3, 10))
    mask = torch.ones_like(ids)
    mask[0, 6:] = 0
    labels = torch.randint(0, 5, (3, 10)) if token_level else torch.randint(0, 5, (3,))
    if token_level:
        labels[0, 6:] = -100
    batch = {"input_ids": ids, "attention_mask": mask, "labels": labels}
    padded = graphed.pad_batch(batch, 16, pad_id=0)
    assert padded["input_ids"].shape == (3, 16) and padded["attention_mask"][:, 10:].sum() == 0
    assert torch.allclose(loss_of(batch), loss_of(padded))


@pytest.mark.unit
def test_device_lr_schedule_equals_lambda_lr():
    factor = linear_factor(3, 10)
    p = nn.Parameter(torch.zeros(2))
    ref_opt = torch.optim.SGD([p], lr=0.5)
    ref = linear_schedule(ref_opt, 3, 10)
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(2))], lr=torch.tensor(0.5))
    dev = DeviceLR(opt, factor)
    for _ in range(10):
        assert dev.get_last_lr()[0] == pytest.approx(ref.get_last_lr()[0])
        assert float(opt.param_groups[0]["lr"]) == pytest.approx(ref.get_last_lr()[0])
        ref_opt.step(), ref.step(), dev.step()


@pytest.mark.unit
def test_step_graph_setting_and_its_limits():
    assert compile_setting("step-graph") == "step-graph"
    with pytest.raises(XlexpError, match="step-graph"):
        compile_setting("graph")
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    with pytest.raises(XlexpError, match="needs a GPU"):
        graphed.check_supported(cpu, 1, "adamw", spans=False, distributed=False)
    with pytest.raises(XlexpError, match="grad_accum_steps=1"):
        graphed.check_supported(cuda, 2, "adamw", spans=False, distributed=False)
    with pytest.raises(XlexpError, match="optimizer=adamw"):
        graphed.check_supported(cuda, 1, "sgd", spans=False, distributed=False)
    with pytest.raises(XlexpError, match="span"):
        graphed.check_supported(cuda, 1, "adamw", spans=True, distributed=False)
    graphed.check_supported(cuda, 1, "adamw", spans=False, distributed=False)  # supported: no error
    assert OptimizerSettings.__dataclass_fields__["name"]  # the setting the error names exists


@pytest.mark.skipif(not torch.cuda.is_available(), reason="captures CUDA graphs: runs on a GPU machine only")
@pytest.mark.parametrize("token_level", [False, True])
def test_step_graph_trains_like_the_eager_loop_on_gpu(token_level):
    """Same data, seed and fp32 arithmetic, no dropout: the graphed loop (bucketed lengths, captured
    optimizer and clipping, eager short last batches) ends at the eager loop's weights and losses."""
    import numpy as np
    from transformers import BertConfig, BertModel

    from xlexp.data.tokenized import TokenizedSplit
    from xlexp.engine.loop import TrainSettings, train
    from xlexp.models.encoders import SequenceClassifier
    from xlexp.models.heads import TokenClassifier

    rng = np.random.default_rng(0)
    lengths = rng.integers(4, 61, 70)
    ids = [np.concatenate([[2], rng.integers(5, 100, n - 2), [3]]).astype(np.int64) for n in lengths]
    if token_level:
        tags = [np.where(rng.random(len(x)) < 0.7, rng.integers(0, 4, len(x)), -100).astype(np.int64) for x in ids]
        split = TokenizedSplit(ids, np.zeros(len(ids), np.int64), token_labels=tags)
    else:
        split = TokenizedSplit(ids, rng.integers(0, 4, len(ids)).astype(np.int64))
    device = torch.device("cuda")

    def run(compile_):
        torch.manual_seed(0)
        cfg = BertConfig(
            vocab_size=100,
            hidden_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=128,
            hidden_dropout_prob=0.0,
            attention_probs_dropout_prob=0.0,
        )
        enc = BertModel(cfg, add_pooling_layer=False)
        model = (TokenClassifier(enc, 4, dropout=0.0) if token_level else SequenceClassifier(enc, 4, "mean", 0.0)).to(
            device
        )
        losses = []
        settings = TrainSettings(
            epochs=3,
            batch_size=16,
            eval_batch_size=16,
            group_by_length=True,
            eval_every=None,
            precision="fp32",
            seed=0,
            compile=compile_,
        )
        opt = OptimizerSettings(lr=1e-3, weight_decay=0.01, warmup_ratio=0.1, grad_clip=1.0)
        result = train(
            model, split, opt, settings, pad_id=0, device=device, on_step=lambda s, loss, lr: losses.append(loss)
        )
        return model, losses, result.graph_replays

    eager, eager_losses, _ = run(False)
    graph, graph_losses, replays = run("step-graph")
    assert replays >= 4  # most full batches were replays, not eager warm-up steps
    assert len(graph_losses) == len(eager_losses) == 15
    np.testing.assert_allclose(graph_losses, eager_losses, rtol=1e-3, atol=1e-4)
    for (name, a), b in zip(eager.named_parameters(), graph.parameters()):
        torch.testing.assert_close(b, a, rtol=1e-3, atol=1e-4, msg=name)
