"""Weights & Biases tracker (``tracker=wandb``) and the aggregate run of ``xlexp report --wandb``.

One W&B run per training unit: train loss/lr and ``dev/{target}/{metric}`` per step (their summary
is the best value, ``summary="max"``, so run tables show the best dev score, not the last); at the
end the unit's records as a long and a wide ``wandb.Table`` (the wide one has a column for every
language of the task, so tables of one task's runs merge), a heatmap per matrix (plotly figure +
PNG, targets in the same order), summary keys ``xfer/{source}/{target}/{metric}`` and
``xfer/mean/...`` (the cross-lingual cells only: in-language cells left out), and the records and
per-example predictions as a W&B Artifact (type ``xlexp-results``). The console is captured
(``console="wrap"``, which works offline too: the Logs tab and ``files/output.log``), and the run's
Hydra output folder is in the config as ``log_dir``.

Modes (``tracker.mode``): ``auto`` = online when an API key is configured (``WANDB_API_KEY`` or a
netrc entry for the W&B host), else offline, printing one line with the ``wandb sync`` command;
``online``, ``offline``, ``disabled``. The results store is written before anything reaches W&B,
and every W&B call is guarded: a failure logs one warning and turns the tracker off for the rest of
the process; init and finish are bounded by ``tracker.timeout_s``.

What a run shows (tables, heatmaps, summary keys, the artifact) is ``xlexp.tracking.wandb_results``.
"""

from __future__ import annotations

import logging
import netrc
import os
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pandas as pd

from xlexp.errors import XlexpError
from xlexp.results.query import experiment_records, load
from xlexp.results.store import current_log_dir
from xlexp.tracking.masking import mask_secrets
from xlexp.tracking.wandb_results import import_wandb, log_records_artifact, log_results

log = logging.getLogger(__name__)

MODES = ("auto", "online", "offline", "disabled")
STEP_KEY = "trainer/step"
DEFAULT_HOST = "https://api.wandb.ai"
_sync_hinted: set[str] = set()  # one sync line per folder and process, however many runs


@dataclass
class WandbOptions:
    mode: str = "auto"
    project: str = "xlexp"
    entity: str | None = None
    dir: str = "results"  # W&B writes its run folders to <dir>/wandb/
    timeout_s: float = 10.0

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> WandbOptions:
        mode = str(cfg.get("mode", "auto"))
        if mode not in MODES:
            raise XlexpError(f"tracker.mode must be one of {', '.join(MODES)}; got {mode!r}")
        timeout = cfg.get("timeout_s", 10.0)
        if not isinstance(timeout, (int, float)) or timeout <= 0:
            raise XlexpError(f"tracker.timeout_s must be a positive number of seconds, got {timeout!r}")
        return cls(
            mode=mode,
            project=str(cfg.get("project") or "xlexp"),
            entity=cfg.get("entity") or None,
            dir=str(cfg.get("dir") or "results"),
            timeout_s=float(timeout),
        )


def has_api_key(env: Mapping[str, str] = os.environ) -> bool:
    """An API key in the environment, or a netrc entry for the W&B host (what ``wandb login`` writes)."""
    if env.get("WANDB_API_KEY"):
        return True
    host = urlparse(env.get("WANDB_BASE_URL") or DEFAULT_HOST).hostname or "api.wandb.ai"
    path = env.get("NETRC") or os.path.expanduser("~/.netrc")
    try:
        entry = netrc.netrc(path).authenticators(host)
    except (OSError, netrc.NetrcParseError):
        return False
    return bool(entry and entry[2])


def resolve_mode(requested: str, env: Mapping[str, str] = os.environ) -> str:
    """``auto`` -> online with an API key, else offline; W&B's own WANDB_MODE=offline|disabled wins."""
    if requested != "auto":
        return requested
    env_mode = (env.get("WANDB_MODE") or "").lower()
    if env_mode in ("offline", "dryrun"):
        return "offline"
    if env_mode == "disabled" or (env.get("WANDB_DISABLED") or "").lower() in ("true", "1", "yes"):
        return "disabled"
    return "online" if has_api_key(env) else "offline"


def sync_command(root: str | Path) -> str:
    return f"wandb sync {Path(root).resolve() / 'wandb'}/offline-run-*"


def hint_sync(root: str | Path, reason: str = "no API key") -> None:
    """The one line an offline user needs; printed once per folder and process."""
    key = str(Path(root).resolve())
    if key not in _sync_hinted:
        _sync_hinted.add(key)
        print(
            f"W&B offline ({reason}): runs saved under {Path(key) / 'wandb'}; upload them with: {sync_command(root)}",
            file=sys.stderr,
            flush=True,
        )


def call_with_timeout(fn: Callable[[], Any], timeout: float, what: str) -> Any:
    """Run ``fn`` in a daemon thread; a call still running after ``timeout`` s raises TimeoutError
    (the thread is left behind: W&B's local run folder still has everything for ``wandb sync``)."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = fn()
        except BaseException as e:  # handed to the caller's thread
            box["error"] = e

    thread = threading.Thread(target=target, name=f"xlexp-wandb-{what}", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise TimeoutError(f"{what} took more than {timeout:g}s")
    if "error" in box:
        raise box["error"]
    return box.get("value")


def start_run(opts: WandbOptions, mode: str, **init_kwargs):
    """``wandb.init`` bounded by ``opts.timeout_s`` (W&B's own init timeout, and a thread around it)."""
    wandb = import_wandb()
    Path(opts.dir).mkdir(parents=True, exist_ok=True)
    # console="wrap": W&B wraps sys.stdout/stderr's write (no pty, no fd redirection), which works
    # offline and under Hydra's and rich's own stream handling; the Logs tab shows the run's lines
    settings = wandb.Settings(
        init_timeout=opts.timeout_s, x_service_wait=opts.timeout_s, silent=mode == "offline", quiet=True, console="wrap"
    )
    return call_with_timeout(
        lambda: wandb.init(
            project=opts.project,
            entity=opts.entity,
            dir=str(opts.dir),
            mode=mode,
            settings=settings,
            reinit="finish_previous",
            **init_kwargs,
        ),
        opts.timeout_s + 5,
        "wandb.init",
    )


def _group(config: Mapping[str, Any]) -> str:
    study = config.get("study")
    if isinstance(study, Mapping):
        study = study.get("name")
    return str(study or config.get("name") or "xlexp")


def _name_of(config: Mapping[str, Any], key: str) -> str | None:
    node = config.get(key)
    return str(node.get("name")) if isinstance(node, Mapping) and node.get("name") else None


class WandbTracker:
    """The experiment runner's Tracker for W&B. Never raises: a W&B failure turns it off with one warning."""

    def __init__(self, opts: WandbOptions):
        self.opts = opts
        self.mode = resolve_mode(opts.mode)
        self._run = None
        self._config: Mapping[str, Any] = {}
        self._off = self.mode == "disabled"

    @property
    def run(self):
        return self._run

    def _disable(self, what: str, error: BaseException) -> None:
        if not self._off:
            log.warning(
                "W&B %s failed (%s: %s); W&B logging is off for the rest of this run "
                "(results are in the results store)",
                what,
                type(error).__name__,
                error,
            )
        self._off = True
        run, self._run = self._run, None
        if run is not None and what != "finish":
            # close what was logged so far (bounded: a hung W&B must not hang the run); errors ignored
            try:
                call_with_timeout(run.finish, min(self.opts.timeout_s, 3.0), "wandb finish")
            except Exception:
                pass

    def _guard(self, what: str, fn: Callable[[], Any]) -> Any:
        if self._off:
            return None
        try:
            return fn()
        except Exception as e:
            self._disable(what, e)
            return None

    def start_unit(self, name: str, config: Mapping[str, Any]) -> None:
        if self._off:
            return
        config = mask_secrets(dict(config))
        log_dir = current_log_dir()
        if log_dir is not None:  # where this run's log and saved config are (also in every record)
            config["log_dir"] = log_dir
        self._config = config
        kwargs = dict(
            name=name,
            group=_group(config),
            job_type=_name_of(config, "regime") or "train",
            tags=[t for t in (_name_of(config, "model"), _name_of(config, "task")) if t],
            config=config,
        )
        try:
            self._run = start_run(self.opts, self.mode, **kwargs)
        except Exception as e:
            if self.mode != "online" or self.opts.mode == "online":
                self._disable("init", e)
                return
            # auto mode found a key but the server did not answer: keep the run locally instead
            log.warning("W&B online init failed (%s); logging offline instead", e)
            self.mode = "offline"
            self._run = self._guard("init (offline)", lambda: start_run(self.opts, "offline", **kwargs))
        if self._run is None:
            return
        if self.mode == "offline":
            hint_sync(self.opts.dir, self._offline_reason())

        def define() -> None:
            self._run.define_metric(STEP_KEY)
            self._run.define_metric("train/*", step_metric=STEP_KEY)
            # every dev metric is higher-is-better (accuracy, F1, chrF, BLEU...): the run's summary,
            # and so the runs table, holds the best dev value rather than the last
            self._run.define_metric("dev/*", step_metric=STEP_KEY, summary="max")

        self._guard("define_metric", define)

    def _offline_reason(self) -> str:
        if self.opts.mode == "offline" or (os.environ.get("WANDB_MODE") or "").lower() in ("offline", "dryrun"):
            return "offline mode"
        return "W&B server unreachable" if has_api_key() else "no API key"

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        if self._run is not None:
            self._guard("log", lambda: self._run.log({**metrics, STEP_KEY: step}))

    def log_records(self, records: Sequence[Any]) -> None:
        if self._run is not None and records:
            frame = pd.DataFrame([asdict(r) if not isinstance(r, Mapping) else dict(r) for r in records])
            if current_log_dir() is not None:  # as the store's files have it (set when they are written)
                frame["log_dir"] = frame.get("log_dir", pd.Series(index=frame.index, dtype=object)).fillna(
                    current_log_dir()
                )
            run = self._run
            # the store's run id ties the W&B run to its records (known only once they exist)
            self._guard(
                "config update",
                lambda: run.config.update({"xlexp_run_id": str(frame["run_id"].iloc[0])}, allow_val_change=True),
            )
            self._guard("log results", lambda: log_results(run, frame))
            self._guard("log artifact", lambda: log_records_artifact(run, frame, self._results_dir()))

    def _results_dir(self) -> Path | None:
        paths = self._config.get("paths")
        return Path(str(paths["results_dir"])) if isinstance(paths, Mapping) and paths.get("results_dir") else None

    def finish_unit(self) -> None:
        run, self._run = self._run, None
        if run is not None and not self._off:
            self._guard("finish", lambda: call_with_timeout(run.finish, self.opts.timeout_s, "wandb finish"))


def log_experiment(results_dir: str | Path, experiment: str, opts: WandbOptions) -> str:
    """``xlexp report --wandb NAME``: one W&B run with the experiment's full matrix from the store
    (every source, few-shot curves, every selection rule). Returns where the run went."""
    sub = experiment_records(load(results_dir), experiment)
    mode = resolve_mode(opts.mode)
    if mode == "disabled":
        return "W&B disabled (mode disabled): nothing logged"
    config = {
        "experiment": experiment,
        "runs": sorted(sub["run_id"].unique()),
        "records": int(len(sub)),
        "results_dir": str(Path(results_dir).resolve()),
        "sources": sorted(sub["source"].unique()),
        "targets": sorted(sub["target"].unique()),
        "seeds": sorted(int(s) for s in sub["seed"].unique()),
        # the runs' Hydra output folders (logs and saved configs), for records that carry them
        "log_dirs": sorted(str(d) for d in sub["log_dir"].dropna().unique()) if "log_dir" in sub else [],
    }
    try:
        run = start_run(
            opts,
            mode,
            name=f"{experiment} (matrix)",
            group=experiment,
            job_type="report",
            tags=sorted(set(sub["model"]) | set(sub["task"])),
            config=mask_secrets(config),
        )
        log_results(run, sub, curves=True)
        where = run.url if mode == "online" and getattr(run, "url", None) else str(Path(run.dir).parent)
        call_with_timeout(run.finish, opts.timeout_s * 3, "wandb finish")
    except Exception as e:
        raise XlexpError(
            f"W&B logging failed ({type(e).__name__}: {e}); the results store is unchanged. "
            "Check the API key / network, or use --wandb-mode offline"
        ) from e
    if mode == "offline":
        hint_sync(opts.dir, "offline mode" if opts.mode == "offline" else "no API key")
    return where
