"""The report page: built from plain data, then opened in a real headless Chromium."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

from s3t.evaluation import comparisons, cross_validated_rows, score_test_split
from s3t.probe import ProbeConfig
from s3t.report_html import DatasetFigures, ReportData, _ticks, build_report, figure_ids

CHROMIUM = Path("/usr/bin/chromium")
BROWSER_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--no-first-run"]
METHODS = ("s3t", "random_init", "supervised", "handcrafted")


def _probe_result(dataset: str, percent: int, multilabel: bool, seed: int) -> tuple[dict, dict]:
    """A probe stage's metrics JSON for one dataset and label percentage, from real probes on blobs."""
    g = torch.Generator().manual_seed(seed)
    labels = ["a", "b", "c"]
    x = torch.randn(90, 6, generator=g)
    y = torch.arange(90) % 3
    x[:, :3] += 2 * torch.nn.functional.one_hot(y, 3)
    rows = [tuple(t for t, on in zip(labels, r) if on) or ("a",) for r in (x[:, :3] > 1).tolist()] if multilabel else \
        [(labels[i],) for i in y.tolist()]
    splits = (["train"] * 6 + ["valid"] * 2 + ["test"] * 2) * 9
    # The corpus is probed with the logistic protocol (curves per L2 strength), the others with the grid (per epoch).
    protocol = "logistic" if dataset == "corpus" else "grid"
    options = {"l2": [1.0, 0.1, 0.01]} if protocol == "logistic" else {"grid": [(1e-2, 0.0), (3e-2, 0.05)]}
    x_key = "l2" if protocol == "logistic" else "epoch"
    result, curves = {"dataset": dataset, "percent": percent, "protocol": protocol}, {}
    groups = [f"track{i // 2}" for i in range(90)]  # two clips per track, as the probe stage's tracks
    scored = {}
    for k, method in enumerate(METHODS):
        fit, metrics, scored[method], _ = score_test_split(
            x + 0.5 * k * torch.randn(90, 6, generator=g), rows, splits, groups, labels, multilabel,
            fraction=percent / 100, config=ProbeConfig(epochs=4, warmup_epochs=1), knn=True, n_resamples=50, **options)
        result[method] = metrics
        for row in fit.history:
            curves.setdefault(row[x_key], {x_key: float(row[x_key])})[method] = row["pr_auc" if multilabel else "top1"]
    result.update(comparisons(scored, [g for g, s in zip(groups, splits) if s == "test"], n_resamples=50))
    return result, curves


def _cv_result() -> dict:
    """A cv stage's metrics JSON, from real cross-validation on blobs."""
    g = torch.Generator().manual_seed(7)
    y = torch.arange(60) % 3
    x = torch.randn(60, 6, generator=g)
    x[:, :3] += 2 * torch.nn.functional.one_hot(y, 3)
    rows = [("abc"[i],) for i in y.tolist()]
    groups = [f"{'abc'[c]}-{i // 6}" for i, c in enumerate(y.tolist())]
    embeddings = {"s3t": x, "random_init": torch.randn(60, 6, generator=g), "handcrafted": x + torch.randn(60, 6, generator=g)}
    return {"dataset": "corpus", **cross_validated_rows(embeddings, rows, groups, ["a", "b", "c"], folds=3, n_resamples=50,
                                                        l2=[1.0, 0.1])}


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """metrics/<dataset>/probe_<percent>.json files and the page built from them (as the report stage does)."""
    root = tmp_path_factory.mktemp("report")
    results, figures = {}, {}
    for i, (dataset, multilabel) in enumerate((("gtzan", False), ("mtat", True), ("corpus", False))):
        figs = figures[dataset] = DatasetFigures(metric="pr_auc" if multilabel else "top1")
        for percent in (100, 10):
            result, curves = _probe_result(dataset, percent, multilabel, seed=10 * i + percent)
            (root / "metrics" / dataset).mkdir(parents=True, exist_ok=True)
            (root / "metrics" / dataset / f"probe_{percent}.json").write_text(json.dumps(result, indent=2))
            results.setdefault(dataset, {})[percent] = json.loads(json.dumps(result))
            figs.curves[percent] = list(curves.values())
        if multilabel:
            figs.per_tag_auc = [("a", 0.91), ("b", 0.64), ("c", 0.77)]
        else:
            figs.confusion = (["a", "b", "c"], [[5, 1, 0], [2, 3, 1], [0, 0, 6 + i]])
        g = torch.Generator().manual_seed(i)
        figs.embedding_map = [(float(a), float(b), "abc"[k % 3], "test" if k % 5 == 0 else "train")
                              for k, (a, b) in enumerate(torch.randn(40 + i, 2, generator=g).tolist())]
    (root / "metrics" / "corpus" / "cv.json").write_text(json.dumps(_cv_result(), indent=2))
    evaluations = {"corpus/cv.json": json.loads((root / "metrics" / "corpus" / "cv.json").read_text())}
    history = [{"epoch": float(e), "step": float(10 * e), "loss": 5.0 - 0.1 * e, "lr": 1e-3 * min(1, (e + 1) / 3)}
               for e in range(12)]
    data = ReportData(
        results=results, backbone="swin_t", preprocessor="time_folding", history=history, datasets=figures,
        validation={"features_corpus": {"success": True, "failed": [], "results": [{}] * 7}, "augmentations": False},
        params="seed: 0\npretrain:\n  epochs: 12\n", revision="abc1234-dirty", model_card="# models/pretrained.pt\n",
        evaluations=evaluations,
    )
    page = root / "index.html"
    page.write_text(build_report(data), encoding="utf-8")
    return root, data, page


def test_ticks_are_round_and_cover_the_range():
    assert _ticks(0.0, 1.0) == [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    assert _ticks(3.13, 4.78) == [3.5, 4.0, 4.5]
    assert _ticks(0, 1e-3) == [0.0, 0.0002, 0.0004, 0.0006, 0.0008, 0.001]


def test_page_is_self_contained_and_shows_every_table_value_with_its_source(report):
    root, data, page = report
    text = page.read_text()
    assert not re.search(r'(src|href)="(?!#)', text) and "<script" not in text and "@import" not in text
    assert "http://" not in text.replace('xmlns="http://www.w3.org/2000/svg"', "") and "https://" not in text
    for fig in figure_ids(data):
        assert f'id="{fig}"' in text
    cells = re.findall(r'data-value="([^"]+)" data-source="([^"]+)">([^<]+)<', text)
    assert len(cells) > 40
    intervals = 0
    for value, source, shown in cells:
        file, *keys = json.loads(source.replace("&quot;", '"'))
        parent = expected = json.loads((root / "metrics" / file).read_text())
        for key in keys:
            parent, expected = expected, expected[key]
        assert float(value) == expected and shown.lstrip("+").startswith(f"{100 * expected:.1f}")
        if "[" in shown:  # the interval shown is the file's, in whole percent
            low, high = (100 * parent[f"{keys[-1]}_{end}"] for end in ("low", "high"))
            assert f"[{low:.0f}, {high:.0f}]" in shown
            intervals += 1
    assert intervals > 30 and any(json.loads(s.replace("&quot;", '"'))[0] == "corpus/cv.json" for _, s, _ in cells)
    assert any("s3t_minus_random_init" in s for _, s, _ in cells)


@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Chromium at /usr/bin/chromium (apt-get install -y chromium)")
def test_page_renders_in_headless_chromium_with_every_figure_and_the_metrics_values(report, tmp_path):
    from playwright.sync_api import sync_playwright

    root, data, page_path = report
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=BROWSER_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1300, "height": 900})
            problems = []
            page.on("console", lambda m: problems.append(m.text) if m.type in ("error", "warning") else None)
            page.on("pageerror", lambda e: problems.append(str(e)))
            page.on("request", lambda r: None if r.url.startswith("file:") else problems.append(f"request {r.url}"))
            page.goto(page_path.as_uri())
            page.wait_for_load_state("load")
            assert problems == []
            assert page.title().startswith("S3T report")

            for fig in figure_ids(data):
                box = page.locator(f"#{fig} svg").bounding_box()
                assert box is not None and box["width"] > 200 and box["height"] > 100, fig
            assert page.locator("figure").count() == len(figure_ids(data))

            # Table cells: what a reader sees equals the metrics JSON (in %, one decimal).
            cells = page.locator("td[data-source]").evaluate_all(
                "cells => cells.map(c => [c.dataset.source, c.innerText])")
            assert len(cells) > 40
            for source, shown in cells:
                file, *keys = json.loads(source)
                value = json.loads((root / "metrics" / file).read_text())
                for key in keys:
                    value = value[key]
                assert shown.split(" ")[0].lstrip("+") == f"{100 * value:.1f}", (source, shown)

            # Figures: label-efficiency points, confusion counts, per-tag bars and map dots match their data.
            points = page.locator("#fig-label-efficiency-gtzan circle.point").evaluate_all(
                "ps => ps.map(p => [p.dataset.series, +p.dataset.x, +p.dataset.value])")
            expected = [(m, float(pc), data.results["gtzan"][pc][m]["top1"]) for m in METHODS for pc in (10, 100)]
            assert sorted(map(tuple, points)) == sorted(expected)
            counts = page.locator("#fig-confusion-corpus rect.cell").evaluate_all("cs => cs.map(c => +c.dataset.value)")
            assert counts == [c for row in data.datasets["corpus"].confusion[1] for c in row]
            assert page.locator("#fig-per-tag-auc-mtat rect.bar").count() == 3
            for d, figs in data.datasets.items():
                assert page.locator(f"#fig-embedding-map-{d} circle.dot").count() == len(figs.embedding_map)
            assert page.locator("#validation td.fail").count() == 1  # the failed suite stands out

            shot = tmp_path / "report.png"
            page.screenshot(path=str(shot), full_page=True)
            assert shot.stat().st_size > 50_000  # a rendered page, not a blank one
        finally:
            browser.close()


def test_probe_curves_are_drawn_per_epoch_or_per_l2_strength(report):
    _, _, page = report
    html = page.read_text(encoding="utf-8")
    assert "Validation top-1 accuracy per L2 strength, 100% labels" in html  # corpus: the logistic protocol
    assert "Validation top-1 accuracy per probe epoch, 100% labels" in html  # gtzan: the grid protocol
    corpus = html[html.index('id="fig-curves-corpus-100"'):]
    assert "L2 strength" in corpus[:corpus.index("</figure>")]
