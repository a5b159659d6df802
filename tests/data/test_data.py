import numpy as np
import pytest

from conftest import compose_cfg, model_of
from xlexp.data.tokenized import TokenCache, TokenizedSplit, collate, eval_batches, train_batches
from xlexp.experiment import kinds
from xlexp.models.encoders import load_tokenizer, resolve_model_path
from xlexp.tasks.spec import load_split, load_task

pytestmark = pytest.mark.unit


def _split(lengths):
    return TokenizedSplit([np.arange(1, n + 1, dtype=np.int32) for n in lengths], np.arange(len(lengths)) % 3)


def test_train_batches_cover_each_example_once_and_group_lengths():
    rng = np.random.default_rng(0)
    lengths = rng.integers(3, 100, size=1000)
    split = _split(lengths)
    batches = train_batches(split, 16, np.random.default_rng(1), group_by_length=True)
    assert sorted(np.concatenate(batches).tolist()) == list(range(1000))
    grouped_pad = sum(len(b) * lengths[b].max() - lengths[b].sum() for b in batches)
    plain = train_batches(split, 16, np.random.default_rng(1), group_by_length=False)
    plain_pad = sum(len(b) * lengths[b].max() - lengths[b].sum() for b in plain)
    assert grouped_pad < plain_pad / 3


def test_train_batches_are_seeded():
    split = _split([5, 9, 2, 7] * 10)
    a = train_batches(split, 4, np.random.default_rng(7))
    b = train_batches(split, 4, np.random.default_rng(7))
    assert all((x == y).all() for x, y in zip(a, b))


def test_eval_batches_sorted_and_collate_pads_dynamically():
    split = _split([3, 10, 5, 7])
    batches = list(eval_batches(split, 2))
    assert [split.lengths[b].tolist() for b in batches] == [[10, 7], [5, 3]]
    batch = collate(split, batches[1], pad_id=0)
    assert batch["input_ids"].shape == (2, 5)  # padded to the batch's longest, not to max_length
    assert batch["attention_mask"].sum().item() == 8


def test_token_cache_second_run_tokenizes_nothing(dirs):
    cfg = compose_cfg(dirs, "model=tiny_random")
    spec = load_task("nusax_senti")
    texts = [e.text for e in load_split(spec, "eng", "train", dirs["data"])]
    tok = load_tokenizer(model_of(cfg), resolve_model_path(model_of(cfg), dirs["cache"], texts))
    first = TokenCache(spec, tok, 128, dirs["data"], dirs["cache"], kind=kinds.of(spec))
    a = first.get("ind", "test")
    assert first.n_tokenized == 1
    second = TokenCache(spec, tok, 128, dirs["data"], dirs["cache"], kind=kinds.of(spec))
    b = second.get("ind", "test")
    assert second.n_tokenized == 0
    assert all((x == y).all() for x, y in zip(a.input_ids, b.input_ids))
    # a shorter max length is a different cache entry, and truncation is counted
    short = TokenCache(spec, tok, 4, dirs["data"], dirs["cache"], kind=kinds.of(spec))
    c = short.get("ind", "test")
    assert short.n_tokenized == 1 and c.n_truncated > 0 and max(c.lengths) == 4
