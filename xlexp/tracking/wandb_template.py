"""``xlexp report --wandb-template DIR``: a W&B workspace template for transfer matrices, as files.

W&B's own UI has no source x target matrix view, but every xlexp run logs its records as the
``matrix/long`` table. This writes what a W&B project needs to show them as a matrix:

- ``transfer_heatmap.vega.json``: a W&B **custom chart** (a Vega 5 spec in W&B's preset format:
  the ``wandb`` data set, ``${field:...}`` placeholders for the table's columns) drawing the
  source x target heatmap of ``matrix/long``, the mean over the selected runs (seeds) per cell, with
  selectors for metric, selection rule, split, experiment and a switch to hide the in-language
  cells; in-language cells are outlined;
- ``workspace.json``: the workspace layout (runs grouped by experiment, i.e. the W&B group; a
  section with the heatmap panel bound to ``matrix/long``; dev curves against ``trainer/step``; the
  runs-table columns ``xfer/mean/*`` and the best dev values), in the terms of W&B's workspace
  API (sections, panels, runset grouping), for a person or ``wandb-workspaces`` to apply;
- ``README.md``: the clicks (or the ``wandb-workspaces`` lines) that install both.

Why files, not ``wandb-workspaces``: applying a workspace needs the W&B server (an account and the
network), while xlexp must work offline; the template is plain JSON that can be reviewed,
versioned and tested offline, and applied later where there is a W&B server. The selectors'
options come from the results store when it has records (its metrics, rules and experiments).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from xlexp.results.query import SELECTION_ORDER, default_metric, experiments_by_recency, metrics_of
from xlexp.results.store import load_records

TABLE_KEY = "matrix/long"
PRESET_ID = "xlexp/transfer-heatmap"
# the matrix/long columns the chart reads (the records' own column names) and what each is for
FIELDS = {
    "source": "source",
    "target": "target",
    "metric": "metric",
    "selection": "selection",
    "split": "split",
    "experiment": "experiment",
    "value": "value",
}
ALL = "(all)"


def _f(name: str) -> str:
    """``datum['${field:name}']``: a table column, whichever the user maps to the field in W&B."""
    return f"datum['${{field:{name}}}']"


def heatmap_spec(metrics: list[str], rules: list[str], experiments: list[str]) -> dict:
    """The custom chart: source x target heatmap of ``matrix/long`` with selectors (Vega 5)."""
    metric0 = default_metric(metrics)
    keep = (
        f"{_f('metric')} === metric && {_f('selection')} === rule && {_f('split')} === split && "
        f"(experiment === '{ALL}' || {_f('experiment')} === experiment) && "
        f"(showInLanguage || {_f('source')} !== {_f('target')})"
    )
    return {
        "$schema": "https://vega.github.io/schema/vega/v5.json",
        "description": "xlexp transfer matrix: source x target heatmap of the matrix/long table (mean over the "
        "selected runs, i.e. seeds, per cell); in-language cells outlined",
        "title": {"text": {"signal": "'${string:title} — ' + metric + ' (' + split + ', ' + rule + ')'"}},
        "autosize": {"type": "fit", "contains": "padding"},
        "width": 480,
        "height": 360,
        "padding": 5,
        "signals": [
            {"name": "metric", "value": metric0, "bind": {"input": "select", "options": metrics, "name": "metric "}},
            {
                "name": "rule",
                "value": rules[0],
                "bind": {"input": "select", "options": rules, "name": "selection rule "},
            },
            {
                "name": "split",
                "value": "test",
                "bind": {"input": "select", "options": ["test", "dev"], "name": "split "},
            },
            {
                "name": "experiment",
                "value": ALL,
                "bind": {"input": "select", "options": [ALL, *experiments], "name": "experiment "},
            },
            {"name": "showInLanguage", "value": True, "bind": {"input": "checkbox", "name": "in-language cells "}},
        ],
        "data": [
            {"name": "wandb"},
            {
                "name": "cells",
                "source": "wandb",
                "transform": [
                    {"type": "filter", "expr": keep},
                    {
                        "type": "aggregate",
                        "groupby": ["${field:source}", "${field:target}"],
                        "fields": ["${field:value}", "${field:value}"],
                        "ops": ["mean", "count"],
                        "as": ["mean", "n"],
                    },
                    {"type": "formula", "as": "in_language", "expr": f"{_f('source')} === {_f('target')}"},
                ],
            },
            {
                "name": "summary",
                "source": "cells",
                "transform": [
                    {"type": "filter", "expr": "!datum.in_language"},
                    {"type": "aggregate", "fields": ["mean"], "ops": ["mean"], "as": ["transfer_mean"]},
                ],
            },
        ],
        "scales": [
            {
                "name": "x",
                "type": "band",
                "domain": {"data": "cells", "field": "${field:target}", "sort": True},
                "range": "width",
            },
            {
                "name": "y",
                "type": "band",
                "domain": {"data": "cells", "field": "${field:source}", "sort": True},
                "range": "height",
            },
            {
                "name": "color",
                "type": "linear",
                "range": {"scheme": "viridis"},
                "zero": False,
                "nice": False,
                "domain": {"data": "cells", "field": "mean"},
            },
        ],
        "axes": [
            {"orient": "bottom", "scale": "x", "title": "target", "labelAngle": 0},
            {"orient": "left", "scale": "y", "title": "source"},
        ],
        "legends": [{"fill": "color", "type": "gradient", "title": {"signal": "metric"}}],
        "marks": [
            {
                "type": "rect",
                "from": {"data": "cells"},
                "encode": {
                    "enter": {},
                    "update": {
                        "x": {"scale": "x", "field": "${field:target}"},
                        "width": {"scale": "x", "band": 1},
                        "y": {"scale": "y", "field": "${field:source}"},
                        "height": {"scale": "y", "band": 1},
                        "fill": {"scale": "color", "field": "mean"},
                        "stroke": [{"test": "datum.in_language", "value": "black"}, {"value": "white"}],
                        "strokeWidth": [{"test": "datum.in_language", "value": 2.5}, {"value": 1}],
                        "tooltip": {
                            "signal": "{'source': datum['${field:source}'], 'target': datum['${field:target}'], "
                            "'mean': format(datum.mean, '.3f'), 'runs': datum.n}"
                        },
                    },
                },
            },
            {
                "type": "text",
                "from": {"data": "cells"},
                "encode": {
                    "update": {
                        "x": {"scale": "x", "field": "${field:target}", "band": 0.5},
                        "y": {"scale": "y", "field": "${field:source}", "band": 0.5},
                        "align": {"value": "center"},
                        "baseline": {"value": "middle"},
                        "fontSize": {"value": 10},
                        "text": {"signal": "format(datum.mean, '.2f')"},
                        "fill": {
                            "signal": "datum.mean < (domain('color')[0] + domain('color')[1]) / 2 ? 'white' : 'black'"
                        },
                    }
                },
            },
            {
                "type": "text",
                "from": {"data": "summary"},
                "encode": {
                    "update": {
                        "x": {"value": 0},
                        "y": {"signal": "height + 40"},
                        "fontSize": {"value": 11},
                        "text": {"signal": "'mean without in-language cells: ' + format(datum.transfer_mean, '.3f')"},
                    }
                },
            },
        ],
    }


def workspace_spec(project: str, entity: str | None, metrics: list[str]) -> dict:
    """The workspace: runs grouped by experiment, the heatmap section, dev curves and the runs table."""
    return {
        "name": "xlexp transfer matrices",
        "entity": entity,
        "project": project,
        "runset": {
            "grouping": ["group"],  # xlexp sets a run's W&B group to its experiment
            "columns": [f"xfer/mean/{m}" for m in metrics] + ["dev/*"],
        },  # dev/* summaries: best value (max)
        "sections": [
            {
                "name": "Transfer matrix",
                "panels": [
                    {
                        "type": "custom_chart",
                        "preset": PRESET_ID,
                        "spec_file": "transfer_heatmap.vega.json",
                        "query": {"summaryTable": {"tableKey": TABLE_KEY}},
                        "fields": FIELDS,
                        "strings": {"title": "xlexp transfer matrix"},
                        "layout": {"w": 12, "h": 10},
                    }
                ],
            },
            {
                "name": "Dev curves",
                "panels": [
                    {
                        "type": "line_plot",
                        "x": "trainer/step",
                        "y": [f"dev/*/{m}"],
                        "title": f"dev {m} per target",
                        "group_by": "group",
                        "smoothing": 0,
                    }
                    for m in metrics
                ],
            },
            {
                "name": "Training",
                "panels": [
                    {"type": "line_plot", "x": "trainer/step", "y": ["train/loss"], "title": "train loss"},
                    {"type": "line_plot", "x": "trainer/step", "y": ["train/lr"], "title": "learning rate"},
                ],
            },
            {
                "name": "Summary",
                "panels": [
                    {
                        "type": "bar_plot",
                        "metrics": [f"xfer/mean/{m}" for m in metrics],
                        "group_by": "group",
                        "title": "mean transfer (in-language cells left out)",
                    }
                ],
            },
        ],
    }


README = """# xlexp W&B workspace template

Written by `xlexp report --wandb-template {out}` for project `{project}`.

1. **Custom chart.** In the W&B project: *Custom charts* (or a panel's *Create chart*) -> *New
   custom chart* -> paste `transfer_heatmap.vega.json` and save it as `{preset}`.
2. **Panel.** Add a panel with that chart; in its query pick `summaryTable` with key
   `{table}` and map the fields: {fields}.
   The selectors (metric, selection rule, split, experiment, in-language cells) sit under the chart.
3. **Grouping and columns.** Group runs by *Group* (= the xlexp experiment); add the runs-table
   columns in `workspace.json` (`xfer/mean/<metric>`: mean without in-language cells;
   `dev/<target>/<metric>`: best dev value, W&B's `summary="max"`).

With `pip install wandb-workspaces` (needs a W&B login and the network), `workspace.json`'s
sections map one to one onto `wandb_workspaces.workspaces.Section` / `wandb_workspaces.reports.v2`
panels (`LinePlot(x="trainer/step", y=[...])`, `CustomChart(query=..., chart_name="{preset}",
chart_fields=...)`), and `runset.grouping` onto `Workspace(runset_settings=RunsetSettings(groupby=[...]))`.
"""


@dataclass
class Template:
    files: list[Path]
    metrics: list[str]
    experiments: list[str]


def write_template(
    out_dir: str | Path, results_dir: str | Path, project: str = "xlexp", entity: str | None = None
) -> Template:
    """Write the three files; selector options from the store's records when it has any."""
    df = load_records(results_dir)
    metrics = metrics_of(df) if not df.empty else []
    metrics = metrics or ["macro_f1", "accuracy"]
    recorded = set(df["selection"]) if not df.empty else set()
    rules = [r for r in SELECTION_ORDER if r in recorded] + sorted(recorded - set(SELECTION_ORDER))
    rules = rules or list(SELECTION_ORDER)
    experiments = experiments_by_recency(df) if not df.empty else []
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = [out / "transfer_heatmap.vega.json", out / "workspace.json", out / "README.md"]
    files[0].write_text(json.dumps(heatmap_spec(metrics, rules, experiments), indent=2) + "\n", encoding="utf-8")
    files[1].write_text(json.dumps(workspace_spec(project, entity, metrics), indent=2) + "\n", encoding="utf-8")
    files[2].write_text(
        README.format(
            out=out_dir,
            project=project,
            preset=PRESET_ID,
            table=TABLE_KEY,
            fields=", ".join(f"`{k}` -> `{v}`" for k, v in FIELDS.items()),
        ),
        encoding="utf-8",
    )
    return Template(files, metrics, experiments)
