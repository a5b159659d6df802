"""PostgreSQL for the sweep tests: ``XLEXP_TEST_PG_URL`` (what .ci/run starts), else a throwaway
cluster started here with .ci/postgres.sh when the binaries exist, else skip. Under CI (``CI``
set) a missing PostgreSQL fails instead of skipping."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / ".ci" / "postgres.sh"


def _have_binaries() -> bool:
    return bool(glob.glob("/usr/lib/postgresql/*/bin/initdb")) or shutil.which("initdb") is not None


def _unavailable(why: str):
    if os.environ.get("CI"):
        pytest.fail(f"PostgreSQL is required under CI ({why}); .ci/run installs and starts it")
    pytest.skip(why)


@pytest.fixture(scope="session")
def pg_url():
    url = os.environ.get("XLEXP_TEST_PG_URL")
    if url:
        yield url
        return
    if not _have_binaries():
        _unavailable("no PostgreSQL binaries (initdb, pg_ctl): apt-get install postgresql")
    folder = tempfile.mkdtemp(prefix="xlexp-pg-")  # under /tmp: the postgres user must reach it
    out = subprocess.run(["bash", str(SCRIPT), "start", folder], capture_output=True, text=True, timeout=180)
    if out.returncode != 0:
        subprocess.run(["bash", str(SCRIPT), "stop", folder], capture_output=True, timeout=60)
        _unavailable(f"could not start a throwaway PostgreSQL: {out.stderr.strip()[-500:]}")
    try:
        yield out.stdout.strip()
    finally:
        subprocess.run(["bash", str(SCRIPT), "stop", folder], capture_output=True, timeout=60)


def with_password(url: str, password: str) -> str:
    """The same server with a password in the URL (trust auth ignores it; the point is that it
    never shows up anywhere)."""
    scheme, rest = url.split("://", 1)
    user, host = rest.split("@", 1)
    return f"{scheme}://{user.split(':')[0]}:{password}@{host}"
