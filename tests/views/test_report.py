"""``xlexp report``: the HTML page's content, and the page in a real headless Chromium."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np
import pandas as pd
import pytest

from conftest import TINY, compose_cfg, write_nusax_like
from synthetic import make_records, standard_store, write
from xlexp import XlexpError, load_records, run_experiment
from xlexp.experiment.runner import run_experiment
from xlexp.results.frames import kcurve_frame, selection_gap_frame
from xlexp.results.languages import info
from xlexp.results.slices import slice_keys, slice_matrix
from xlexp.results.store import load_records
from xlexp.views.figures import heatmap_figure, ordered
from xlexp.views.html import write_report

# ---- content, without a browser ----------------------------------------------------------------


@pytest.mark.unit
def test_report_sections_for_every_slice(tmp_path):
    results = standard_store(tmp_path / "results")
    r = write_report(results)
    page = r.path.read_text()
    assert r.path == results / "report" / "index.html" and sorted(r.experiments) == ["fs", "zs"]
    # zs: 3 rules x 2 metrics; fs: (no shots + K=1,5,10) x 2 metrics -> 14 heatmaps
    assert page.count('class="fig heatmap"') == 14
    assert page.count('class="fig kcurve"') == 2 and page.count('class="fig gap"') == 2
    for label in (
        "zero_shot · selection target_dev",
        "few_shot · selection last · K=10",
        "Few-shot K-curves",
        "Selection-rule gap",
        "Javanese",
        "Austronesian",
        "Indo-European",
        "Latn",
    ):
        assert label in page, label
    # overview + a cells table per slice (3 + 4) + gap tables (2) + K-curve tables (2) + languages
    assert page.count('<table class="sortable"') == 1 + 7 + 2 + 2 + 1
    assert "<script>" in page and "Plotly.newPlot" in page and 'src="http' not in page  # works offline
    assert len(page) > 3_000_000  # plotly.js inlined


@pytest.mark.unit
def test_report_without_few_shot_or_rules_has_no_such_sections(tmp_path):
    results = tmp_path / "results"
    write(results, make_records("plain", sources=("eng",), targets=("ind", "jav", "sun")), "plain")
    page = write_report(results, tmp_path / "out", plotlyjs="alongside").path.read_text()
    assert "Few-shot K-curves" not in page and "Selection-rule gap" not in page
    assert page.count('class="fig heatmap"') == 2
    assert '<script src="plotly.min.js"></script>' in page and (tmp_path / "out" / "plotly.min.js").stat().st_size > 1e6


@pytest.mark.unit
def test_report_errors(tmp_path):
    with pytest.raises(XlexpError, match="no records under"):
        write_report(tmp_path / "empty")
    write(tmp_path / "r", make_records("one"), "one")
    with pytest.raises(XlexpError, match="no records for experiment 'two'. Known: one"):
        write_report(tmp_path / "r", experiments=["two"])


@pytest.mark.unit
def test_figures_carry_values_names_and_metadata(tmp_path):
    results = standard_store(tmp_path / "results")
    df = load_records(results)
    key = slice_keys(df[df["experiment"] == "zs"])[0]
    m = ordered(slice_matrix(df, key, "accuracy"))
    assert list(m.mean.columns) == ["ind", "jav", "eng"]  # Austronesian before Indo-European
    fig = heatmap_figure(m, "t")
    z = dict(zip(fig.data[0].x, fig.data[0].z[list(fig.data[0].y).index("eng")]))
    assert z == pytest.approx({"ind": 0.56, "jav": 0.61, "eng": 0.51})
    assert "target: jav (Javanese) · Latn · Austronesian" in str(fig.data[0].customdata)
    assert "0.610 ± 0.010 (n=3)" in str(fig.data[0].customdata)
    curves = kcurve_frame(df, "fs", "accuracy")
    assert sorted(curves["k"].unique()) == [0, 1, 5, 10]
    row = curves[(curves["target"] == "ind") & (curves["k"] == 1)].iloc[0]
    assert row["n"] == 6 and row["std"] > 0  # 2 seeds x 3 shot sets
    gap = selection_gap_frame(df, "zs", "accuracy")
    assert gap["target_dev - source_dev"].to_numpy() == pytest.approx([0.04] * 6)
    assert gap["last - source_dev"].to_numpy() == pytest.approx([-0.02] * 6)
    assert (
        info("zho_Hans").script == "Hans"
        and info("pcm").family == "Creole"
        and info("klingon").family == "" == info("klingon").script
    )


# ---- in a browser ------------------------------------------------------------------------------


def _chromium() -> tuple[str, str]:
    browser, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (browser and driver):
        if os.environ.get("CI"):
            pytest.fail(
                "chromium + chromium-driver are missing; .ci/run installs them (apt-get install chromium "
                "chromium-driver)"
            )
        pytest.skip("chromium / chromedriver not installed (apt-get install chromium chromium-driver)")
    return browser, driver


@pytest.fixture
def browser():
    binary, driver_path = _chromium()
    os.environ.setdefault("SE_AVOID_STATS", "true")  # selenium: no usage statistics
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = binary
    profile = tempfile.mkdtemp(prefix="xlexp-chromium-")
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        f"--user-data-dir={profile}",
        "--window-size=1400,1800",
    ):
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(driver_path), options=opts)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def report_store(tmp_path):
    """Synthetic zero-shot (3 seeds, 3 rules) and few-shot experiments, plus a real tiny run."""
    results = standard_store(tmp_path / "results")
    dirs = {"data": write_nusax_like(tmp_path / "data"), "results": results, "cache": tmp_path / "cache"}
    run_experiment(
        compose_cfg(dirs, *TINY, "langpair.sources=[eng,ind]", "langpair.targets=[eng,ind,jav]", "name=real", "seed=3")
    )
    return results


def _wait(driver, script: str, timeout: float = 30.0):
    end = time.time() + timeout
    while time.time() < end:
        value = driver.execute_script(script)
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for: {script}")


def test_report_in_headless_chromium(report_store, browser, tmp_path):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    out_dir = tmp_path / "report"
    env = {**os.environ, "XLEXP_RESULTS_DIR": str(report_store)}
    run = subprocess.run(
        [sys.executable, "-m", "xlexp.cli.main", "report", "--out", str(out_dir)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    n_figures = int(re.search(r"(\d+) figures", run.stdout).group(1))
    heatmaps = (out_dir / "index.html").read_text().count('class="fig heatmap"')
    from xlexp.views.report_experiment import _rule_groups

    real = load_records(report_store).query("experiment == 'real'")
    groups = _rule_groups(real, ["accuracy", "macro_f1"])  # rules that picked the same checkpoints share one figure
    assert heatmaps == 14 + 2 * len(groups) and 1 <= len(groups) <= 3  # synthetic 14 + the real run's rules x 2 metrics

    browser.get((out_dir / "index.html").as_uri())
    # every figure was drawn by plotly, and every heatmap has its plotted cells (an image per trace)
    assert _wait(browser, f"return document.querySelectorAll('.js-plotly-plot').length === {n_figures}")
    assert _wait(
        browser,
        "return Array.from(document.querySelectorAll('.heatmap .js-plotly-plot')).every("
        "g => g.querySelectorAll('.heatmaplayer g.hm image').length === 1)",
    )
    drawn = browser.execute_script("return document.querySelectorAll('.fig.heatmap .heatmaplayer g.hm image').length")
    assert drawn == heatmaps
    assert browser.execute_script("return document.querySelectorAll('#explore .heatmaplayer g.hm image').length") == 1

    # the numbers plotted are the store's: the real run's source_dev accuracy matrix
    recs = load_records(report_store).query(
        "experiment == 'real' and split == 'test' and selection == 'source_dev' and metric == 'accuracy'"
    )
    section = browser.find_element(By.ID, "exp-real")
    first = section.find_elements(By.CSS_SELECTOR, ".heatmap .js-plotly-plot")[0]
    x, y, z = browser.execute_script("var d = arguments[0].data[0]; return [d.x, d.y, d.z];", first)
    for r in recs.itertuples():
        assert z[y.index(r.source)][x.index(r.target)] == pytest.approx(r.value)

    # hovering a cell shows the language names and the value, as a user sees them
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'});", first)
    drag = first.find_element(By.CSS_SELECTOR, ".nsewdrag")
    w, h = drag.size["width"], drag.size["height"]
    col, row = x.index("jav"), y.index("eng")
    ActionChains(browser).move_to_element_with_offset(
        drag, int(-w / 2 + w * (col + 0.5) / len(x)), int(-h / 2 + h * (row + 0.5) / len(y))
    ).perform()
    hover = _wait(
        browser, "var t = document.querySelector('#exp-real .hoverlayer .hovertext'); return t && t.textContent;", 10
    )
    value = recs[(recs["source"] == "eng") & (recs["target"] == "jav")]["value"].item()
    assert "English" in hover and "Javanese" in hover and "Austronesian" in hover and f"{value:.3f}" in hover

    # a sortable table: open it, click the accuracy header, rows come back sorted
    section.find_element(By.CSS_SELECTOR, "details summary").click()
    table = section.find_element(By.CSS_SELECTOR, "details table.sortable")
    headers = [th.text for th in table.find_elements(By.CSS_SELECTOR, "th")]
    acc = headers.index("accuracy")
    table.find_elements(By.CSS_SELECTOR, "th")[acc].click()
    values = [
        float(td.get_attribute("data-v"))
        for td in table.find_elements(By.CSS_SELECTOR, f"tbody tr td:nth-child({acc + 1})")
    ]
    assert len(values) == 6 and values == sorted(values)
    table.find_elements(By.CSS_SELECTOR, "th")[acc].click()
    values = [
        float(td.get_attribute("data-v"))
        for td in table.find_elements(By.CSS_SELECTOR, f"tbody tr td:nth-child({acc + 1})")
    ]
    assert values == sorted(values, reverse=True)

    # K-curves have error bars; the languages table has scripts and families
    assert browser.execute_script("return document.querySelectorAll('.kcurve .errorbar').length") > 0
    languages = browser.find_element(By.ID, "languages").text
    assert "Javanese" in languages and "Austronesian" in languages and "Latn" in languages

    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert not errors, errors
    browser.execute_script("window.scrollTo(0, 0);")
    shot = tmp_path / "report.png"
    assert browser.save_screenshot(str(shot))
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
    print(f"report screenshot: {shot}")


# ---- the cross-experiment explorer, sweep studies, rules that agree ---------------------------------


def _explorer_store(root) -> tuple:
    """Synthetic: zs (2 sources x 3 targets, 3 seeds, 3 rules), zs_plus (the same + 0.1), fs (K-curves),
    an experiment whose rules all pick the same checkpoints, a 3-trial sweep study with dev curves,
    and one source without its own target (its dev records must not count as a target)."""
    from dataclasses import replace

    results = standard_store(root / "results")
    rules = ("source_dev", "target_dev", "last")
    plus = [
        replace(r, experiment="zs_plus", run_id="plus-" + r.run_id, value=round(r.value + 0.1, 6))
        for r in make_records("zs", seeds=(1, 2, 3), selections=rules)
    ]
    write(results, plus, "plus")
    same = make_records("agree", sources=("eng",), targets=("ind", "jav", "sun"))
    write(results, [replace(r, selection=rule) for r in same for rule in rules], "agree")
    for t in range(3):
        recs = [
            replace(r, study="st@abc", trial=t, value=round(r.value + 0.01 * t, 6), log_dir=f"/tmp/logs/st-{t}")
            for r in make_records(f"st-abc-t{t:04d}", sources=("eng",), run_id=f"st-{t}")
        ]
        dev = [
            replace(
                recs[0],
                split="dev",
                target=target,
                metric=metric,
                step=step,
                selection="source_dev",
                value=round(0.3 + 0.1 * (t == 1) + 0.001 * step + 0.01 * i, 6),
            )
            for step in (10, 20, 30)
            for i, target in enumerate(("eng", "ind"))
            for metric in ("accuracy", "macro_f1")
        ]
        write(results, recs + dev, f"st-{t}")
    lone = make_records("lone", sources=("eng",), targets=("ind", "jav"))
    lone_dev = [replace(lone[0], split="dev", target="eng", step=5, value=0.4)]
    write(results, [replace(r, log_dir="/tmp/logs/lone run") for r in lone + lone_dev], "lone")
    return results


def test_report_groups_studies_merges_agreeing_rules_and_counts_targets(tmp_path):
    results = _explorer_store(tmp_path)
    page = write_report(results).path.read_text()
    # a sweep study is one section (its trials in a table, the best trial's matrices), not one per trial
    assert page.count('class="study"') == 1 and 'id="study-st-abc"' in page
    assert 'id="exp-st-abc-t0001"' in page and 'id="exp-st-abc-t0000"' not in page  # t1 has the best dev score
    assert "study st@abc: best of 3 trial(s) (st-abc-t0001)" in page
    assert '<optgroup label="study st@abc">' in page and page.count(">trial ") == 2 * 3  # explorer A and B lists
    # rules that pick the same checkpoints: one heatmap per metric, and the page says they agree
    agree = page[page.index('id="exp-agree"') : page.index("</section>", page.index('id="exp-agree"'))]
    assert "all rules agree (source_dev, target_dev, last)" in agree and agree.count('class="fig heatmap"') == 2
    zs = page[page.index('id="exp-zs"') : page.index("</section>", page.index('id="exp-zs"'))]
    assert zs.count('class="fig heatmap"') == 6 and "all rules agree" not in zs
    # "targets N" counts test targets, not the source's own dev records
    lone = page[page.index('id="exp-lone"') : page.index("</section>", page.index('id="exp-lone"'))]
    assert "· 2 targets ·" in lone
    assert 'href="file:///tmp/logs/lone%20run"' in lone  # a link to the run's log folder
    # plotly.js once, and the page stays a sane size
    assert page.count("Plotly.newPlot") >= 1 and page.count("plotly.js v") <= 2 and len(page) < 6_000_000


@pytest.mark.unit
def test_heatmap_axes_names_in_language_cells_and_mean(tmp_path):
    results = standard_store(tmp_path / "results")
    df = load_records(results)
    key = slice_keys(df[df["experiment"] == "zs"])[0]
    m = ordered(slice_matrix(df, key, "accuracy"))
    fig = heatmap_figure(m, "t")
    assert list(fig.layout.xaxis.ticktext) == ["Indonesian (ind)", "Javanese (jav)", "English (eng)"]
    assert list(fig.data[0].x) == ["ind", "jav", "eng"]  # the trace keeps the codes
    boxes = {(s.x0 + 0.5, s.y0 + 0.5) for s in fig.layout.shapes}
    rows, cols = list(m.mean.index), list(m.mean.columns)
    assert boxes == {(cols.index(c), rows.index(c)) for c in ("eng", "ind")}  # eng -> eng and ind -> ind outlined
    cross = [v for (s, t), v in m.mean.stack().items() if s != t]
    assert f"mean without in-language cells: {np.mean(cross):.3f}" in fig.layout.title.text
    assert fig.layout.width and fig.layout.width < 900  # a 2 x 3 matrix is not stretched across the page
    assert fig.data[0].zmin == pytest.approx(min(m.mean.min())) and fig.data[0].zmax == pytest.approx(max(m.mean.max()))


def test_explorer_in_headless_chromium(tmp_path, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    results = _explorer_store(tmp_path)
    path = write_report(results, tmp_path / "report").path
    browser.get(path.as_uri())
    _wait(
        browser,
        "return window.xlexpExplorer && window.xlexpExplorer.z && "
        "document.getElementById('explore-heatmap').data !== undefined",
    )
    df = load_records(results)

    def pick(ident: str, value: str) -> None:
        Select(browser.find_element(By.ID, ident)).select_by_value(value)

    def drawn() -> dict:
        return browser.execute_script(
            "var g = document.getElementById('explore-heatmap'), d = g.data[0];"
            "return {x: d.x, y: d.y, z: d.z, text: d.text, ticks: g.layout.xaxis.ticktext, title: g.layout.title.text,"
            " shapes: (g.layout.shapes || []).filter(function (s) { return s.type === 'rect'; }).map("
            "  function (s) { return [s.x0 + 0.5, s.y0 + 0.5]; }), state: window.xlexpExplorer,"
            " width: g.querySelector('.main-svg').getBoundingClientRect().width, info: document.getElementById('ex-info').textContent,"
            " curves: document.getElementById('explore-curves').data.length,"
            " logs: Array.from(document.querySelectorAll('#ex-logs a.logdir')).map(function (a) { return a.href; })};"
        )

    # A = zs, accuracy, source_dev: the drawn cells are the store's means over seeds
    pick("ex-a", "zs")
    pick("ex-metric", "accuracy")
    pick("ex-rule", "source_dev")
    d = drawn()
    test = df.query("experiment == 'zs' and split == 'test' and metric == 'accuracy' and selection == 'source_dev'")
    means = test.groupby(["source", "target"])["value"].mean()
    for (s, t), v in means.items():
        assert d["z"][d["y"].index(s)][d["x"].index(t)] == pytest.approx(v)
    assert d["x"] == ["ind", "jav", "eng"] and "Javanese (jav)" in d["ticks"]  # grouped by family, named
    assert sorted(d["shapes"]) == sorted(
        [[d["x"].index("eng"), d["y"].index("eng")], [d["x"].index("ind"), d["y"].index("ind")]]
    )  # in-language outlined
    cross = means[[s != t for s, t in means.index]].mean()
    assert d["state"]["mean"] == pytest.approx(cross)
    assert float(re.search(r"mean without in-language cells ([0-9.]+)", d["title"]).group(1)) == pytest.approx(
        cross, abs=6e-4
    )
    # grouping by script instead: all Latin script, so by code
    pick("ex-group", "script")
    assert drawn()["x"] == ["eng", "ind", "jav"]
    pick("ex-group", "family")

    # another rule redraws with its own numbers (target_dev is +0.04 everywhere)
    pick("ex-rule", "target_dev")
    d2 = drawn()
    assert d2["z"][d2["y"].index("eng")][d2["x"].index("jav")] == pytest.approx(means[("eng", "jav")] + 0.04)
    pick("ex-rule", "source_dev")

    # B = zs_plus: the difference, +0.1 everywhere, significant over 3 + 3 seeds
    pick("ex-b", "zs_plus")
    d = drawn()
    assert all(v == pytest.approx(0.1) for row in d["z"] for v in row)
    assert all(t.startswith("+0.100") and t.endswith("*") for row in d["text"] for t in row)
    assert d["state"]["significant"] == 6 and "6 of 6 cell(s) significant" in d["info"]
    assert d["title"].startswith("zs_plus − zs")
    # one seed per side: the difference is drawn, untested, and the page says so
    pick("ex-a", "agree")
    pick("ex-b", "lone")
    d = drawn()
    assert d["state"]["untested"] == 2 and "2 cell(s) not tested (one seed per side)" in d["info"]
    assert not any(t.endswith("*") for row in d["text"] for t in row if t)
    pick("ex-b", "")

    # K: the few-shot experiment's K=5 cells
    pick("ex-a", "fs")
    pick("ex-rule", "last")
    pick("ex-k", "5")
    d = drawn()
    assert "K=5" in d["title"] and d["state"]["k"] == 5

    # a sweep trial: dev curves and its log folder link; a small matrix keeps its own width
    pick("ex-a", "st-abc-t0002")
    pick("ex-metric", "macro_f1")
    d = drawn()
    assert d["curves"] == 2 and d["logs"] == ["file:///tmp/logs/st-2"]
    assert d["width"] < 900
    curves = browser.execute_script(
        "return document.getElementById('explore-curves').data.map(function (t) { return [t.name, t.x, t.y]; });"
    )
    curves = {name: (x, y) for name, x, y in curves}
    assert curves["eng → English (eng) (in-language)"] == ([10, 20, 30], pytest.approx([0.31, 0.32, 0.33]))
    assert curves["eng → Indonesian (ind)"] == ([10, 20, 30], pytest.approx([0.32, 0.33, 0.34]))
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert not errors, errors


@pytest.mark.unit
def test_matrix_png_names_rule_mean_column_and_fitted_scale(tmp_path, monkeypatch):
    """The PNG heatmap: "Name (code)" labels (short codes upright), the selection rule and the mean
    without in-language cells in the title, a mean column, in-language cells outlined, and the colour
    scale fitted to the values (not 0-1), shown on the colour bar."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    from xlexp.results.query import Matrix
    from xlexp.views.png import matrix_png

    figures = []
    monkeypatch.setattr(plt, "close", lambda fig=None: figures.append(fig))  # keep the drawn figure to inspect it
    results = standard_store(tmp_path / "results")
    df = load_records(results)
    m = ordered(slice_matrix(df, slice_keys(df[df["experiment"] == "zs"])[0], "accuracy"))
    matrix_png(m, tmp_path / "m.png", selection="source_dev")
    ax = figures[-1].axes[0]
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert labels == ["Indonesian (ind)", "Javanese (jav)", "English (eng)", "mean without\nin-language cells"]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["Indonesian (ind)", "English (eng)"]
    cross = m.mean.where(~m.in_language_mask())
    assert "selection source_dev" in ax.get_title() and f"{m.transfer_mean():.3f}" in ax.get_title()
    image = ax.get_images()[0]
    values = np.ma.filled(image.get_array().astype(float), np.nan)
    assert list(values[:, -1]) == pytest.approx(list(cross.mean(axis=1)))  # the mean column leaves eng->eng out
    lo, hi = image.get_clim()
    assert (lo, hi) == pytest.approx((np.nanmin(values), np.nanmax(values))) and hi - lo < 0.2  # fitted, not 0-1
    assert len(figures[-1].axes) == 2  # the colour bar shows the scale
    boxes = [(p.get_x() + 0.5, p.get_y() + 0.5) for p in ax.patches if isinstance(p, Rectangle)]
    rows, cols = list(m.mean.index), list(m.mean.columns)
    assert sorted(boxes) == sorted((cols.index(c), rows.index(c)) for c in ("eng", "ind"))
    # codes without names (and dense axes) stand upright, not slanted
    codes = pd.DataFrame([[0.3, 0.5, 0.7]], index=["qaa"], columns=["qab", "qac", "qad"])
    matrix_png(Matrix("x", "accuracy", codes, codes * 0, codes * 0 + 1), tmp_path / "c.png")
    ticks = figures[-1].axes[0].get_xticklabels()
    assert [t.get_text() for t in ticks][:3] == ["qab", "qac", "qad"] and all(t.get_rotation() == 0 for t in ticks[:3])
