"""No long phase is silent (issue #33): training, each dev evaluation and the test phase write progress
lines (n done / total, rate) to the log, which is all a run without a terminal shows, at most
LOG_EVERY_S seconds apart. A slowed clock (every reading 31 s after the last) stands for a loaded
machine: then every step, dev set and target test must log a line, and no phase may go from its first
to its last item without one."""

from __future__ import annotations

import logging
import re

import pytest

from conftest import TINY, compose_cfg
from xlexp import run_experiment
from xlexp.views import progress

pytestmark = pytest.mark.integration


class SlowClock:
    """Each reading is 31 s after the previous one: every item of a phase 'takes' longer than 30 s."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        self.now += 31.0
        return self.now


def _lines(caplog, pattern: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if re.search(pattern, r.getMessage())]


def test_every_phase_logs_progress_on_a_slow_machine(dirs, caplog, monkeypatch):
    monkeypatch.setattr(progress, "clock", SlowClock())
    with caplog.at_level(logging.INFO):
        run_experiment(
            compose_cfg(
                dirs,
                *TINY,
                "langpair.sources=[eng]",
                "langpair.targets=[eng,ind,jav]",
                "data.max_train_examples=32",
                "name=phases",
            )
        )
    steps = 2 * 4  # 2 epochs of 32 examples, batch 8
    train = _lines(caplog, r"^train eng: \d+/8 steps \([\d.]+/s\), loss ")
    assert len(train) == steps - 1  # every step but the last (a summary follows)
    dev = _lines(caplog, r"^dev evaluation at step \d+: \d+/\d+ dev set\(s\)")
    evals = _lines(caplog, r"^step \d+ \(epoch")
    n_dev = int(re.search(r"/(\d+) dev set", dev[0]).group(1))  # eng, ind, jav
    assert len(evals) == 2 and n_dev == 3 and len(dev) == 2 * (n_dev - 1)  # every dev set but the last (the summary)
    test = _lines(caplog, r"^test eng: ")
    assert test[0].startswith("test eng: ") and "to do" in test[0]
    n_total = int(re.search(r"test eng: (\d+) target", test[0]).group(1))
    assert n_total >= 3 and len(test) == 1 + n_total  # the start line, then one per target test
    assert test[-1].startswith(f"test eng: {n_total}/{n_total} ")


def test_on_an_idle_machine_a_short_phase_logs_its_start_and_end_only(dirs, caplog):
    """The lines are throttled (LOG_EVERY_S): a fast phase does not flood the log."""
    with caplog.at_level(logging.INFO):
        run_experiment(
            compose_cfg(
                dirs,
                *TINY,
                "langpair.sources=[eng]",
                "langpair.targets=[eng,ind]",
                "data.max_train_examples=32",
                "name=fast",
            )
        )
    assert len(_lines(caplog, r"^test eng: ")) == 2  # start and end
    assert len(_lines(caplog, r"^train eng: \d+/")) <= 1
