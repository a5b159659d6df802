"""The tracker seam: the pipeline talks to a Tracker; ``tracker=none`` is the null one.

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


def make_tracker(tracker_cfg) -> Tracker:
    name = tracker_cfg.get("name", "none")
    if name == "none":
        return NullTracker()
    raise XlexpError(f"unknown tracker '{name}'; available: none")
