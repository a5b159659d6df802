"""Rich progress bars that switch themselves off when output is not a terminal (CI, log files), and
the console log handler that keeps log lines off the bars.

While the bars are live, rich replaces ``sys.stdout`` with a proxy that prints each complete line
above the bars. Hydra's stock console handler (``logging.StreamHandler`` on ``ext://sys.stdout``)
captures the real stdout when logging is configured, before any bar exists, so its records were
written straight into the bar's line (``loss 1.217[2026-..][xlexp...][INFO] - step 19``).
:class:`LiveConsoleHandler` looks ``sys.stdout`` up at every record instead, so a record goes
through rich's proxy while bars are shown and to the plain stream otherwise. The format is Hydra's
own (``xlexp/conf/hydra/job_logging/xlexp.yaml``); :func:`setup_console_logging` gives the same handler
and format to commands that are not Hydra apps (``xlexp sweep``), so their lines look like a run's.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


def progress_enabled(setting) -> bool:
    if setting in (True, "true", "on"):
        return True
    if setting in (False, "false", "off"):
        return False
    return sys.stderr.isatty()


@contextmanager
def progress_bar(enabled: bool) -> Iterator[Progress]:
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[info]}"),
        disable=not enabled,
        transient=False,
    )
    with progress:
        yield progress


#: Hydra's default job-logging format; ``xlexp run`` (through Hydra) and ``xlexp sweep`` log with it.
LOG_FORMAT = "[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"


class LiveConsoleHandler(logging.StreamHandler):
    """A StreamHandler on whatever ``sys.stdout`` is when a record is emitted (see the module docstring)."""

    def __init__(self, stream=None) -> None:  # `stream` is accepted (Hydra's YAML may pass it) and ignored
        super().__init__()

    @property
    def stream(self):
        return sys.stdout

    @stream.setter
    def stream(self, value) -> None:  # StreamHandler.__init__/setStream assign it: always sys.stdout here
        pass

    def emit(self, record: logging.LogRecord) -> None:
        from rich.file_proxy import FileProxy

        if not isinstance(sys.stdout, FileProxy):  # no live bars: a plain stream write
            return super().emit(record)
        try:  # above the live bars, through the bars' console; soft wrap: one log record stays one line
            from rich import get_console
            from rich.text import Text

            get_console().print(Text(self.format(record)), soft_wrap=True, highlight=False)
        except Exception:
            self.handleError(record)


def setup_console_logging(tag: str | None = None, level: int = logging.INFO) -> None:
    """Console logging for the commands that are not Hydra apps (``xlexp sweep``): the same handler and
    format as ``xlexp run``, so a sweep's log lines look like a run's; ``tag`` (e.g. ``w1``, a sweep
    worker) goes in brackets after the time. Does nothing when the root logger has handlers already
    (inside a Hydra app its job logging is set up). On stderr, as before: a sweep's stdout is its
    summary, which scripts read (a sweep trial shows no progress bars to collide with)."""
    root = logging.getLogger()
    if root.handlers:
        return
    handler = logging.StreamHandler(sys.stderr)
    fmt = LOG_FORMAT if not tag else LOG_FORMAT.replace("[%(asctime)s]", f"[%(asctime)s][{tag}]", 1)
    handler.setFormatter(logging.Formatter(fmt))
    root.addHandler(handler)
    root.setLevel(level)


#: seconds between two progress lines of one phase in the log (the bars, on a terminal, move continuously):
#: below the 30 s that issue #33 allows a phase to stay silent on a loaded machine
LOG_EVERY_S = 15.0
clock = time.monotonic  # a test swaps in a slow fake clock


class PhaseLog:
    """Progress of one long phase (training steps, a dev evaluation, the test targets, model features)
    as log lines: ``what: n/total unit (rate/s)`` plus the latest item, at most every
    :data:`LOG_EVERY_S` seconds and always for the last item, so a run without a terminal (CI, a
    cluster's log file), where the bars are off, is never silent for long. The first line says what
    starts and how much there is."""

    def __init__(
        self, logger: logging.Logger, what: str, total: int, unit: str = "", start: bool = True, last: bool = True
    ) -> None:
        """``start``: a first line now; ``last``: a line for the last item (off where a summary follows)."""
        self.log, self.what, self.total, self.unit, self.say_last = logger, what, int(total), unit, last
        self.done = 0
        self.t0 = self.last = clock()
        if start:
            self.log.info("%s: %d %s to do", what, self.total, unit or "item(s)")

    def advance(self, n: int = 1, info: str = "") -> None:
        self.done += n
        now = clock()
        final = self.done >= self.total
        if (now - self.last < LOG_EVERY_S and not final) or (final and not self.say_last):
            return
        self.last = now
        rate = self.done / max(now - self.t0, 1e-9)
        self.log.info(
            "%s: %d/%d %s (%.2f/s)%s", self.what, self.done, self.total, self.unit, rate, f", {info}" if info else ""
        )
