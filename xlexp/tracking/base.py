"""The tracker seam: the pipeline talks to a Tracker; ``tracker=none`` is the null one,
``tracker=wandb`` is Weights & Biases (``xlexp.tracking.wandb_tracker``).

Trackers only ever see results after the results store has them, so a tracker failure never
loses a result.
"""

from __future__ import annotations

from typing import Any, Mapping, Protocol, Sequence

from xlexp.errors import XlexpError


class Tracker(Protocol):
    def start_unit(self, name: str, config: Mapping[str, Any]) -> None: ...
    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None: ...
    def log_records(self, records: Sequence[Any]) -> None: ...
    def finish_unit(self) -> None: ...


class NullTracker:
    def start_unit(self, name: str, config: Mapping[str, Any]) -> None:
        pass

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        pass

    def log_records(self, records: Sequence[Any]) -> None:
        pass

    def finish_unit(self) -> None:
        pass


TRACKERS = ("none", "wandb")


def check_tracker_config(tracker_cfg) -> None:
    """Fail early (before any training) on a bad tracker config."""
    name = tracker_cfg.get("name", "none")
    if name not in TRACKERS:
        raise XlexpError(f"unknown tracker '{name}'; available: {', '.join(TRACKERS)}")
    if name == "wandb":
        from xlexp.tracking.wandb_tracker import WandbOptions

        WandbOptions.from_config(tracker_cfg)


def make_tracker(tracker_cfg) -> Tracker:
    check_tracker_config(tracker_cfg)
    if tracker_cfg.get("name", "none") == "wandb":
        from xlexp.tracking.wandb_tracker import WandbOptions, WandbTracker

        tracker = WandbTracker(WandbOptions.from_config(tracker_cfg))
        return NullTracker() if tracker.mode == "disabled" else tracker
    return NullTracker()
