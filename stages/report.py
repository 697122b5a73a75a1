"""Stage report: reports/tables.md (the paper's Tables 1-4 beside this run) and, as CSV files that
`dvc plots show` renders, the label-efficiency curve and per dataset the S3T probe's confusion
matrix (genre) or per-tag ROC-AUC (tagging) on test, and a 2-D PCA map of the S3T embeddings."""

import csv
import json

import torch
from _common import EMBEDDINGS, METHODS, METRICS, MODELS, REPORTS, logger, params

from s3t.checkpoint import load_checkpoint
from s3t.embed import EmbeddingSet
from s3t.metrics import per_tag_roc_auc
from s3t.probe import LinearProbe, encode_targets
from s3t.report import pca_2d, render_tables



def main() -> None:
    log = logger("report")
    eval_datasets, probe, backbone, preprocessor = params("eval_datasets", "probe", "backbone", "preprocessor")
    results = {
        d: {p: json.loads((METRICS / d / f"probe_{p}.json").read_text()) for p in probe["fractions"]} for d in eval_datasets
    }
    REPORTS.mkdir(exist_ok=True)
    (REPORTS / "tables.md").write_text(render_tables(results, backbone=backbone["name"], preprocessor=preprocessor["name"]) + "\n")

    rows = []
    for d, by_percent in results.items():
        for p, result in sorted(by_percent.items()):
            metric = "top1" if "top1" in result["s3t"] else "pr_auc"
            rows.append([d, p, metric] + [result.get(m, {}).get(metric, "") for m in METHODS])
    _write(REPORTS / "label_efficiency.csv", ["dataset", "percent", "metric", *METHODS], rows)

    top = max(probe["fractions"])
    for d in eval_datasets:
        emb = EmbeddingSet.from_state(load_checkpoint(EMBEDDINGS / d / "s3t.pt")["embeddings"])
        probe_model = LinearProbe.from_state(load_checkpoint(MODELS / "probes" / d / f"s3t_{top}.pt")["probe"])
        test = [i for i, s in enumerate(emb.splits) if s == "test"]
        with torch.no_grad():
            scores = probe_model.scores(emb.embeddings[test]).numpy()
        targets = encode_targets([emb.labels[i] for i in test], emb.label_set, emb.multilabel).numpy()
        plots = REPORTS / "plots" / d
        if emb.multilabel:
            rows = [[t, f"{a:.5f}"] for t, a in zip(emb.label_set, per_tag_roc_auc(scores, targets)) if a == a]
            _write(plots / "per_tag_auc.csv", ["tag", "roc_auc"], rows)
        else:
            rows = [[emb.label_set[a], emb.label_set[p]] for a, p in zip(targets, scores.argmax(1))]
            _write(plots / "confusion.csv", ["actual", "predicted"], rows)
        xy = pca_2d(emb.embeddings)
        rows = [[f"{x:.5f}", f"{y:.5f}", labels[0] if labels else "", split]
                for (x, y), labels, split in zip(xy.tolist(), emb.labels, emb.splits)]
        _write(plots / "embedding_map.csv", ["x", "y", "label", "split"], rows)
    log.info("tables in %s", REPORTS / "tables.md")


def _write(path, header: list[str], rows: list[list]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)


if __name__ == "__main__":
    main()
