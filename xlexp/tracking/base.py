"""The tracker seam: the experiment runner talks to a Tracker; ``tracker=none`` is the null one,
``tracker=wandb`` is Weights & Biases (``xlexp.tracking.wandb_tracker``).

Trackers only ever see results after the results store has them, so a tracker failure never
loses a result.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from xlexp.config.schema import TrackerSettings


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


def _options(settings: TrackerSettings) -> dict[str, Any]:
    return {"name": settings.name, **settings.options}


def check_tracker_config(settings: TrackerSettings) -> None:
    """Fail early (before any training) on bad tracker options (the name is checked by the schema)."""
    if settings.name == "wandb":
        from xlexp.tracking.wandb_tracker import WandbOptions

        WandbOptions.from_config(_options(settings))


def make_tracker(settings: TrackerSettings) -> Tracker:
    check_tracker_config(settings)
    if settings.name == "wandb":
        from xlexp.tracking.wandb_tracker import WandbOptions, WandbTracker

        tracker = WandbTracker(WandbOptions.from_config(_options(settings)))
        return NullTracker() if tracker.mode == "disabled" else tracker
    return NullTracker()
