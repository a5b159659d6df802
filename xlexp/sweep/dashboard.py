"""Serve optuna-dashboard for a sweep storage on 127.0.0.1 (``xlexp dashboard``: :mod:`xlexp.cli.dashboard`).

The server is optuna-dashboard's own :func:`optuna_dashboard.run_server` (what its CLI runs), in
this process's main thread, so Ctrl-C and SIGTERM stop it the way they stop optuna-dashboard. A
helper thread prints the URL only once ``/api/meta`` answers (the readiness probe), so a script
that waits for the line can use the dashboard at once.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
import time
import urllib.request
from pathlib import Path

from xlexp.errors import XlexpError
from xlexp.sweep.storage import open_storage
from xlexp.tracking.masking import mask_url


def wait_ready(url: str, timeout_s: float = 30.0) -> dict:
    """Poll ``/api/meta`` until it answers with JSON."""
    deadline, last = time.monotonic() + timeout_s, None
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url.rstrip("/") + "/api/meta", timeout=2) as r:
                return json.loads(r.read())
        except (OSError, ValueError) as e:
            last = e
            time.sleep(0.2)
    raise XlexpError(f"optuna-dashboard did not answer at {url}api/meta within {timeout_s:.0f}s ({last})")


def default_storage(results_dir: Path) -> str:
    dbs = sorted((results_dir / "sweeps").glob("*.db"))
    if not dbs:
        raise XlexpError(
            f"no sweep storage under {results_dir / 'sweeps'}: run `xlexp sweep sweeps/NAME.yaml` first, or pass --storage URL"
        )
    if len(dbs) > 1:
        raise XlexpError(
            f"several sweep storages under {results_dir / 'sweeps'} ({', '.join(p.name for p in dbs)}): "
            f"pass --storage sqlite:///{dbs[0].resolve()}"
        )
    return f"sqlite:///{dbs[0].resolve()}"


def _announce(storage_url: str, url: str) -> None:
    """The readiness line, printed from a helper thread once the server answers."""
    try:
        wait_ready(url)
    except XlexpError as e:
        print(f"xlexp: warning: {e}", file=sys.stderr, flush=True)
        return
    print(f"optuna-dashboard for {mask_url(storage_url)}: {url}  (Ctrl-C stops it)", flush=True)


def serve(storage_url: str, host: str = "127.0.0.1", port: int = 8080) -> None:
    """Serve until Ctrl-C / SIGTERM (optuna-dashboard's ``run_server`` returns on KeyboardInterrupt)."""
    from optuna_dashboard import run_server

    storage = open_storage(storage_url, 10)
    url = f"http://{host}:{port}/"
    threading.Thread(target=_announce, args=(storage_url, url), name="dashboard-ready", daemon=True).start()
    try:
        run_server(storage, host=host, port=port)
    except OSError as e:
        raise XlexpError(f"cannot listen on {host}:{port}: {e.strerror or e}; pick another --port") from None


def run_dashboard(storage: str | None, results_dir: Path, host: str = "127.0.0.1", port: int = 8080) -> int:
    """Serve the dashboard for ``storage`` (None: the one SQLite file under ``<results_dir>/sweeps/``)
    until Ctrl-C or SIGTERM."""
    url = storage or default_storage(Path(results_dir))
    # Ctrl-C and SIGTERM stop the server even when the parent started us with SIGINT ignored (as a
    # non-interactive shell does for `cmd &`), so scripts and tests can always stop it
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        serve(url, host, port)
    except KeyboardInterrupt:
        pass
    return 0
