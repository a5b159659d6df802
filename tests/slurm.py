"""A real SLURM cluster for the tests marked ``slurm``: ``SLURM_CONF`` (what .ci/run starts with
.ci/slurm.sh), else a throwaway one-node cluster started here with .ci/slurm.sh when the daemons are
installed and this is root, else skip with the reason. Under CI (``CI`` set) a missing cluster fails
instead of skipping, like the PostgreSQL tests (tests/pg.py)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / ".ci" / "slurm.sh"
DAEMONS = ("slurmctld", "slurmd", "slurmdbd", "munged", "mariadbd", "sbatch")


def _unavailable(why: str):
    if os.environ.get("CI"):
        pytest.fail(f"a SLURM cluster is required under CI ({why}); .ci/run starts one with .ci/slurm.sh")
    pytest.skip(why)


def _answers() -> str | None:
    """None when the cluster answers ``sinfo`` with a usable node, else why not."""
    try:
        out = subprocess.run(["sinfo", "-h", "-N", "-o", "%t"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"sinfo: {e}"
    states = out.stdout.split()
    if out.returncode != 0 or not any(s.rstrip("*") in ("idle", "mix", "alloc") for s in states):
        return f"sinfo: {(out.stderr.strip() or ' '.join(states) or 'no node')[-300:]}"
    return None


@pytest.fixture(scope="session")
def slurm_cluster():
    """The cluster's slurm.conf path, with ``SLURM_CONF`` set in this process (the jobs and the
    ``xlexp`` subprocesses inherit it)."""
    conf = os.environ.get("SLURM_CONF")
    if conf:
        why = _answers()
        if why:
            _unavailable(f"SLURM_CONF={conf} but the cluster does not answer ({why})")
        yield conf
        return
    missing = [d for d in DAEMONS if shutil.which(d) is None]
    if missing:
        _unavailable(
            f"no SLURM here (missing {', '.join(missing)}): apt-get install slurm-wlm slurmdbd munge "
            f"mariadb-server, or set SLURM_CONF to a cluster's slurm.conf"
        )
    if os.geteuid() != 0:
        _unavailable("a throwaway SLURM cluster needs root (slurmd launches the jobs); set SLURM_CONF to a running one")
    folder = tempfile.mkdtemp(prefix="xlexp-slurm-")
    out = subprocess.run(["bash", str(SCRIPT), "start", folder], capture_output=True, text=True, timeout=300)
    if out.returncode != 0:
        subprocess.run(["bash", str(SCRIPT), "stop", folder], capture_output=True, timeout=120)
        _unavailable(f"could not start a throwaway SLURM cluster: {out.stderr.strip()[-500:]}")
    os.environ["SLURM_CONF"] = out.stdout.strip()
    try:
        yield os.environ["SLURM_CONF"]
    finally:
        os.environ.pop("SLURM_CONF", None)
        subprocess.run(["bash", str(SCRIPT), "stop", folder], capture_output=True, timeout=120)
