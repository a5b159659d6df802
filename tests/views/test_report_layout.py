"""The HTML report fits windows 1280 and 1920 px wide (issue #33: at 1400 px the explorer's 1 x 12
heatmap overflowed and its colour bar was cut), checked in headless Chromium by element geometry; one
colour scale per metric across heatmaps; titled axes; n per cell on hover; distinct colours for 16
dev curves; per-target per-class F1 and label sets from the stored predictions."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest

from synthetic import make_records, write
from tests.views.test_report import browser  # noqa: F401  (the headless Chromium fixture)
from xlexp.results.languages import normalize_tag
from xlexp.results.store import Record, load_records, write_predictions
from xlexp.views.html import metric_ranges, write_report

pytestmark = pytest.mark.integration

NUSAX = ("ace", "ban", "bbc", "bjn", "bug", "eng", "ind", "jav", "mad", "min", "nij", "sun")
SIB16 = (
    "eng_Latn",
    "fra_Latn",
    "deu_Latn",
    "spa_Latn",
    "ita_Latn",
    "por_Latn",
    "nld_Latn",
    "swe_Latn",
    "pol_Latn",
    "ces_Latn",
    "tur_Latn",
    "ind_Latn",
    "vie_Latn",
    "swh_Latn",
    "yor_Latn",
    "hau_Latn",
)


def _dev(experiment: str, source: str, targets, run_id: str, offset: float) -> list[Record]:
    return [
        Record(
            experiment=experiment,
            run_id=run_id,
            model="tiny_random",
            task="sib200",
            regime="zero_shot",
            source=source,
            target=t,
            target_tag=normalize_tag(t),
            split="dev",
            metric=m,
            value=round(0.3 + offset + 0.02 * i + 0.05 * step / 32, 6),
            n_examples=20,
            seed=1,
            selection="eval",
            config_hash="0" * 12,
            git_commit="test",
            timestamp="2026-01-02T00:00:00+00:00",
            step=step,
        )
        for i, t in enumerate(targets)
        for step in (16, 32, 48)
        for m in ("accuracy", "macro_f1")
    ]


def layout_store(root):
    results = root / "results"
    write(
        results,
        make_records(
            "nusax12",
            sources=("eng",),
            targets=NUSAX,
            seeds=(1, 2),
            selections=("source_dev", "target_dev", "last"),
            run_id="n12",
        ),
        "n12",
    )
    sib = make_records(
        "sib16",
        sources=("eng_Latn",),
        targets=SIB16,
        seeds=(1,),
        task="sib200",
        run_id="s16",
        timestamp="2026-01-02T00:00:00+00:00",
    )
    # a different spread: heatmaps fitted one by one would colour the same value differently
    sib = [Record(**{**r.__dict__, "value": round(0.2 + 0.6 * (i % 7) / 6, 6)}) for i, r in enumerate(sib)]
    write(results, sib + _dev("sib16", "eng_Latn", SIB16, "s16", 0.0), "s16")
    rng = np.random.default_rng(0)
    rows = []
    for t in NUSAX:
        for seed in (1, 2):
            gold = np.tile([0, 1, 2], 10) if t != "bug" else np.tile([0, 2], 15)  # bug: no 'neutral' in its test set
            pred = np.where(rng.random(gold.size) < 0.7, gold, rng.integers(0, 3, gold.size))
            rows.append(
                pd.DataFrame(
                    {
                        "experiment": "nusax12",
                        "run_id": "n12",
                        "source": "eng",
                        "target": t,
                        "split": "test",
                        "selection": "source_dev",
                        "seed": seed,
                        "k": None,
                        "shot_set": None,
                        "example": np.arange(gold.size),
                        "label": gold,
                        "pred": pred,
                    }
                )
            )
    write_predictions(pd.concat(rows, ignore_index=True), results, "n12")
    return results


GEOMETRY = """
var w = window.innerWidth, bad = [];
document.querySelectorAll('section, header, .fig, .js-plotly-plot, .main-svg, .colorbar, .controls, table, h2, p')
  .forEach(function (e) {
    if (e.closest('details')) return;   // tables inside <details> scroll in their own box
    var r = e.getBoundingClientRect();
    if (r.width && r.right > w + 1) bad.push((e.id || e.className.baseVal || e.className || e.tagName) + ' right=' +
      Math.round(r.right));
  });
return {width: w, scroll: document.documentElement.scrollWidth, bad: bad.slice(0, 10)};
"""


def _wait(driver, script: str, timeout: float = 60.0):
    end = time.time() + timeout
    while time.time() < end:
        value = driver.execute_script(script)
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for: {script}")


@pytest.mark.parametrize("width", [1280, 1920])
def test_the_report_fits_the_window_without_horizontal_overflow(tmp_path, browser, width):  # noqa: F811
    results = layout_store(tmp_path)
    path = write_report(results, tmp_path / "report").path
    browser.set_window_size(width, 1200)
    browser.get(path.as_uri())
    n = _wait(
        browser,
        "var p = document.querySelectorAll('.js-plotly-plot'); return p.length > 4 && "
        "window.xlexpExplorer && window.xlexpExplorer.z && p.length",
    )
    inner = browser.execute_script("return window.innerWidth")
    assert abs(inner - width) <= 20, inner
    time.sleep(0.5)  # responsive figures settle after the first draw
    for experiment in ("nusax12", "sib16"):  # the explorer on 12 targets (the case that overflowed), then 16
        browser.execute_script(
            f"var s = document.getElementById('ex-a'); s.value = '{experiment}';s.dispatchEvent(new Event('change'));"
        )
        _wait(browser, f"return window.xlexpExplorer.a === '{experiment}'")
        geometry = browser.execute_script(GEOMETRY)
        assert geometry["scroll"] <= geometry["width"] and not geometry["bad"], (width, experiment, geometry)
        browser.save_screenshot(str(tmp_path / f"report-{width}-{experiment}.png"))
    assert n >= 4


def test_one_colour_scale_per_metric_titles_hover_curves_and_per_class_f1(tmp_path, browser):  # noqa: F811
    results = layout_store(tmp_path)
    path = write_report(results, tmp_path / "report").path
    ranges = metric_ranges(load_records(results))
    browser.get(path.as_uri())
    _wait(browser, "return window.xlexpExplorer && window.xlexpExplorer.z")
    scales = browser.execute_script(
        "return Array.prototype.map.call(document.querySelectorAll('.fig.heatmap .js-plotly-plot'), function (g) {"
        " var d = g.data[0]; return [d.colorbar.title.text, d.zmin, d.zmax, g.layout.xaxis.title.text,"
        " g.layout.yaxis.title.text, String(d.customdata[0][0])]; });"
    )
    assert len(scales) >= 4
    for metric, lo, hi, xtitle, ytitle, hover in scales:
        assert (lo, hi) == pytest.approx(ranges[metric]), metric  # the same range in every heatmap
        assert xtitle and ytitle and "(n=" in hover
    assert len({(m, lo, hi) for m, lo, hi, *_ in scales}) == len(ranges)
    # the explorer: the shared range by default, its own on request (nusax12 spans less than sib16)
    browser.execute_script(
        "var s = document.getElementById('ex-a'); s.value = 'nusax12'; s.dispatchEvent(new Event('change'));"
    )
    _wait(browser, "return window.xlexpExplorer.a === 'nusax12'")
    state = browser.execute_script(
        "return [window.xlexpExplorer.metric, window.xlexpExplorer.zmin, window.xlexpExplorer.zmax]"
    )
    assert state[1:] == pytest.approx(list(ranges[state[0]]))
    browser.execute_script(
        "var s = document.getElementById('ex-scale'); s.value = 'heatmap'; s.dispatchEvent(new Event('change'));"
    )
    own = browser.execute_script("return [window.xlexpExplorer.zmin, window.xlexpExplorer.zmax]")
    assert own != pytest.approx(list(ranges[state[0]]))
    # 16 dev curves with 16 colours and titled axes
    browser.execute_script(
        "var s = document.getElementById('ex-scale'); s.value = 'metric'; s.dispatchEvent(new Event('change'));"
    )
    browser.execute_script(
        "var s = document.getElementById('ex-a'); s.value = 'sib16'; s.dispatchEvent(new Event('change'));"
    )
    _wait(browser, "return window.xlexpExplorer.a === 'sib16'")
    curves = browser.execute_script(
        "var g = document.getElementById('explore-curves'); return [g.data.map(function (d) { return d.line.color; }),"
        " g.layout.xaxis.title.text, g.layout.yaxis.title.text];"
    )
    assert (
        len(curves[0]) == 16
        and len(set(curves[0])) == 16
        and curves[1] == "training step"
        and curves[2].startswith("dev ")
    )
    # per-class F1 and the label set per target, from the stored predictions
    html = path.read_text(encoding="utf-8")
    assert "Per-class F1 and label set per target" in html and "F1 negative" in html and "F1 neutral" in html
    assert "negative, positive</td>" in html and "negative, neutral, positive</td>" in html  # bug lacks 'neutral'
