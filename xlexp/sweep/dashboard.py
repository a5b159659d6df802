"""``xlexp dashboard``: optuna-dashboard for a sweep storage, served on 127.0.0.1.

The server is optuna-dashboard's own :func:`optuna_dashboard.run_server` (what its CLI runs), in
this process's main thread, so Ctrl-C and SIGTERM stop it the way they stop optuna-dashboard. A
helper thread prints the URL only once ``/api/meta`` answers (the readiness probe), so a script
that waits for the line can use the dashboard at once.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
import urllib.request
from pathlib import Path

from xlexp.errors import XlexpError
from xlexp.sweep.storage import STORAGE_ENV, open_storage
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
        raise XlexpError(f"no sweep storage under {results_dir / 'sweeps'}: run `xlexp sweep sweeps/NAME.yaml` first, or pass --storage URL")
    if len(dbs) > 1:
        raise XlexpError(f"several sweep storages under {results_dir / 'sweeps'} ({', '.join(p.name for p in dbs)}): "
                         f"pass --storage sqlite:///{dbs[0].resolve()}")
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


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="xlexp dashboard", description="optuna-dashboard for a sweep storage (127.0.0.1 only).")
    p.add_argument("--storage", default=os.environ.get(STORAGE_ENV),
                   help=f"Optuna storage URL (default: ${STORAGE_ENV}, else the one SQLite file under <results>/sweeps/)")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1: the dashboard can change studies)")
    p.add_argument("--results-dir", default=os.environ.get("XLEXP_RESULTS_DIR", "results"))
    args = p.parse_args(argv)
    url = args.storage or default_storage(Path(args.results_dir))
    # Ctrl-C and SIGTERM stop the server even when the parent started us with SIGINT ignored (as a
    # non-interactive shell does for `cmd &`), so scripts and tests can always stop it
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        serve(url, args.host, args.port)
    except KeyboardInterrupt:
        pass
    return 0
