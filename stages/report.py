"""Stage report: reports/tables.md (the paper's Tables 1-4 beside this run) and, as CSV files that
`dvc plots show` renders, the label-efficiency curve and per dataset the S3T probe's confusion
matrix (genre) or per-tag ROC-AUC (tagging) on test, and a 2-D PCA map of the S3T embeddings.

All of it, with the pre-training history, the probe curves, the data-validation summary, the
model card and the params, also goes into one self-contained page, reports/index.html. The
revision shown there is the git checkout's at the time the stage ran (`git describe --always
--dirty`); DVC does not re-run the stage for a new commit alone, only for changed inputs."""

import csv
import json
import os
import subprocess

from _common import EMBEDDINGS, METHODS, METRICS, MODELS, REPORTS, ROOT, logger, params  # first: before torch
import torch

from s3t.checkpoint import load_checkpoint
from s3t.embed import EmbeddingSet
from s3t.metrics import confusion_matrix, per_tag_roc_auc
from s3t.probe import LinearProbe, encode_targets
from s3t.report import pca_2d, render_tables
from s3t.report_html import DatasetFigures, ReportData, build_report


def main() -> None:
    log = logger("report")
    eval_datasets, cv_datasets, transfer_datasets, probe, backbone, preprocessor = params(
        "eval_datasets", "cv_datasets", "transfer_datasets", "probe", "backbone", "preprocessor")
    results = {
        d: {p: json.loads((METRICS / d / f"probe_{p}.json").read_text()) for p in probe["fractions"]} for d in eval_datasets
    }
    evaluations = {f"{d}/cv.json": json.loads((METRICS / d / "cv.json").read_text()) for d in [*cv_datasets, *transfer_datasets]}
    REPORTS.mkdir(exist_ok=True)
    (REPORTS / "tables.md").write_text(render_tables(results, backbone=backbone["name"], preprocessor=preprocessor["name"],
                                                     evaluations=evaluations) + "\n")

    rows = []
    for d, by_percent in results.items():
        for p, result in sorted(by_percent.items()):
            metric = "top1" if "top1" in result["s3t"] else "pr_auc"
            rows.append([d, p, metric] + [result.get(m, {}).get(metric, "") for m in METHODS])
    _write(REPORTS / "label_efficiency.csv", ["dataset", "percent", "metric", *METHODS], rows)

    top = max(probe["fractions"])
    figures = {}
    for d in eval_datasets:
        emb = EmbeddingSet.from_state(load_checkpoint(EMBEDDINGS / d / "s3t.pt")["embeddings"])
        probe_model = LinearProbe.from_state(load_checkpoint(MODELS / "probes" / d / f"s3t_{top}.pt")["probe"])
        test = [i for i, s in enumerate(emb.splits) if s == "test"]
        with torch.no_grad():
            scores = probe_model.scores(emb.embeddings[test]).numpy()
        targets = encode_targets([emb.labels[i] for i in test], emb.label_set, emb.multilabel).numpy()
        # One folder per kind of figure, a file per dataset: dvc.yaml plots each folder with one template, and
        # a dataset this run did not evaluate is simply absent instead of a plot that fails to load.
        plots = REPORTS / "plots"
        fig = figures[d] = DatasetFigures(metric="pr_auc" if emb.multilabel else "top1")
        if emb.multilabel:
            rows = [[t, f"{a:.5f}"] for t, a in zip(emb.label_set, per_tag_roc_auc(scores, targets)) if a == a]
            _write(plots / "per_tag_auc" / f"{d}.csv", ["tag", "roc_auc"], rows)
            fig.per_tag_auc = [(t, float(a)) for t, a in rows]
        else:
            rows = [[emb.label_set[a], emb.label_set[p]] for a, p in zip(targets, scores.argmax(1))]
            _write(plots / "confusion" / f"{d}.csv", ["actual", "predicted"], rows)
            counts = confusion_matrix(scores.argmax(1), targets, len(emb.label_set))  # rows actual
            fig.confusion = (list(emb.label_set), counts.tolist())
        xy = pca_2d(emb.embeddings)
        rows = [[f"{x:.5f}", f"{y:.5f}", labels[0] if labels else "", split]
                for (x, y), labels, split in zip(xy.tolist(), emb.labels, emb.splits)]
        _write(plots / "embedding_map" / f"{d}.csv", ["x", "y", "label", "split"], rows)
        fig.embedding_map = [(float(x), float(y), label, split) for x, y, label, split in rows]
        fig.curves = {p: _read_csv(REPORTS / "probe" / d / f"curve_{p}.csv") for p in probe["fractions"]}
    log.info("tables in %s", REPORTS / "tables.md")

    card = MODELS / "pretrained.md"
    data = ReportData(
        results=results, backbone=backbone["name"], preprocessor=preprocessor["name"],
        history=_read_csv(REPORTS / "pretrain" / "history.csv"), datasets=figures, validation=_validation(),
        params=(ROOT / "params.yaml").read_text(encoding="utf-8"), revision=_revision(),
        model_card=card.read_text(encoding="utf-8") if card.is_file() else "", evaluations=evaluations,
    )
    tmp = REPORTS / "index.html.tmp"
    tmp.write_text(build_report(data), encoding="utf-8")
    os.replace(tmp, REPORTS / "index.html")
    log.info("report page %s", REPORTS / "index.html")


def _read_csv(path) -> list[dict[str, float]]:
    """A numeric CSV (history, probe curves) as rows of floats; an empty cell is None."""
    with path.open(newline="") as fh:
        return [{k: float(v) if v != "" else None for k, v in row.items()} for row in csv.DictReader(fh)]


def _validation() -> dict:
    """Suite name -> its details JSON (the summary's flag when a details file is missing)."""
    folder = REPORTS / "validation"
    summary = json.loads((folder / "summary.json").read_text())
    out = {}
    for suite, success in summary.items():
        details = folder / "details" / f"{suite}.json"
        out[suite] = json.loads(details.read_text()) if details.is_file() else success
    return out


def _revision() -> str:
    try:
        done = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=ROOT, capture_output=True, text=True, timeout=30)
    except OSError:  # no git on this machine
        return "unknown (git not found)"
    return done.stdout.strip() if done.returncode == 0 else "unknown (not a git checkout)"


def _write(path, header: list[str], rows: list[list]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)


if __name__ == "__main__":
    main()
