"""The report page's building blocks: its stylesheet and table-sorting script, sortable tables, and
:class:`Page`, which collects sections and figures (``xlexp.views.html`` puts the report together).

Why a module of its own: every section of the report (``html``, ``report_sections``) draws its tables
and figures with these, and the look of the page (fits windows 1280-1920 px wide) is decided here once.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass

import numpy as np
import pandas as pd
import plotly.graph_objects as go

PLOTLY_CONFIG = {"displaylogo": False, "responsive": True}

CSS = """
body { font-family: system-ui, -apple-system, 'Segoe UI', sans-serif; margin: 0 2rem 3rem; color: #222; }
header { border-bottom: 1px solid #ddd; margin-bottom: 1rem; }
h2 { margin-top: 2.5rem; border-bottom: 2px solid #446; padding-bottom: .2rem; }
h3 { margin-top: 1.8rem; color: #334; } h4 { margin: 1.2rem 0 .3rem; color: #445; }
.meta { color: #555; font-size: .9rem; } .note { color: #666; font-size: .85rem; }
nav a { margin-right: 1rem; }
table.sortable { border-collapse: collapse; font-size: .85rem; margin: .4rem 0 1rem; }
table.sortable th, table.sortable td { border: 1px solid #ddd; padding: 2px 8px; text-align: left; }
table.sortable td.num { text-align: right; font-variant-numeric: tabular-nums; }
table.sortable th { background: #f2f2f6; cursor: pointer; user-select: none; white-space: nowrap; }
table.sortable th[aria-sort=ascending]::after { content: " ▲"; }
table.sortable th[aria-sort=descending]::after { content: " ▼"; }
details { margin: .3rem 0 1rem; } summary { cursor: pointer; color: #336; }
.fig { max-width: min(1400px, 100%); }
.meta, .note, nav, h2, h3, h4 { overflow-wrap: anywhere; }
details { max-width: 100%; overflow-x: auto; }
.controls { display: flex; flex-wrap: wrap; gap: .4rem 1.2rem; margin: .6rem 0; font-size: .9rem; }
.controls select { margin-left: .3rem; max-width: min(28rem, 80vw); }
"""

# Click a header to sort by it (numbers numerically, via data-v); click again to reverse.
SORT_JS = """
document.querySelectorAll('table.sortable').forEach(function (table) {
  table.querySelectorAll('th').forEach(function (th, col) {
    th.addEventListener('click', function () {
      var asc = th.getAttribute('aria-sort') !== 'ascending';
      table.querySelectorAll('th').forEach(function (h) { h.removeAttribute('aria-sort'); });
      th.setAttribute('aria-sort', asc ? 'ascending' : 'descending');
      var body = table.tBodies[0], rows = Array.prototype.slice.call(body.rows);
      function key(row) {
        var cell = row.cells[col], v = cell.getAttribute('data-v');
        return v !== null ? parseFloat(v) : cell.textContent.trim().toLowerCase();
      }
      rows.sort(function (a, b) {
        var x = key(a), y = key(b);
        if (typeof x === 'number' && isNaN(x)) return 1;
        if (typeof y === 'number' && isNaN(y)) return -1;
        return (x < y ? -1 : x > y ? 1 : 0) * (asc ? 1 : -1);
      });
      rows.forEach(function (r) { body.appendChild(r); });
    });
  });
});
"""


@dataclass
class Column:
    title: str
    numeric: bool = False


def esc(value) -> str:
    return html.escape(str(value))


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "-", text).strip("-") or "x"


def sortable_table(columns: list[Column], rows: list[list], css_id: str = "") -> str:
    """An HTML table whose columns sort on click; numeric cells are (value, shown text) pairs."""
    head = "".join(f"<th>{esc(c.title)}</th>" for c in columns)
    body = []
    for row in rows:
        cells = []
        for col, cell in zip(columns, row):
            if col.numeric:
                value, shown = (
                    cell if isinstance(cell, tuple) else (cell, "" if cell is None or pd.isna(cell) else f"{cell:.3f}")
                )
                v = "NaN" if value is None or pd.isna(value) else repr(float(value))
                cells.append(f'<td class="num" data-v="{v}">{esc(shown)}</td>')
            else:
                cells.append(f"<td>{esc(cell)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    ident = f' id="{esc(css_id)}"' if css_id else ""
    return f'<table class="sortable"{ident}><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


def mean_std(mean: float, std: float, n: float) -> tuple[float, str]:
    if pd.isna(mean):
        return (np.nan, "")
    return (mean, f"{mean:.3f} ± {std:.3f}" if n and n > 1 and not pd.isna(std) else f"{mean:.3f}")


class Page:
    """Collects sections and figures; figures get unique div ids."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.n_figures = 0

    def add(self, markup: str) -> None:
        self.parts.append(markup)

    def figure(self, fig: go.Figure, kind: str) -> None:
        """A figure that fits the window (1280-1920 px wide, issue #33): a figure drawn at its own width
        (a small matrix) keeps that width as a maximum and shrinks with the window instead of overflowing it."""
        self.n_figures += 1
        width = fig.layout.width
        style = ""
        if width:
            fig.update_layout(width=None, autosize=True)
            style = f' style="max-width: min({int(width)}px, 100%)"'
        div = fig.to_html(
            full_html=False, include_plotlyjs=False, div_id=f"{kind}-{self.n_figures}", config=PLOTLY_CONFIG
        )
        self.add(f'<div class="fig {kind}"{style}>{div}</div>')
