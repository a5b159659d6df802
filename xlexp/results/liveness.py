"""Liveness by a held lock, not by a pid: whose work is still alive, across hosts and PID namespaces.

A pid says nothing outside its own PID namespace and host: a run in a container that shares the
host name and the cache sees another container's pid as "gone" (or as someone else's live process),
and pids are reused. What the kernel does know is whether a lock is held: an ``flock`` on a file is
held while the process that took it lives and is released by the kernel when it dies, however it
dies (kill -9, out of memory), whichever PID namespace it is in; on NFS the lock goes through the
lock manager, so other hosts see it too. So every "is its owner still running?" question in xlexp
is asked of a lock file:

- checkpoint folders (``xlexp.engine.selection``): ``cache/checkpoints/<run>.lock``, held while the
  run keeps checkpoints there;
- unit claims (``xlexp.results.units``): ``results/claims/<unit key>.lock``, held while a process
  trains the unit, so two runs of one config never both train it;
- pending sweep trials (``xlexp.sweep.commit``): ``results/pending/<experiment>.lock``, held by the
  trial's worker from the run until its files are promoted or discarded.

:class:`HeldLock` takes a lock (never blocking unless asked), writes ``host pid`` into the file for
people and ``xlexp status``, and keeps it until :meth:`HeldLock.release` or the process ends.
:func:`lock_state` asks without taking anything for long: ``"held"``, ``"free"`` (the owner is gone)
or ``"none"`` (no lock file: work of an older version). A probe opens the file read-only and never
truncates it. Locks this process holds are also kept in a set, because a file system where flock
falls back to per-process POSIX locks (NFS) would let a process take its own lock a second time.
"""

from __future__ import annotations

import errno
import fcntl
import os
import socket
import time
from pathlib import Path

_HELD: dict[str, HeldLock] = {}  # lock files this process holds, by absolute path


def _key(path: Path) -> str:
    return os.path.abspath(path)


class HeldLock:
    """An exclusive ``flock`` on ``path`` held by this process (its file is created if needed)."""

    def __init__(self, path: Path | str):
        self.path = Path(path)
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self, block: bool = False, timeout_s: float | None = None, poll_s: float = 0.5) -> bool:
        """Take the lock; without ``block``, return False at once when another process holds it.
        With ``block``, wait (up to ``timeout_s`` when given)."""
        if self._fd is not None:
            return True
        if _key(self.path) in _HELD:  # this process holds it through another object
            return False
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as e:
                os.close(fd)
                if e.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                    raise
                if not block or (deadline is not None and time.monotonic() >= deadline):
                    return False
                time.sleep(poll_s)
                continue
            if _same_file(fd, self.path):
                break
            os.close(fd)  # the holder removed the file as we opened it: lock the new one instead
        os.ftruncate(fd, 0)
        os.write(fd, f"{socket.gethostname()} {os.getpid()} {time.time():.0f}\n".encode())
        self._fd = fd
        _HELD[_key(self.path)] = self
        return True

    def release(self, remove: bool = True) -> None:
        """Let go of the lock (and, by default, remove its file first: nobody needs it any more)."""
        if self._fd is None:
            return
        if remove:
            try:
                self.path.unlink()
            except OSError:
                pass
        try:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            os.close(self._fd)
            self._fd = None
            _HELD.pop(_key(self.path), None)

    def __enter__(self) -> HeldLock:
        if not self.acquire():
            raise BlockingIOError(f"{self.path} is held by another process")
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def _same_file(fd: int, path: Path) -> bool:
    try:
        a, b = os.fstat(fd), os.stat(path)
    except OSError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def lock_state(path: Path | str) -> str:
    """``"held"`` (a live process holds it: this one, or any other on any host that sees the lock),
    ``"free"`` (its owner is gone) or ``"none"`` (no lock file). A file system that cannot lock
    counts as ``"held"``: when in doubt, nothing is deleted."""
    path = Path(path)
    if _key(path) in _HELD:
        return "held"
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return "none"
    except OSError:
        return "held"
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return "held"
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return "free"
    finally:
        os.close(fd)


def lock_owner(path: Path | str) -> tuple[str | None, int | None]:
    """(host, pid) written into a lock file by its holder, for messages; (None, None) if unknown."""
    try:
        parts = Path(path).read_text().split()
        return parts[0], int(parts[1])
    except (OSError, IndexError, ValueError):
        return None, None
