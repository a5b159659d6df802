"""benchmarks/quant_noise.py (issue #29): its Q4_0 rule is ggml's, so re-quantising 4-bit weights on
their own grid changes nothing, and on the shifted grid adds an error the size of the first rounding."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.unit

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from quant_noise import is_q4, q4_0, requantise  # noqa: E402


def test_q4_0_is_idempotent_and_the_shifted_grid_adds_first_round_sized_noise():
    rng = np.random.default_rng(0)
    w = rng.normal(0, 0.05, size=(64, 384)).astype(np.float32)
    q = q4_0(w)
    assert is_q4(q) and not is_q4(w)
    assert np.array_equal(q4_0(q), q) and np.array_equal(requantise(q, shift=0), q)
    first = np.sqrt(((q - w) ** 2).mean())
    second = np.sqrt(((requantise(q) - q) ** 2).mean())
    assert second > 0 and 0.5 < second / first < 1.5
    # the value of largest magnitude in a block maps to -8 exactly (ggml: d = max / -8)
    block = q.reshape(-1, 32)[0]
    assert np.isclose(np.abs(block).max(), np.abs(w.reshape(-1, 32)[0]).max(), rtol=1e-3)
