"""Storage outages: a sweep worker rides out a database that is away for a while.

A PostgreSQL restart, a fail-over or a network blip makes every storage call raise for some
seconds. The worker's calls go through :meth:`StorageHealth.call`, which retries them with
backoff for up to ``XLEXP_SWEEP_STORAGE_RETRY_S`` seconds (default 60) and says so in ONE
warning line per outage (and one line when the storage is back), however many calls and
heartbeats fail meanwhile; training simply waits at its next dev evaluation. An outage longer
than that ends the worker with :class:`StorageUnavailable`, one line naming the storage (masked)
and what happens to the trial; the traceback only under ``XLEXP_DEBUG=1``.

Only connection-level errors are retried (:func:`is_outage`): an integrity error or a bug is
raised at once, as before.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from xlexp.errors import XlexpError, debug  # noqa: F401  (re-exported for the sweep modules)
from xlexp.tracking.masking import mask_url

log = logging.getLogger("xlexp.sweep.storage")

RETRY_ENV = "XLEXP_SWEEP_STORAGE_RETRY_S"
DEFAULT_RETRY_S = 60.0

T = TypeVar("T")


class StorageUnavailable(XlexpError):
    """The sweep storage stayed unreachable for longer than the retry limit."""


def retry_limit_s() -> float:
    raw = os.environ.get(RETRY_ENV)
    if not raw:
        return DEFAULT_RETRY_S
    try:
        return max(0.0, float(raw))
    except ValueError:
        raise XlexpError(f"{RETRY_ENV}={raw!r} is not a number of seconds (e.g. {RETRY_ENV}=60)") from None


def _chain(e: BaseException | None):
    seen = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        yield e
        e = e.__cause__ or e.__context__


def is_outage(e: BaseException) -> bool:
    """A connection-level storage error (the server is away, the connection was cut), as raised
    directly by SQLAlchemy or wrapped by Optuna (``StorageInternalError ... from OperationalError``)."""
    try:
        from sqlalchemy import exc as sa_exc
    except ImportError:  # pragma: no cover - Optuna's RDB storage needs SQLAlchemy
        return False
    for err in _chain(e):
        if isinstance(
            err, (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.DisconnectionError, ConnectionError)
        ):
            return True
        if isinstance(err, sa_exc.DBAPIError) and err.connection_invalidated:
            return True
    return False


def first_line(e: BaseException) -> str:
    """``Type: first line of the message`` of the driver's error (``psycopg2 OperationalError:
    connection to server ... failed: Connection refused``), without passwords."""
    chain = list(_chain(e))
    driver = next((err.orig for err in chain if getattr(err, "orig", None) is not None), None)
    shown = driver if driver is not None else chain[0]
    text = str(shown).strip()
    return f"{type(shown).__name__}: {mask_url(text.splitlines()[0]) if text else 'no message'}"


class StorageHealth:
    """One per worker process: retries storage calls through an outage and logs it once."""

    def __init__(self, url: str, limit_s: float | None = None) -> None:
        self.url = url
        self.limit_s = retry_limit_s() if limit_s is None else limit_s
        self._lock = threading.Lock()
        self._down_since: float | None = None
        self.outages = 0

    def failed(self, e: BaseException) -> float:
        """Note a failed call; returns how long the storage has been away."""
        with self._lock:
            now = time.monotonic()
            if self._down_since is None:
                self._down_since = now
                self.outages += 1
                log.warning(
                    "sweep storage %s unreachable (%s): retrying for up to %.0f s; the running trial waits",
                    mask_url(self.url),
                    first_line(e),
                    self.limit_s,
                )
            return now - self._down_since

    def ok(self) -> None:
        with self._lock:
            if self._down_since is not None:
                log.warning(
                    "sweep storage %s reachable again after %.0f s",
                    mask_url(self.url),
                    time.monotonic() - self._down_since,
                )
                self._down_since = None

    def call(self, fn: Callable[[], T], what: str) -> T:
        """``fn()``, retried with backoff while the storage is away (up to the limit)."""
        delay = 0.5
        while True:
            try:
                out = fn()
            except Exception as e:
                if not is_outage(e):
                    raise
                away = self.failed(e)
                if away >= self.limit_s:
                    raise StorageUnavailable(
                        f"sweep storage {mask_url(self.url)} unreachable for {away:.0f} s ({first_line(e)}) while "
                        f"{what}; re-run the same command when it is back (a running trial is failed and re-queued "
                        f"then; {RETRY_ENV} sets how long workers wait)"
                    ) from (e if debug() else None)
                time.sleep(min(delay, max(0.1, self.limit_s - away)))
                delay = min(2 * delay, 5.0)
                continue
            self.ok()
            return out
