"""``xlexp dashboard``: optuna-dashboard for a sweep storage, served on 127.0.0.1.

The server runs in a thread; the command prints the URL only once ``/api/meta`` answers (the
readiness probe), then serves until Ctrl-C.

May import: :mod:`xlexp.sweep.storage`, :mod:`xlexp.tracking.masking`, :mod:`xlexp.errors`,
optuna-dashboard.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from xlexp.errors import XlexpError
from xlexp.sweep.storage import STORAGE_ENV, open_storage
from xlexp.tracking.masking import mask_url


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format, *args) -> None:  # one line per request is noise on a terminal
        pass


@dataclass
class Dashboard:
    server: WSGIServer
    thread: threading.Thread

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


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


def start(storage_url: str, host: str = "127.0.0.1", port: int = 8080) -> Dashboard:
    from optuna_dashboard import wsgi

    app = wsgi(open_storage(storage_url, 10))
    try:
        server = make_server(host, port, app, handler_class=_QuietHandler)
    except OSError as e:
        raise XlexpError(f"cannot listen on {host}:{port}: {e.strerror}; pick another --port") from None
    thread = threading.Thread(target=server.serve_forever, name="optuna-dashboard", daemon=True)
    thread.start()
    dash = Dashboard(server, thread)
    wait_ready(dash.url)
    return dash


def default_storage(results_dir: Path) -> str:
    dbs = sorted((results_dir / "sweeps").glob("*.db"))
    if not dbs:
        raise XlexpError(f"no sweep storage under {results_dir / 'sweeps'}: run `xlexp sweep sweeps/NAME.yaml` first, or pass --storage URL")
    if len(dbs) > 1:
        raise XlexpError(f"several sweep storages under {results_dir / 'sweeps'} ({', '.join(p.name for p in dbs)}): "
                         f"pass --storage sqlite:///{dbs[0].resolve()}")
    return f"sqlite:///{dbs[0].resolve()}"


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
    dash = start(url, args.host, args.port)
    print(f"optuna-dashboard for {mask_url(url)}: {dash.url}  (Ctrl-C stops it)", flush=True)
    try:
        while dash.thread.is_alive():
            dash.thread.join(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        dash.stop()
    return 0
