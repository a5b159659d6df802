"""Tracking: secret masking, W&B mode choice, and real W&B offline runs read back from disk."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from conftest import TINY, compose_cfg, write_nusax_like
from synthetic import standard_store
from wandb_offline import read_offline_run
from xlexp import XlexpError, load_records, run_experiment
from xlexp.config.schema import TrackerSettings
from xlexp.tracking.base import NullTracker, make_tracker
from xlexp.tracking.masking import mask_secrets, mask_url
from xlexp.tracking.wandb_tracker import WandbOptions, WandbTracker, has_api_key, log_experiment, resolve_mode

TWO = ["langpair.sources=[eng,ind]", "langpair.targets=[eng,ind,jav]"]
TWO_UNITS = ["langpair.sources=[eng,ind]", "langpair.targets=[jav]"]


# ---- masking -----------------------------------------------------------------------------------


@pytest.mark.unit
def test_mask_secrets_keys_and_urls():
    cfg = {
        "tracker": {"name": "wandb", "api_key": "abc123", "entity": None},
        "sweep": {
            "storage": "postgresql://alice:s3cr3t@db.example:5432/optuna",
            "db_password": "pw",
            "urls": ["redis://:hunter2@cache/0", "https://host/path?token=tok&x=1"],
        },
        "model": {"tokenizer": "xlmr", "pad_token": "<pad>", "max_tokens": 512},
        "hf": {"HF_TOKEN": "hf_xyz", "clientSecret": "cs", "auth": {"password": "nested"}},
        "empty": {"password": None, "token": ""},
    }
    out = mask_secrets(cfg)
    text = json.dumps(out)
    for secret in ("abc123", "s3cr3t", "hunter2", "tok&", "hf_xyz", '"cs"', "nested", '"pw"'):
        assert secret not in text, secret
    assert out["sweep"]["storage"] == "postgresql://alice:***@db.example:5432/optuna"
    assert out["sweep"]["urls"] == ["redis://:***@cache/0", "https://host/path?token=***&x=1"]
    assert out["model"] == cfg["model"]  # tokenizer settings are not secrets
    assert out["empty"] == {"password": None, "token": ""}  # "no key set" stays visible
    assert cfg["tracker"]["api_key"] == "abc123"  # a copy: the input is untouched
    assert mask_url("postgresql://user@host/db") == "postgresql://user@host/db"


# ---- mode choice -------------------------------------------------------------------------------


@pytest.mark.unit
def test_mode_follows_the_api_key(tmp_path):
    netrc = tmp_path / "netrc"
    env = {"NETRC": str(netrc)}
    assert not has_api_key(env) and resolve_mode("auto", env) == "offline"
    assert resolve_mode("auto", {**env, "WANDB_API_KEY": "k" * 40}) == "online"
    netrc.write_text("machine api.wandb.ai\n  login user\n  password " + "p" * 40 + "\n")
    netrc.chmod(0o600)
    assert has_api_key(env) and resolve_mode("auto", env) == "online"
    # a netrc entry for another host does not count
    assert not has_api_key({**env, "WANDB_BASE_URL": "https://wandb.mycorp.example"})
    assert resolve_mode("auto", {**env, "WANDB_MODE": "offline"}) == "offline"
    assert resolve_mode("auto", {**env, "WANDB_MODE": "disabled"}) == "disabled"
    assert resolve_mode("online", {}) == "online"


def test_tracker_config_is_checked(dirs):
    with pytest.raises(XlexpError, match="tracker.mode must be one of auto, online, offline, disabled"):
        run_experiment(compose_cfg(dirs, *TINY, "tracker=wandb", "tracker.mode=sometimes"))
    with pytest.raises(XlexpError, match="unknown tracker 'mlflow'"):
        make_tracker(TrackerSettings(name="mlflow"))
    assert isinstance(make_tracker(TrackerSettings(name="wandb", options={"mode": "disabled"})), NullTracker)
    assert isinstance(make_tracker(TrackerSettings(name="none")), NullTracker)  # tracker=none: nothing reaches W&B
    assert load_records(dirs["results"]).empty


# ---- real offline runs -------------------------------------------------------------------------


@pytest.fixture
def no_key(monkeypatch, tmp_path):
    """No API key anywhere: not in the environment, no netrc."""
    for var in ("WANDB_API_KEY", "WANDB_MODE", "WANDB_DISABLED", "WANDB_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "wandb-config"))
    monkeypatch.setattr("xlexp.tracking.wandb_tracker._sync_hinted", set())


def _offline_runs(results: Path) -> list:
    return [read_offline_run(f) for f in sorted((results / "wandb").glob("offline-run-*"))]


def _media(run, kind: str, key: str) -> Path:
    """The one media file W&B wrote for logged key ``key`` (files are ``<key>_<step>_<hash>.<ext>``)."""
    folder, name = key.rsplit("/", 1) if "/" in key else ("", key)
    root = run.folder / "files" / "media" / kind
    found = [
        p
        for p in run.media(kind)
        if p.is_file() and p.name.startswith(name + "_") and str(p.parent.relative_to(root)) == (folder or ".")
    ]
    assert len(found) == 1, (key, [str(p.relative_to(root)) for p in run.media(kind)])
    return found[0]


def _table(run, key: str) -> dict:
    return json.loads(_media(run, "table", key).read_text())


def _media_keys(run) -> set[str]:
    """Keys of everything logged as media (tables, figures, images)."""
    return {k.removesuffix("/_type") for h in run.history for k in h if k.endswith("/_type")}


@pytest.fixture(scope="module")
def cli_wandb_run(tmp_path_factory):
    """``xlexp run ... tracker=wandb`` as a user runs it: no API key anywhere, two sources (so two
    training units, two W&B runs), secrets in the config."""
    root = tmp_path_factory.mktemp("cliwb")
    dirs = {"data": write_nusax_like(root / "data"), "results": root / "results", "cache": root / "cache"}
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    env.update(
        XLEXP_DATA_DIR=str(dirs["data"]),
        XLEXP_RESULTS_DIR=str(dirs["results"]),
        XLEXP_CACHE_DIR=str(dirs["cache"]),
        NETRC=str(root / "none"),
        HOME=str(root / "home"),
    )
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "xlexp.cli.main",
            "run",
            *TINY,
            *TWO,
            "name=wb",
            "tracker=wandb",
            "+tracker.api_key=sekrit-key",
            "+sweep_storage=postgresql://bob:pa55word@db/optuna",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=root,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr
    return dirs, out


def test_cli_run_with_wandb_and_no_key(cli_wandb_run):
    dirs, out = cli_wandb_run
    wandb_dir = dirs["results"].resolve() / "wandb"
    lines = [line for line in (out.stdout + out.stderr).splitlines() if "wandb sync" in line]
    assert lines == [
        f"W&B offline (no API key): runs saved under {wandb_dir}; upload them with: "
        f"wandb sync {wandb_dir}/offline-run-*"
    ]  # exactly one line, however many W&B runs
    test = load_records(dirs["results"]).query("split == 'test'")
    assert set(test["source"]) == {"eng", "ind"} and set(test["target"]) == {"eng", "ind", "jav"}
    assert len(_offline_runs(dirs["results"])) == 2  # one W&B run per training unit (per source model)


def test_wandb_runs_hold_metrics_tables_heatmaps_and_summary(cli_wandb_run):
    dirs, _ = cli_wandb_run
    records = load_records(dirs["results"])
    test = records[records["split"] == "test"]
    for run in _offline_runs(dirs["results"]):
        assert run.run.run_group == "wb" and run.run.job_type == "zero_shot"
        assert set(run.run.tags) == {"tiny_random", "nusax_senti"}
        assert run.run.project == "xlexp"
        text = json.dumps(run.config)
        assert "sekrit-key" not in text and "pa55word" not in text
        assert run.config["tracker"]["api_key"] == "***"
        assert run.config["sweep_storage"] == "postgresql://bob:***@db/optuna"
        assert run.config["model"]["name"] == "tiny_random" and run.config["seed"] == 42  # resolved config
        assert run.config["xlexp_run_id"] == test["run_id"].iloc[0]
        long = _table(run, "matrix/long")
        (source,) = {row[long["columns"].index("source")] for row in long["data"]}

        # per-step train loss/lr and per-eval dev metrics, against the trainer's step
        train = [h for h in run.history if "train/loss" in h]
        assert len(train) >= 10 and all("train/lr" in h and "trainer/step" in h for h in train)
        assert [h["trainer/step"] for h in train] == sorted(h["trainer/step"] for h in train)
        dev = [h for h in run.history if any(k.startswith("dev/") for k in h)]
        assert dev and {"dev/eng/accuracy", "dev/ind/macro_f1", "dev/jav/accuracy"} <= set().union(*dev)

        # summary keys = the records of this source, headline rule without suffix
        mine = test[test["source"] == source]
        headline = mine[mine["selection"] == "source_dev"]
        for r in headline.itertuples():
            assert run.summary[f"xfer/{source}/{r.target}/{r.metric}"] == pytest.approx(r.value)
        for r in mine[mine["selection"] == "target_dev"].itertuples():
            assert run.summary[f"xfer/{source}/{r.target}/target_dev/{r.metric}"] == pytest.approx(r.value)

        # long table = every record of the unit; wide table = one row per (rule, metric)
        assert len(long["data"]) == len(records[records["source"] == source]) and "target" in long["columns"]
        wide = _table(run, "matrix/wide")
        assert {"metric", "selection", "source", "eng", "ind", "jav"} <= set(wide["columns"])
        assert len(wide["data"]) == mine[["selection", "metric"]].drop_duplicates().shape[0]
        # ... with a column for every language of the task, so every run's table has the same columns
        assert wide["columns"] == [
            "metric",
            "model",
            "task",
            "regime",
            "selection",
            "k",
            "source",
            "ace",
            "ban",
            "bbc",
            "bjn",
            "bug",
            "ind",
            "jav",
            "mad",
            "min",
            "nij",
            "sun",
            "eng",
        ]

        # the mean leaves the in-language cell out: source -> itself is not transfer
        for metric in ("accuracy", "macro_f1"):
            cross = headline[(headline["metric"] == metric) & (headline["target"] != source)]["value"]
            assert run.summary[f"xfer/mean/{metric}"] == pytest.approx(cross.mean())
            own = headline[(headline["metric"] == metric) & (headline["target"] == source)]["value"].item()
            assert run.summary[f"xfer/in_language/{metric}"] == pytest.approx(own)

        # dev metrics: the summary holds the best value (summary="max"), not the last one
        dev_keys = {k for h in dev for k in h if k.startswith("dev/")}
        for key in dev_keys:
            values = [h[key] for h in dev if key in h]
            assert run.summary_max[key] == pytest.approx(max(values))
            assert key not in {k for k in run.summary if k not in run.summary_max}  # no plain "last value" entry

        # the console (the Logs tab) is captured, offline too
        console = "".join(run.console)
        assert f"source {source}: best source dev macro_f1" in console, console[-2000:]

        # the Hydra output folder: in the W&B config and in every record, and it holds the run's log
        log_dir = Path(run.config["log_dir"])
        assert (log_dir / ".hydra" / "config.yaml").is_file()
        assert set(records["log_dir"]) == {str(log_dir)}

        # the unit's records and predictions as an artifact
        (artifact,) = [a for a in run.artifacts if a.type == "xlexp-results"]  # (W&B adds its own for tables)
        assert run.config["xlexp_run_id"] in artifact.name
        files = {c.path: c for c in artifact.manifest.contents}
        assert set(files) == {"records.parquet", "predictions.parquet"}
        meta = json.loads(artifact.metadata)
        assert meta["sources"] == [source] and meta["records"] == len(records[records["source"] == source])
        assert meta["log_dir"] == str(log_dir) and meta["predictions"] > 0
        staged = pd.read_parquet(files["records.parquet"].local_path)  # the staged copy W&B will upload
        assert len(staged) == meta["records"] and set(staged["source"]) == {source}

        # heatmaps: a plotly figure (with the cell values) and a PNG per rule and metric
        fig = json.loads(_media(run, "plotly", "heatmap/macro_f1").read_text())
        trace = fig["data"][0]
        assert trace["type"] == "heatmap" and "Javanese" in json.dumps(trace["customdata"])
        assert isinstance(trace["z"], list)  # plain lists: W&B's plotly.js cannot read typed arrays
        cells = dict(zip(trace["x"], trace["z"][0]))
        for r in headline[headline["metric"] == "macro_f1"].itertuples():
            assert cells[r.target] == pytest.approx(r.value)
        rules = sorted(set(mine["selection"]) - {"source_dev"})
        expected = {f"{kind}/{metric}" for kind in ("heatmap", "heatmap_png") for metric in ("accuracy", "macro_f1")}
        expected |= {
            f"{kind}/{rule}/{metric}"
            for kind in ("heatmap", "heatmap_png")
            for rule in rules
            for metric in ("accuracy", "macro_f1")
        }
        assert _media_keys(run) == expected | {"matrix/long", "matrix/wide"}
        pngs = [p for p in run.media("images") if p.is_file()]
        assert len(pngs) == 2 * (1 + len(rules))
        assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)


def _warnings(caplog, text: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelname == "WARNING" and text in r.getMessage()]


def test_wandb_failure_never_loses_a_result(dirs, no_key, monkeypatch, caplog):
    import wandb

    calls = {"n": 0}

    def broken_log(self, *args, **kwargs):
        calls["n"] += 1
        raise RuntimeError("W&B exploded")

    monkeypatch.setattr(wandb.Run, "log", broken_log)
    run_experiment(compose_cfg(dirs, *TINY, *TWO_UNITS, "name=broken", "tracker=wandb"))
    assert len(_warnings(caplog, "W&B log failed (RuntimeError: W&B exploded)")) == 1  # one warning, then off
    assert calls["n"] == 1
    test = load_records(dirs["results"]).query("split == 'test'")
    assert set(test["source"]) == {"eng", "ind"} and len(test) == 2 * 1 * 2 * test["selection"].nunique()


class _SilentServer:
    """A local TCP server that accepts connections and never answers (a hung W&B server)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.conns: list[socket.socket] = []
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)

    def close(self) -> None:
        for c in self.conns:
            c.close()
        self.sock.close()


@pytest.mark.parametrize("mode", ["auto", "online"])
def test_hung_wandb_server_costs_seconds(no_key, monkeypatch, capfd, caplog, tmp_path, mode):
    """An API key but a server that never answers: init gives up after tracker.timeout_s. In auto
    mode the run is then kept offline (with the sync line); asked for online, W&B is turned off."""
    server = _SilentServer()
    monkeypatch.setenv("WANDB_BASE_URL", server.url)
    monkeypatch.setenv("WANDB_API_KEY", "k" * 40)
    try:
        tracker = WandbTracker(WandbOptions(mode=mode, dir=str(tmp_path), timeout_s=3))
        started = time.perf_counter()
        tracker.start_unit("hung/eng", {"name": "hung"})
        tracker.log_metrics({"train/loss": 1.0}, 1)
        tracker.finish_unit()
        tracker.start_unit("hung/ind", {"name": "hung"})  # no second wait on the dead server
        tracker.finish_unit()
        elapsed = time.perf_counter() - started
    finally:
        server.close()
    assert elapsed < 3 + 5 + 4  # the init timeout, W&B's own slack, and the offline runs
    err = capfd.readouterr().err
    if mode == "auto":
        assert "W&B offline (W&B server unreachable)" in err and err.count("wandb sync") == 1
        assert len(_offline_runs(tmp_path)) == 2
    else:
        assert len(_warnings(caplog, "W&B init failed")) == 1 and "wandb sync" not in err
        assert not list((tmp_path / "wandb").glob("offline-run-*"))


def test_tracker_call_timeout_turns_wandb_off(monkeypatch, caplog, no_key, tmp_path):
    """A W&B call that hangs (here: finish) is abandoned after timeout_s with one warning."""
    tracker = WandbTracker(WandbOptions(mode="offline", dir=str(tmp_path), timeout_s=1))
    tracker.start_unit("t/eng", {"name": "t", "regime": {"name": "zero_shot"}})
    run = tracker.run
    assert run is not None
    real_finish = run.finish
    monkeypatch.setattr(run, "finish", lambda *a, **k: time.sleep(30))
    started = time.perf_counter()
    tracker.finish_unit()
    assert time.perf_counter() - started < 5
    assert len(_warnings(caplog, "W&B finish failed (TimeoutError")) == 1
    tracker.start_unit("t/ind", {"name": "t"})  # off for the rest of the run
    assert tracker.run is None
    real_finish()


def test_report_wandb_aggregate_run(tmp_path, no_key, capfd):
    results = standard_store(tmp_path / "results")
    where = log_experiment(results, "zs", WandbOptions(mode="auto", dir=str(results)))
    assert "offline-run-" in where
    assert "wandb sync" in capfd.readouterr().err
    (run,) = _offline_runs(results)
    assert run.run.job_type == "report" and run.run.run_group == "zs"
    assert sorted(run.config["runs"]) == [f"zs-{s}-{seed}" for s in ("eng", "ind") for seed in (1, 2, 3)]
    # the full 2 x 3 matrix assembled from six runs, all three selection rules, mean over seeds
    assert run.summary["xfer/eng/jav/accuracy"] == pytest.approx(0.61)
    assert run.summary["xfer/ind/eng/accuracy"] == pytest.approx(0.49)
    assert run.summary["xfer/ind/eng/target_dev/accuracy"] == pytest.approx(0.53)
    assert run.summary["xfer/ind/eng/last/accuracy"] == pytest.approx(0.47)
    gap = _table(run, "selection_gap/table/accuracy")
    assert "target_dev - source_dev" in gap["columns"] and len(gap["data"]) == 6
    col = gap["columns"].index("target_dev - source_dev")
    assert all(row[col] == pytest.approx(0.04) for row in gap["data"])
    metrics = ("accuracy", "macro_f1")
    assert _media_keys(run) == (
        {"matrix/long", "matrix/wide"}
        | {f"{kind}/{m}" for kind in ("heatmap", "heatmap_png") for m in metrics}
        | {
            f"{kind}/{rule}/{m}"
            for kind in ("heatmap", "heatmap_png")
            for rule in ("target_dev", "last")
            for m in metrics
        }
        | {f"selection_gap/table/{m}" for m in metrics}
        | {f"selection_gap/zero_shot/{m}" for m in metrics}
    )
    assert len(_table(run, "matrix/long")["data"]) == 6 * 3 * 3 * 2  # runs x targets x rules x metrics


def test_report_wandb_few_shot_curves(tmp_path, no_key):
    results = standard_store(tmp_path / "results")
    log_experiment(results, "fs", WandbOptions(mode="offline", dir=str(results)))
    (run,) = _offline_runs(results)
    assert {"kcurve/eng.last/accuracy", "kcurve/eng.last/macro_f1", "kcurve/table/accuracy"} <= _media_keys(run)
    fig = json.loads(_media(run, "plotly", "kcurve/eng.last/accuracy").read_text())
    ind = [t for t in fig["data"] if t["name"].startswith("ind")][0]
    assert ind["x"] == ["0", "1", "5", "10"] and len(ind["error_y"]["array"]) == 4
    assert run.summary["xfer/eng/ind/last.k5/accuracy"] == pytest.approx(
        sum(0.5 + 0.05 - 0.02 + 0.03 * 2.584962500721156 + 0.01 * s + 0.005 * sh for s in (1, 2) for sh in (0, 1, 2))
        / 6,
        abs=1e-6,
    )


def test_heatmap_and_png_share_one_target_order(tmp_path, monkeypatch):
    """The plotly heatmap and the PNG of a matrix list the targets in the same (family, script)
    order; the store's order (first seen) differs from it here."""
    from xlexp.tracking import wandb_results

    results = standard_store(tmp_path / "results")
    df = load_records(results)
    df = df[df["experiment"] == "zs"]
    pngs: list[list[str]] = []
    real_png = wandb_results.matrix_png
    monkeypatch.setattr(
        wandb_results,
        "matrix_png",
        lambda m, path, **kw: (pngs.append([str(c) for c in m.mean.columns]), real_png(m, path, **kw)),
    )

    class FakeRun:
        def __init__(self) -> None:
            self.logged: dict = {}
            self.summary: dict = {}

        def log(self, payload: dict) -> None:
            self.logged.update(payload)

    run = FakeRun()
    wandb_results.log_results(run, df)
    figs = [v for k, v in run.logged.items() if k.startswith("heatmap/")]
    assert figs and len(pngs) == len(figs)
    orders = [json.loads(Path(f._path).read_text())["data"][0]["x"] for f in figs]  # the figure file W&B uploads
    assert pngs[0] == ["ind", "jav", "eng"] != list(dict.fromkeys(df["target"]))
    assert all(o == ["ind", "jav", "eng"] for o in orders), orders
    assert all(p == ["ind", "jav", "eng"] for p in pngs)


def test_wandb_workspace_template(tmp_path):
    """``xlexp report --wandb-template DIR``: a W&B custom chart over matrix/long (a Vega 5 spec in
    W&B's preset format) and the workspace layout, checked by their content (offline)."""
    results = standard_store(tmp_path / "results")
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "xlexp.cli.main",
            "report",
            "--wandb-template",
            str(tmp_path / "tpl"),
            "--results-dir",
            str(results),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert "transfer_heatmap.vega.json" in out.stdout and not (results / "report").exists()
    spec = json.loads((tmp_path / "tpl" / "transfer_heatmap.vega.json").read_text())
    assert spec["$schema"].endswith("vega/v5.json") and spec["data"][0] == {"name": "wandb"}
    signals = {s["name"]: s for s in spec["signals"]}
    assert signals["metric"]["bind"]["options"] == ["accuracy", "macro_f1"] and signals["metric"]["value"] == "macro_f1"
    assert signals["rule"]["bind"]["options"] == ["source_dev", "target_dev", "last"]
    assert signals["experiment"]["bind"]["options"][0] == "(all)" and {"zs", "fs"} <= set(
        signals["experiment"]["bind"]["options"]
    )
    cells = next(d for d in spec["data"] if d["name"] == "cells")
    keep = cells["transform"][0]["expr"]
    for field in ("metric", "selection", "split", "experiment", "source", "target"):
        assert f"datum['${{field:{field}}}']" in keep
    agg = cells["transform"][1]
    assert agg["groupby"] == ["${field:source}", "${field:target}"] and agg["ops"] == ["mean", "count"]
    scales = {s["name"]: s for s in spec["scales"]}
    assert scales["x"]["domain"]["field"] == "${field:target}" and scales["y"]["domain"]["field"] == "${field:source}"
    assert scales["color"]["zero"] is False  # fitted to the values, not 0-1
    rect = next(m for m in spec["marks"] if m["type"] == "rect")["encode"]["update"]
    assert rect["stroke"][0] == {"test": "datum.in_language", "value": "black"}  # in-language cells outlined
    summary = next(d for d in spec["data"] if d["name"] == "summary")
    assert summary["transform"][0]["expr"] == "!datum.in_language"  # the mean leaves them out
    ws = json.loads((tmp_path / "tpl" / "workspace.json").read_text())
    assert ws["runset"]["grouping"] == ["group"] and "xfer/mean/macro_f1" in ws["runset"]["columns"]
    (panel,) = ws["sections"][0]["panels"]
    assert panel["type"] == "custom_chart" and panel["query"] == {"summaryTable": {"tableKey": "matrix/long"}}
    assert set(panel["fields"]) == {"source", "target", "metric", "selection", "split", "experiment", "value"}
    # every field the spec uses is mapped by the panel, and every mapped column is one the records have
    used = set(re.findall(r"\$\{field:(\w+)\}", json.dumps(spec)))
    assert used == set(panel["fields"]) and set(panel["fields"].values()) <= set(load_records(results).columns)
    assert "matrix/long" in (tmp_path / "tpl" / "README.md").read_text()
