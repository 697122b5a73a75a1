"""The run's report as one self-contained HTML page (``reports/index.html``).

Everything is inline: CSS in a ``<style>`` element and every figure an SVG built here, so the
page opens offline, from a file, in any browser, with no script and no request to anywhere.
The page is built from plain data (:class:`ReportData`); the report stage reads the files.

Numbers the page shows from the metrics files carry their raw value and origin as
``data-value`` / ``data-source`` attributes (table cells and label-efficiency points), which is
what the test compares against ``metrics/<dataset>/probe_<percent>.json``.
"""

from __future__ import annotations

import html
import json
import math
from dataclasses import dataclass, field
from typing import Any, Sequence

from s3t.bootstrap import format_interval
from s3t.report import INTRO, METHOD_KEYS, Evaluations, Results, Table, evaluation_tables, paper_tables, run_tables

METHOD_NAMES = {key: name for name, key in METHOD_KEYS.items()}
METHOD_COLOURS = {"s3t": "#d62728", "random_init": "#7f7f7f", "supervised": "#1f77b4", "handcrafted": "#2ca02c"}
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")
METRIC_NAMES = {"top1": "top-1 accuracy", "top5": "top-5 accuracy", "pr_auc": "PR-AUC", "roc_auc": "ROC-AUC"}

WIDTH, HEIGHT = 460, 300
MARGIN = {"left": 62, "right": 16, "top": 14, "bottom": 46}


@dataclass
class DatasetFigures:
    """What the page plots for one evaluation dataset.

    metric: the probe's validation metric ("top1" or "pr_auc"). curves: percent of labels ->
    rows {"epoch": e, <method>: validation metric}. confusion: (labels, counts[actual][predicted])
    on test, or per_tag_auc: [(tag, test ROC-AUC)]. embedding_map: [(x, y, label, split)], the
    first two principal components of the S3T embeddings.
    """

    metric: str
    curves: dict[int, list[dict[str, float]]] = field(default_factory=dict)
    confusion: tuple[list[str], list[list[int]]] | None = None
    per_tag_auc: list[tuple[str, float]] | None = None
    embedding_map: list[tuple[float, float, str, str]] = field(default_factory=list)


@dataclass
class ReportData:
    """Everything on the page. results: dataset -> percent -> probe metrics JSON; evaluations: the
    cross-validated metrics files (s3t.report.evaluation_tables); history:
    pre-training rows {epoch, loss, lr, ...}; validation: suite name -> its details JSON (or a
    bare success flag); params: the text of params.yaml; revision: the code's git revision."""

    results: Results
    backbone: str
    preprocessor: str
    history: list[dict[str, float]]
    datasets: dict[str, DatasetFigures]
    validation: dict[str, Any]
    params: str
    revision: str
    model_card: str = ""
    evaluations: Evaluations = field(default_factory=dict)  # "<dataset>/cv.json" -> its JSON


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """About ``n`` round tick values covering [lo, hi]."""
    if hi <= lo:
        hi = lo + 1.0
    raw = (hi - lo) / n
    step = 10 ** math.floor(math.log10(raw))
    step *= next(m for m in (1, 2, 2.5, 5, 10) if m * step >= raw)
    first = math.ceil(lo / step - 1e-9) * step
    return [round(first + i * step, 10) for i in range(int((hi - first) / step + 1e-9) + 1)]


def _fmt_tick(v: float) -> str:
    if v == 0:
        return "0"
    if abs(v) >= 1e5 or abs(v) < 1e-4:
        return f"{v:.2g}"
    return f"{v:g}"


class _Axes:
    """A plot area mapping data to SVG pixels; linear, or log10 on x."""

    def __init__(self, xlim, ylim, log_x: bool = False, width: int = WIDTH, height: int = HEIGHT) -> None:
        self.log_x, self.width, self.height = log_x, width, height
        tx = (lambda v: math.log10(v)) if log_x else (lambda v: v)
        self._tx = tx
        self.x0, self.x1 = tx(xlim[0]), tx(xlim[1])
        if self.x1 == self.x0:
            self.x0, self.x1 = self.x0 - 1, self.x1 + 1
        self.y0, self.y1 = ylim
        if self.y1 == self.y0:
            self.y0, self.y1 = self.y0 - 1, self.y1 + 1
        self.left, self.right = MARGIN["left"], width - MARGIN["right"]
        self.top, self.bottom = MARGIN["top"], height - MARGIN["bottom"]

    def x(self, v: float) -> float:
        return self.left + (self._tx(v) - self.x0) / (self.x1 - self.x0) * (self.right - self.left)

    def y(self, v: float) -> float:
        return self.bottom - (v - self.y0) / (self.y1 - self.y0) * (self.bottom - self.top)

    def frame(self, x_label: str, y_label: str, x_ticks: Sequence[float], y_ticks: Sequence[float]) -> list[str]:
        out = [f'<rect x="{self.left}" y="{self.top}" width="{self.right - self.left}" height="{self.bottom - self.top}" '
               'class="plot-bg"/>']
        for t in y_ticks:
            y = self.y(t)
            out.append(f'<line x1="{self.left}" x2="{self.right}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>')
            out.append(f'<text x="{self.left - 6}" y="{y + 4:.1f}" text-anchor="end" class="tick">{_fmt_tick(t)}</text>')
        for t in x_ticks:
            x = self.x(t)
            out.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{self.bottom}" y2="{self.bottom + 5}" class="axis"/>')
            out.append(f'<text x="{x:.1f}" y="{self.bottom + 18}" text-anchor="middle" class="tick">{_fmt_tick(t)}</text>')
        out.append(f'<line x1="{self.left}" x2="{self.right}" y1="{self.bottom}" y2="{self.bottom}" class="axis"/>')
        out.append(f'<line x1="{self.left}" x2="{self.left}" y1="{self.top}" y2="{self.bottom}" class="axis"/>')
        out.append(f'<text x="{(self.left + self.right) / 2:.1f}" y="{self.height - 8}" text-anchor="middle" '
                   f'class="label">{_e(x_label)}</text>')
        cy = (self.top + self.bottom) / 2
        out.append(f'<text x="14" y="{cy:.1f}" text-anchor="middle" transform="rotate(-90 14 {cy:.1f})" '
                   f'class="label">{_e(y_label)}</text>')
        return out


def _svg(body: list[str], label: str, width: int = WIDTH, height: int = HEIGHT) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
            f'role="img" aria-label="{_e(label)}">' + "".join(body) + "</svg>")


def _legend(items: Sequence[tuple[str, str]]) -> str:
    return '<div class="legend">' + "".join(
        f'<span><i style="background:{colour}"></i>{_e(name)}</span>' for name, colour in items) + "</div>"


def figure(fig_id: str, title: str, svg: str, caption: str, legend: str = "") -> str:
    """A numbered-by-CSS figure: title, the SVG, an optional legend and a caption."""
    return (f'<figure id="{_e(fig_id)}" class="figure"><div class="fig-title">{_e(title)}</div>{svg}{legend}'
            f"<figcaption>{caption}</figcaption></figure>")


def line_chart(series: dict[str, list[tuple[float, float]]], *, x_label: str, y_label: str, colours: dict[str, str],
               log_x: bool = False, markers: bool = False, ylim: tuple[float, float] | None = None,
               sources: dict[str, list[str]] | None = None) -> str:
    """Lines of (x, y) points per series name. With ``markers`` each point is a circle carrying
    data-series, data-x, data-value (and data-source from ``sources``)."""
    points = [p for pts in series.values() for p in pts if p[1] is not None and math.isfinite(p[1])]
    xs, ys = [p[0] for p in points] or [0, 1], [p[1] for p in points] or [0, 1]
    if ylim is None:
        pad = 0.05 * (max(ys) - min(ys) or 1)
        ylim = (min(ys) - pad, max(ys) + pad)
    axes = _Axes((min(xs), max(xs)), ylim, log_x=log_x)
    x_ticks = sorted(set(xs)) if log_x else _ticks(min(xs), max(xs))
    body = axes.frame(x_label, y_label, [t for t in x_ticks if min(xs) <= t <= max(xs)],
                      [t for t in _ticks(*ylim) if ylim[0] <= t <= ylim[1]])
    for name, pts in series.items():
        pts = [p for p in pts if p[1] is not None and math.isfinite(p[1])]
        if not pts:
            continue
        path = " ".join(f"{axes.x(x):.1f},{axes.y(y):.1f}" for x, y in pts)
        body.append(f'<polyline points="{path}" fill="none" stroke="{colours[name]}" stroke-width="2" '
                    f'data-series="{_e(name)}"/>')
        if markers:
            for i, (x, y) in enumerate(pts):
                source = f' data-source="{_e(sources[name][i])}"' if sources else ""
                body.append(f'<circle cx="{axes.x(x):.1f}" cy="{axes.y(y):.1f}" r="4" fill="{colours[name]}" class="point" '
                            f'data-series="{_e(name)}" data-x="{x:g}" data-value="{y!r}"{source}><title>{_e(name)}: '
                            f"{y:.4f} at {x:g}</title></circle>")
    return _svg(body, f"{y_label} against {x_label}")


def heatmap(labels: Sequence[str], counts: Sequence[Sequence[int]]) -> str:
    """A confusion matrix: rows actual, columns predicted; each cell shows its count."""
    n = len(labels)
    cell = max(28, min(56, 360 // max(n, 1)))
    left, top = 110, 20
    width, height = left + n * cell + 20, top + n * cell + 80
    peak = max((c for row in counts for c in row), default=0) or 1
    body = []
    for i, row in enumerate(counts):
        body.append(f'<text x="{left - 6}" y="{top + i * cell + cell / 2 + 4:.1f}" text-anchor="end" class="tick">'
                    f"{_e(labels[i])}</text>")
        for j, count in enumerate(row):
            shade = count / peak
            fill = f"rgba(31,119,180,{0.08 + 0.92 * shade:.3f})" if count else "#f7f7f7"
            colour = "#fff" if shade > 0.55 else "#222"
            x, y = left + j * cell, top + i * cell
            body.append(f'<rect x="{x}" y="{y}" width="{cell - 1}" height="{cell - 1}" fill="{fill}" class="cell" '
                        f'data-actual="{_e(labels[i])}" data-predicted="{_e(labels[j])}" data-value="{count}"/>')
            body.append(f'<text x="{x + cell / 2:.1f}" y="{y + cell / 2 + 4:.1f}" text-anchor="middle" '
                        f'fill="{colour}" class="count">{count}</text>')
    for j, label in enumerate(labels):
        x, y = left + j * cell + cell / 2, top + n * cell + 8
        body.append(f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="end" transform="rotate(-35 {x:.1f} {y:.1f})" '
                    f'class="tick">{_e(label)}</text>')
    body.append(f'<text x="{left + n * cell / 2:.1f}" y="{height - 6}" text-anchor="middle" class="label">predicted</text>')
    body.append(f'<text x="12" y="{top + n * cell / 2:.1f}" text-anchor="middle" '
                f'transform="rotate(-90 12 {top + n * cell / 2:.1f})" class="label">actual</text>')
    return _svg(body, "confusion matrix", width, height)


def bars(items: Sequence[tuple[str, float]], x_label: str) -> str:
    """Horizontal bars, sorted by value, highest on top (per-tag ROC-AUC)."""
    items = sorted(items, key=lambda kv: -kv[1])
    row = 16
    height = MARGIN["top"] + row * len(items) + MARGIN["bottom"]
    axes = _Axes((0.0, 1.0), (0.0, 1.0), width=WIDTH, height=height)
    axes.left = 150
    body = axes.frame(x_label, "", _ticks(0, 1), [])
    for i, (tag, value) in enumerate(items):
        y = MARGIN["top"] + i * row
        body.append(f'<rect x="{axes.left}" y="{y + 2}" width="{axes.x(value) - axes.left:.1f}" height="{row - 4}" '
                    f'fill="#1f77b4" class="bar" data-tag="{_e(tag)}" data-value="{value!r}"/>')
        body.append(f'<text x="{axes.left - 6}" y="{y + row - 4}" text-anchor="end" class="tick">{_e(tag)}</text>')
    return _svg(body, x_label, WIDTH, height)


def scatter(points: Sequence[tuple[float, float, str, str]], colours: dict[str, str]) -> str:
    """Points (x, y, label, split) coloured by label; test points hollow."""
    xs, ys = [p[0] for p in points] or [0, 1], [p[1] for p in points] or [0, 1]
    pad_x, pad_y = 0.05 * (max(xs) - min(xs) or 1), 0.05 * (max(ys) - min(ys) or 1)
    axes = _Axes((min(xs) - pad_x, max(xs) + pad_x), (min(ys) - pad_y, max(ys) + pad_y))
    body = axes.frame("principal component 1", "principal component 2",
                      [t for t in _ticks(min(xs), max(xs)) if min(xs) - pad_x <= t <= max(xs) + pad_x],
                      [t for t in _ticks(min(ys), max(ys)) if min(ys) - pad_y <= t <= max(ys) + pad_y])
    for x, y, label, split in points:
        colour = colours.get(label, "#333")
        style = f'fill="none" stroke="{colour}" stroke-width="1.5"' if split == "test" else f'fill="{colour}" fill-opacity="0.75"'
        body.append(f'<circle cx="{axes.x(x):.1f}" cy="{axes.y(y):.1f}" r="3.2" {style} class="dot" '
                    f'data-label="{_e(label)}" data-split="{_e(split)}"/>')
    return _svg(body, "2-D map of the embeddings")


def html_table(table: Table, table_id: str, paper_columns: bool = False) -> str:
    """A table; this run's cells carry data-value and data-source (see module docstring)."""
    head = "".join(f'<th class="{"paper" if "(paper)" in h else ""}">{_e(h)}</th>' for h in table.header)
    rows = []
    for row in table.rows:
        cells = []
        for i, cell in enumerate(row):
            tag = "th" if i == 0 else "td"
            cls = "paper" if paper_columns and "(paper)" in table.header[i] else ("na" if cell.value is None and i else "")
            attrs = ""
            if cell.value is not None:
                attrs = f' data-value="{cell.value!r}" data-source="{_e(json.dumps(list(cell.source)))}"'
            cells.append(f'<{tag} class="{cls}"{attrs}>{_e(cell.text)}</{tag}>')
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return (f'<table id="{_e(table_id)}"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>')


def figure_ids(data: ReportData) -> list[str]:
    """The ids of every figure :func:`build_report` draws for ``data``."""
    ids = ["fig-pretrain-loss", "fig-pretrain-lr"]
    for d, figs in data.datasets.items():
        ids += [f"fig-curves-{d}-{p}" for p in sorted(figs.curves, reverse=True)]
        ids.append(f"fig-label-efficiency-{d}")
        if figs.confusion is not None:
            ids.append(f"fig-confusion-{d}")
        if figs.per_tag_auc is not None:
            ids.append(f"fig-per-tag-auc-{d}")
        ids.append(f"fig-embedding-map-{d}")
    return ids


CSS = """
:root { --ink:#1d1d1f; --muted:#5f6368; --line:#dadce0; --paper:#f1f3f4; --accent:#d62728; }
* { box-sizing: border-box; }
body { margin:0; font:15px/1.5 -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; color:var(--ink); background:#fff; }
header { background:#1d2733; color:#fff; padding:28px 40px 22px; }
header h1 { margin:0 0 6px; font-size:26px; font-weight:600; }
header p { margin:0; color:#c9d1d9; max-width:980px; }
nav { position:sticky; top:0; background:#fff; border-bottom:1px solid var(--line); padding:8px 40px; z-index:2; font-size:14px; }
nav a { margin-right:18px; color:#1a5fb4; text-decoration:none; }
main { padding:8px 40px 48px; max-width:1280px; }
h2 { margin:34px 0 8px; font-size:21px; border-bottom:2px solid var(--ink); padding-bottom:4px; }
h3 { margin:22px 0 6px; font-size:16px; }
p.note { color:var(--muted); margin:4px 0 12px; max-width:980px; }
.cards { display:flex; flex-wrap:wrap; gap:14px; margin:18px 0 6px; }
.card { border:1px solid var(--line); border-radius:8px; padding:12px 16px; min-width:170px; }
.card .v { font-size:24px; font-weight:600; }
.card .k { color:var(--muted); font-size:13px; }
table { border-collapse:collapse; margin:6px 0 18px; font-size:13.5px; }
th, td { border:1px solid var(--line); padding:5px 9px; text-align:right; vertical-align:top; }
thead th { background:#f8f9fa; text-align:center; font-weight:600; }
tbody th { text-align:left; font-weight:500; white-space:nowrap; }
td.paper, th.paper { background:var(--paper); }
td.na { color:#9aa0a6; }
.figs { display:flex; flex-wrap:wrap; gap:18px 26px; }
.figure { margin:0; padding:10px 12px; border:1px solid var(--line); border-radius:8px; }
.fig-title { font-weight:600; font-size:14px; margin-bottom:4px; }
figcaption { color:var(--muted); font-size:12.5px; max-width:460px; margin-top:4px; }
.legend { font-size:12.5px; margin-top:2px; }
.legend span { margin-right:12px; white-space:nowrap; }
.legend i { display:inline-block; width:11px; height:11px; border-radius:2px; margin-right:4px; vertical-align:-1px; }
svg .plot-bg { fill:#fcfcfc; } svg .grid { stroke:#ececec; } svg .axis { stroke:#888; }
svg .tick { font-size:11px; fill:#444; } svg .label { font-size:12px; fill:#222; } svg .count { font-size:11px; }
.ok { color:#188038; font-weight:600; } .fail { color:#c5221f; font-weight:600; }
pre { background:#f8f9fa; border:1px solid var(--line); padding:10px 12px; font-size:12.5px; overflow:auto; max-height:420px; }
details summary { cursor:pointer; color:#1a5fb4; margin:6px 0; }
"""


def _headline(data: ReportData) -> str:
    cards = []
    for d, by_percent in data.results.items():
        top = max(by_percent)
        result = by_percent[top]
        metric = "top1" if "top1" in result.get("s3t", {}) else "pr_auc"
        for key in ("s3t", "random_init"):
            row = result.get(key, {})
            if row.get(metric) is not None:
                shown = format_interval(row[metric], row.get(f"{metric}_low", float("nan")), row.get(f"{metric}_high", float("nan")))
                cards.append(f'<div class="card"><div class="v">{_e(shown)} %</div><div class="k">{_e(METHOD_NAMES[key])}, '
                             f"{_e(d)} test {_e(METRIC_NAMES[metric])} [95 % interval], {top}% labels</div></div>")
    if data.history:
        last = data.history[-1]
        cards.append(f'<div class="card"><div class="v">{last["loss"]:.3f}</div><div class="k">final pre-training loss '
                     f'(epoch {int(last["epoch"]) + 1})</div></div>')
    return '<div class="cards">' + "".join(cards) + "</div>"


def _validation(validation: dict[str, Any]) -> str:
    rows = []
    for suite, details in validation.items():
        if isinstance(details, bool):
            details = {"success": details}
        ok = details.get("success")
        results = details.get("results", [])
        failed = details.get("failed", [])
        rows.append(f'<tr><th>{_e(suite)}</th><td class="{"ok" if ok else "fail"}">{"passed" if ok else "FAILED"}</td>'
                    f"<td>{len(results) or ''}</td><td>{_e(', '.join(map(str, failed))) or 'none'}</td></tr>")
    return ('<table id="validation"><thead><tr><th>suite</th><th>result</th><th>expectations</th><th>failed</th></tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table>')


def build_report(data: ReportData) -> str:
    """The whole page as an HTML string (see module docstring)."""
    settings = f"{data.backbone}, {data.preprocessor}"
    datasets = ", ".join(data.datasets) or "none"
    sections = [("results", "Results"), ("pretraining", "Pre-training"), ("probes", "Probes"),
                ("embeddings", "Embedding map"), ("validation", "Data validation"), ("provenance", "Parameters and revision")]
    out = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>S3T report: {_e(datasets)} ({_e(settings)})</title>", f"<style>{CSS}</style></head><body>",
        f"<header><h1>S3T run report</h1><p>Self-supervised MoCo v2 pre-training of a {_e(data.backbone)} encoder on "
        f"constant-Q spectrograms ({_e(data.preprocessor)} pre-processor), evaluated with linear probes on "
        f"{_e(datasets)}. Revision <code>{_e(data.revision)}</code>. Written by the pipeline's report stage from "
        "<code>metrics/</code> and <code>reports/</code>; this page is self-contained and works offline.</p></header>",
        "<nav>" + "".join(f'<a href="#{k}">{_e(v)}</a>' for k, v in sections) + "</nav>", "<main>",
        _headline(data),
        '<h2 id="results">Results</h2>',
        f'<p class="note">{_e(INTRO.replace("`", ""))} Shaded columns are the paper\'s.</p>',
    ]
    for i, table in enumerate(run_tables(data.results, backbone=data.backbone, preprocessor=data.preprocessor)):
        out += [f"<h3>{_e(table.title.replace('`', ''))}</h3>",
                '<p class="note">Test metrics in % of the four probes side by side; k-NN: the label-free nearest-neighbour '
                "view of the same embeddings (k chosen on validation).</p>", html_table(table, f"run-table-{i}")]
    for i, table in enumerate(evaluation_tables(data.evaluations)):
        out += [f"<h3>{_e(table.title.replace('`', ''))}</h3>",
                '<p class="note">Every scored clip once, by the probe trained on the other folds (the next fold choosing '
                "its setting and k); the test split is not read. Top-1 in %.</p>", html_table(table, f"cv-table-{i}")]
    out.append('<p class="note">The paper\'s tables below are on GTZAN, FMA-small and MagnaTagATune; their "ours" '
               "cells say \"not run\" unless <code>eval_datasets</code> includes those datasets "
               "(<code>dvc exp run -S scale=paper</code>).</p>")
    for i, table in enumerate(paper_tables(data.results, backbone=data.backbone, preprocessor=data.preprocessor)):
        out += [f"<h3>Paper {_e(table.title)}</h3>", html_table(table, f"paper-table-{i + 1}", paper_columns=True)]

    out.append('<h2 id="pretraining">Pre-training</h2>')
    epochs = [(float(r["epoch"]) + 1, float(r["loss"])) for r in data.history]
    lrs = [(float(r["epoch"]) + 1, float(r["lr"])) for r in data.history]
    out += ['<div class="figs">',
            figure("fig-pretrain-loss", "Pre-training loss", line_chart({"loss": epochs}, x_label="epoch",
                   y_label="InfoNCE loss (epoch mean)", colours={"loss": "#d62728"}),
                   "Mean MoCo v2 InfoNCE loss of each epoch. It starts near log(K + 1) and falls as the encoder learns to "
                   "tell a clip's two augmented views from the queue of other clips."),
            figure("fig-pretrain-lr", "Learning rate", line_chart({"lr": lrs}, x_label="epoch", y_label="learning rate",
                   colours={"lr": "#1f77b4"}), "Learning rate at the end of each epoch: linear warm-up, then cosine decay."),
            "</div>"]
    if data.model_card:
        out.append("<details><summary>Model card (models/pretrained.md)</summary><pre>" + _e(data.model_card) + "</pre></details>")

    out.append('<h2 id="probes">Probes</h2>')
    for d, figs in data.datasets.items():
        metric = METRIC_NAMES.get(figs.metric, figs.metric)
        out += [f"<h3>{_e(d)}</h3>", '<div class="figs">']
        legend = _legend([(METHOD_NAMES[m], METHOD_COLOURS[m]) for m in METHOD_COLOURS])
        for p in sorted(figs.curves, reverse=True):
            rows = figs.curves[p]
            by_l2 = bool(rows) and "l2" in rows[0]  # the logistic protocol: one fit per L2 strength
            series = {m: [(r["l2"] if by_l2 else r["epoch"] + 1, r.get(m)) for r in rows]
                      for m in METHOD_COLOURS if any(m in r for r in rows)}
            if by_l2:
                title, x_label = f"Validation {metric} per L2 strength, {p}% labels", "L2 strength"
                caption = ("Linear probe on frozen embeddings of each encoder, fitted to convergence at each strength; "
                           "the strength with the best validation value is kept.")
            else:
                title, x_label = f"Validation {metric} per probe epoch, {p}% labels", "probe epoch"
                caption = ("Linear probe on frozen embeddings of each encoder (the selected grid setting); "
                           "the epoch with the best validation value is kept.")
            out.append(figure(f"fig-curves-{d}-{p}", title, line_chart(series, x_label=x_label, y_label=f"validation {metric}",
                                                                       colours=METHOD_COLOURS, log_x=by_l2), caption, legend))
        by_percent = data.results.get(d, {})
        test_metric = "top1" if figs.metric == "top1" else "pr_auc"
        series, sources = {}, {}
        for m in METHOD_COLOURS:
            pts = [(p, by_percent[p][m][test_metric]) for p in sorted(by_percent) if test_metric in by_percent[p].get(m, {})]
            if pts:
                series[m] = pts
                sources[m] = [json.dumps([f"{d}/probe_{p}.json", m, test_metric]) for p, _ in pts]
        log_x = len(by_percent) > 1 and min(by_percent) > 0 and max(by_percent) / min(by_percent) >= 10
        out.append(figure(f"fig-label-efficiency-{d}", f"Label efficiency: test {METRIC_NAMES[test_metric]}",
                          line_chart(series, x_label="% of training labels" + (" (log scale)" if log_x else ""),
                                     y_label=f"test {METRIC_NAMES[test_metric]}", colours=METHOD_COLOURS, log_x=log_x,
                                     markers=True, sources=sources),
                          "Test metric of each encoder's probe trained on a fraction of the training labels.", legend))
        if figs.confusion is not None:
            labels, counts = figs.confusion
            total = sum(map(sum, counts))
            right = sum(counts[i][i] for i in range(len(labels)))
            out.append(figure(f"fig-confusion-{d}", "Confusion matrix (S3T probe, test)", heatmap(labels, counts),
                              f"Test clips by actual and predicted class; {right} of {total} on the diagonal."))
        if figs.per_tag_auc is not None:
            out.append(figure(f"fig-per-tag-auc-{d}", "Per-tag ROC-AUC (S3T probe, test)",
                              bars(figs.per_tag_auc, "test ROC-AUC"), "ROC-AUC of each tag on test, best first."))
        out.append("</div>")

    out.append('<h2 id="embeddings">Embedding map</h2>')
    out.append('<div class="figs">')
    for d, figs in data.datasets.items():
        labels = sorted({p[2] for p in figs.embedding_map})
        colours = {label: PALETTE[i % len(PALETTE)] for i, label in enumerate(labels)}
        out.append(figure(f"fig-embedding-map-{d}", f"S3T embeddings of {d}", scatter(figs.embedding_map, colours),
                          "Every clip's S3T embedding projected on its first two principal components, coloured by its "
                          "(first) label; hollow circles are test clips. Clusters by colour mean the encoder separates "
                          "the classes without ever seeing a label.", _legend([(k, v) for k, v in colours.items()])))
    out.append("</div>")

    out += ['<h2 id="validation">Data validation</h2>',
            '<p class="note">great_expectations suites run by the validate stage on the features and the augmentations '
            "(full results in reports/validation/details/ and the GX Data Docs).</p>", _validation(data.validation)]
    out += ['<h2 id="provenance">Parameters and revision</h2>',
            f"<p>Code revision <code>{_e(data.revision)}</code>. Parameters (<code>params.yaml</code>, composed from "
            "<code>conf/</code> by Hydra):</p>",
            "<pre>" + _e(data.params) + "</pre>", "</main></body></html>"]
    return "\n".join(out) + "\n"


__all__ = ["DatasetFigures", "ReportData", "build_report", "figure_ids"]
