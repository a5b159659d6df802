"""The report's cross-experiment explorer: one matrix view driven by selectors, offline, in the page.

Pick experiment A (sweep trials listed under their study), optionally B, a metric, a selection
rule and K, and how to group the languages (family, script, or by code): the page draws A's
source x target matrix (or the difference B − A with significance marks), axes labelled
"Name (code)", in-language cells outlined and left out of the mean, and A's dev curves (the dev
records of training: score per evaluation step, per source -> target, mean over seeds), with
links to the runs' log folders (the records' ``log_dir``).

Everything the selectors can show is embedded once as JSON (test cells with mean/std/n, dev
curves, language metadata, and the significance of every B − A cell), and drawn by a small
script (``xlexp.views.explorer_js``) with the plotly.js the page already carries, so the file stays
one file and no server is needed. Significance: per cell, ``xlexp.results.significance.seed_bootstrap`` over the two sides'
per-seed scores (unpaired; cells with one seed per side get no test, and the page says so);
``xlexp compare A B`` has the paired and hierarchical tests over per-example predictions.
"""

from __future__ import annotations

import html
import json
from itertools import combinations

import numpy as np
import pandas as pd

from xlexp.results.languages import info
from xlexp.results.query import SELECTION_ORDER, default_metric, k_value, latest, recorded_primary
from xlexp.results.significance import seed_bootstrap

MAX_TESTS = 20000  # seed bootstraps embedded at most (pairs x metrics x rules x K x cells)
N_BOOT = 1000
ALPHA = 0.05
NONE_K = -1  # the cells without shots


def _num(v) -> float | None:
    return None if v is None or pd.isna(v) else round(float(v), 6)


def _test_cells(df: pd.DataFrame) -> pd.DataFrame:
    test = latest(df[df["split"] == "test"])
    return test.assign(k=test["k"].map(k_value).fillna(NONE_K).astype(int), seed=test["seed"].astype(int))


def _seed_scores(test: pd.DataFrame) -> pd.DataFrame:
    """One score per (experiment, metric, rule, K, source, target, seed): shot sets averaged."""
    by = ["experiment", "metric", "selection", "k", "source", "target", "seed"]
    return test.groupby(by, as_index=False)["value"].mean()


def _significance(scores: pd.DataFrame, experiments: list[str], tasks: dict[str, set]) -> dict[str, dict]:
    """``"A\\tB\\tmetric\\trule\\tK" -> {"source\\ttarget": [p or None, method]}`` for every pair of
    experiments of one task (A < B by name; B − A and A − B share a p-value)."""
    out: dict[str, dict] = {}
    rng = np.random.default_rng(0)
    budget = MAX_TESTS
    groups = {key: frame for key, frame in scores.groupby(["experiment", "metric", "selection", "k"])}
    for a, b in combinations(sorted(experiments), 2):
        if not tasks.get(a, set()) & tasks.get(b, set()):
            continue
        for (exp, metric, rule, k), fa in groups.items():
            if exp != a or (b, metric, rule, k) not in groups or budget <= 0:
                continue
            fb = groups[(b, metric, rule, k)]
            va = {key: g["value"].to_numpy(dtype=float) for key, g in fa.groupby(["source", "target"])}
            vb = {key: g["value"].to_numpy(dtype=float) for key, g in fb.groupby(["source", "target"])}
            tests = {}
            for cell in sorted(set(va) & set(vb)):
                t = seed_bootstrap(va[cell], vb[cell], N_BOOT, rng)
                tests["\t".join(map(str, cell))] = [_num(t.p), t.method, len(va[cell]), len(vb[cell])]
                budget -= 1
            if tests:
                out["\t".join([a, b, metric, rule, str(k)])] = tests
    return out


def explorer_data(df: pd.DataFrame, experiments: list[str]) -> dict:
    """The JSON the explorer draws from (see the module docstring)."""
    sub = df[df["experiment"].isin(experiments)]
    test = _test_cells(sub)
    stats = test.groupby(["experiment", "metric", "selection", "k", "source", "target"], as_index=False)["value"].agg(
        mean="mean", std="std", n="count"
    )
    cells = [
        [
            r.experiment,
            r.metric,
            r.selection,
            int(r.k),
            str(r.source),
            str(r.target),
            _num(r.mean),
            _num(r.std),
            int(r.n),
        ]
        for r in stats.itertuples()
    ]
    dev = sub[(sub["split"] == "dev") & sub["step"].notna()]
    curves = []
    if not dev.empty:
        dev = latest(dev)
        per_step = dev.groupby(["experiment", "metric", "source", "target", "step"], as_index=False)["value"].agg(
            mean="mean", n="count"
        )
        curves = [
            [r.experiment, r.metric, str(r.source), str(r.target), int(r.step), _num(r.mean), int(r.n)]
            for r in per_step.itertuples()
        ]
    meta = {}
    tasks: dict[str, set] = {}
    for exp, g in sub.groupby("experiment"):
        study = g["study"].dropna().astype(str) if "study" in g else pd.Series(dtype=str)
        trial = g["trial"].dropna() if "trial" in g else pd.Series(dtype=float)
        logs = sorted(str(d) for d in g["log_dir"].dropna().unique()) if "log_dir" in g else []
        tasks[exp] = set(g["task"].astype(str))
        meta[exp] = {
            "study": study.iloc[0] if len(study) else None,
            "trial": int(trial.iloc[0]) if len(trial) else None,
            "models": sorted(set(g["model"].astype(str))),
            "tasks": sorted(tasks[exp]),
            "regimes": sorted(set(g["regime"].astype(str))),
            "seeds": sorted(int(s) for s in g["seed"].dropna().unique()),
            "log_dirs": logs[:20],
        }
    codes = set(test["target"].astype(str)) | {c for s in test["source"].astype(str) for c in s.split("+")}
    codes |= set(sub[sub["split"] == "dev"]["target"].astype(str))
    languages = {c: {"name": info(c).name, "family": info(c).family, "script": info(c).script} for c in sorted(codes)}
    metrics = sorted(test["metric"].unique())
    return {
        "cells": cells,
        "curves": curves,
        "experiments": meta,
        "languages": languages,
        "order": experiments,
        "defaultMetric": default_metric(metrics, recorded_primary(test)) if metrics else None,
        "ruleOrder": list(SELECTION_ORDER),
        "alpha": ALPHA,
        "nBoot": N_BOOT,
        "significance": _significance(_seed_scores(test), experiments, tasks),
    }


def _experiment_options(experiments: list[str], meta: dict) -> str:
    """``<option>``s: experiments of no study first, then one ``<optgroup>`` per sweep study."""
    plain = [e for e in experiments if not meta.get(e, {}).get("study")]
    studies: dict[str, list[str]] = {}
    for e in experiments:
        study = meta.get(e, {}).get("study")
        if study:
            studies.setdefault(study, []).append(e)
    out = [f'<option value="{html.escape(e)}">{html.escape(e)}</option>' for e in plain]
    for study, trials in sorted(studies.items()):
        trials = sorted(trials, key=lambda e: meta[e].get("trial") or 0)
        opts = "".join(
            f'<option value="{html.escape(e)}">trial {meta[e].get("trial")} ({html.escape(e)})</option>' for e in trials
        )
        out.append(f'<optgroup label="study {html.escape(study)}">{opts}</optgroup>')
    return "".join(out)


def explorer_section(df: pd.DataFrame, experiments: list[str]) -> str:
    """The section's HTML: the selectors, two figure slots and the embedded data (the script is
    ``xlexp.views.explorer_js.EXPLORER_JS``)."""
    data = explorer_data(df, experiments)
    options = _experiment_options(experiments, data["experiments"])
    payload = json.dumps(data, separators=(",", ":"), allow_nan=False).replace("</", "<\\/")
    return f"""<section id="explore"><h2>Explore</h2>
<p class="note">One matrix at a time: pick experiment A (sweep trials are listed under their study), a metric,
a selection rule and K; pick B to see B − A with significance marks (* p &lt; {ALPHA:g}, ** p &lt; {ALPHA / 5:g}:
bootstrap over the per-seed scores of each side, {N_BOOT} resamples; cells with one seed per side are not tested;
<code>xlexp compare A B</code> tests over per-example predictions). Axes: language name (code), grouped by family
or script; outlined cells are in-language (target = source) and are left out of the mean.</p>
<div class="controls">
<label>experiment A <select id="ex-a">{options}</select></label>
<label>minus/compare with B <select id="ex-b"><option value="">(none)</option>{options}</select></label>
<label>metric <select id="ex-metric"></select></label>
<label>selection rule <select id="ex-rule"></select></label>
<label>K <select id="ex-k"></select></label>
<label>group languages by <select id="ex-group"><option value="family">family</option>
<option value="script">script</option><option value="none">none (by code)</option></select></label>
<label>colour scale <select id="ex-scale"><option value="metric">one per metric (all heatmaps)</option>
<option value="heatmap">fitted to this heatmap</option></select></label>
</div>
<p id="ex-info" class="meta"></p>
<div class="fig explore"><div id="explore-heatmap"></div></div>
<p id="ex-groups" class="note"></p>
<div class="fig explore"><div id="explore-curves"></div></div>
<p id="ex-logs" class="note"></p>
<script type="application/json" id="xlexp-data">{payload}</script>
</section>"""
