"""``xlexp report``: the HTML page's content, and the page in a real headless Chromium."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

import pytest

from conftest import TINY, compose_cfg, write_nusax_like
from synthetic import make_records, standard_store, write
from xlexp.errors import XlexpError
from xlexp.views.figures import heatmap_figure, ordered
from xlexp.results.languages import info
from xlexp.experiment.runner import run_experiment
from xlexp.results.store import load_records
from xlexp.views.html import write_report
from xlexp.results.query import kcurve_frame, selection_gap_frame, slice_keys, slice_matrix


# ---- content, without a browser ----------------------------------------------------------------

def test_report_sections_for_every_slice(tmp_path):
    results = standard_store(tmp_path / "results")
    r = write_report(results)
    page = r.path.read_text()
    assert r.path == results / "report" / "index.html" and sorted(r.experiments) == ["fs", "zs"]
    # zs: 3 rules x 2 metrics; fs: (no shots + K=1,5,10) x 2 metrics -> 14 heatmaps
    assert page.count('class="fig heatmap"') == 14
    assert page.count('class="fig kcurve"') == 2 and page.count('class="fig gap"') == 2
    for label in ("zero_shot · selection target_dev", "few_shot · selection last · K=10", "Few-shot K-curves",
                  "Selection-rule gap", "Javanese", "Austronesian", "Indo-European", "Latn"):
        assert label in page, label
    # overview + a cells table per slice (3 + 4) + gap tables (2) + K-curve tables (2) + languages
    assert page.count("<table class=\"sortable\"") == 1 + 7 + 2 + 2 + 1
    assert "<script>" in page and "Plotly.newPlot" in page and 'src="http' not in page  # works offline
    assert len(page) > 3_000_000  # plotly.js inlined


def test_report_without_few_shot_or_rules_has_no_such_sections(tmp_path):
    results = tmp_path / "results"
    write(results, make_records("plain", sources=("eng",), targets=("ind", "jav", "sun")), "plain")
    page = write_report(results, tmp_path / "out", plotlyjs="alongside").path.read_text()
    assert "Few-shot K-curves" not in page and "Selection-rule gap" not in page
    assert page.count('class="fig heatmap"') == 2
    assert '<script src="plotly.min.js"></script>' in page and (tmp_path / "out" / "plotly.min.js").stat().st_size > 1e6


def test_report_errors(tmp_path):
    with pytest.raises(XlexpError, match="no records under"):
        write_report(tmp_path / "empty")
    write(tmp_path / "r", make_records("one"), "one")
    with pytest.raises(XlexpError, match="no records for experiment 'two'. Known: one"):
        write_report(tmp_path / "r", experiments=["two"])


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
    assert info("zho_Hans").script == "Hans" and info("pcm").family == "Creole" and info("klingon").family == "" == info("klingon").script


# ---- in a browser ------------------------------------------------------------------------------

def _chromium() -> tuple[str, str]:
    browser, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (browser and driver):
        if os.environ.get("CI"):
            pytest.fail("chromium + chromium-driver are missing; .ci/run installs them (apt-get install chromium "
                        "chromium-driver)")
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
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", f"--user-data-dir={profile}", "--window-size=1400,1800"):
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
    run_experiment(compose_cfg(dirs, *TINY, "langpair.sources=[eng,ind]", "langpair.targets=[eng,ind,jav]",
                               "name=real", "seed=3"))
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
    run = subprocess.run([sys.executable, "-m", "xlexp.cli.main", "report", "--out", str(out_dir)], capture_output=True,
                         text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stderr
    n_figures = int(re.search(r"(\d+) figures", run.stdout).group(1))
    heatmaps = (out_dir / "index.html").read_text().count('class="fig heatmap"')
    assert heatmaps == 14 + 3 * 2  # synthetic 14 + the real run: 3 rules x 2 metrics

    browser.get((out_dir / "index.html").as_uri())
    # every figure was drawn by plotly, and every heatmap has its plotted cells (an image per trace)
    assert _wait(browser, f"return document.querySelectorAll('.js-plotly-plot').length === {n_figures}")
    assert _wait(browser, "return Array.from(document.querySelectorAll('.heatmap .js-plotly-plot')).every("
                          "g => g.querySelectorAll('.heatmaplayer g.hm image').length === 1)")
    drawn = browser.execute_script("return document.querySelectorAll('.heatmaplayer g.hm image').length")
    assert drawn == heatmaps

    # the numbers plotted are the store's: the real run's source_dev accuracy matrix
    recs = load_records(report_store).query("experiment == 'real' and split == 'test' and selection == 'source_dev' "
                                            "and metric == 'accuracy'")
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
        drag, int(-w / 2 + w * (col + 0.5) / len(x)), int(-h / 2 + h * (row + 0.5) / len(y))).perform()
    hover = _wait(browser, "var t = document.querySelector('#exp-real .hoverlayer .hovertext'); "
                           "return t && t.textContent;", 10)
    value = recs[(recs["source"] == "eng") & (recs["target"] == "jav")]["value"].item()
    assert "English" in hover and "Javanese" in hover and "Austronesian" in hover and f"{value:.3f}" in hover

    # a sortable table: open it, click the accuracy header, rows come back sorted
    section.find_element(By.CSS_SELECTOR, "details summary").click()
    table = section.find_element(By.CSS_SELECTOR, "details table.sortable")
    headers = [th.text for th in table.find_elements(By.CSS_SELECTOR, "th")]
    acc = headers.index("accuracy")
    table.find_elements(By.CSS_SELECTOR, "th")[acc].click()
    values = [float(td.get_attribute("data-v")) for td in
              table.find_elements(By.CSS_SELECTOR, f"tbody tr td:nth-child({acc + 1})")]
    assert len(values) == 6 and values == sorted(values)
    table.find_elements(By.CSS_SELECTOR, "th")[acc].click()
    values = [float(td.get_attribute("data-v")) for td in
              table.find_elements(By.CSS_SELECTOR, f"tbody tr td:nth-child({acc + 1})")]
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
