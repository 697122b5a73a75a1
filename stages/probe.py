"""Stage probe@<dataset>-<percent>: linear probes on the S3T, Random-Init, Supervised and hand-crafted
embeddings with <percent> % of the training labels -> metrics/<dataset>/probe_<percent>.json (side by
side, each test score with its 95 % interval, and the paired intervals of S3T minus Random-Init and
S3T minus hand-crafted), the trained probes in models/probes/, and validation curves in
reports/probe/<dataset>/.

`probe.protocol`: `logistic` (default) fits the probe to convergence at each L2 strength of `probe.l2`
and keeps the best on valid; `grid` keeps the best of the (lr, weight decay) grid of AdamW probes;
both record the grid and the selection. `paper` is the paper's fixed setting (probe.lr /
probe.batch_size per dataset). `probe.knn` adds k-NN accuracy (k chosen on valid). Intervals:
`evaluation.resamples` bootstrap draws of whole tracks (s3t.evaluation)."""

import csv
import sys

from _common import EMBEDDINGS, METHODS, METRICS, MODELS, REPORTS, logger, params, probe_protocol, tracks, write_json

from s3t.checkpoint import load_checkpoint, save_checkpoint
from s3t.embed import EmbeddingSet
from s3t.evaluation import comparisons, score_test_split, summary


def main(dataset: str, percent: int) -> None:
    log = logger(f"probe@{dataset}-{percent}")
    section, evaluation, seed = params("probe", "evaluation", "seed")
    config, options = probe_protocol(section, dataset, seed)
    result = {"dataset": dataset, "percent": percent, "protocol": section["protocol"], "resamples": evaluation["resamples"]}
    plots = REPORTS / "probe" / dataset
    plots.mkdir(parents=True, exist_ok=True)
    curves: dict[int, dict] = {}
    linear, knn, groups = {}, {}, None
    for method in METHODS:
        emb = EmbeddingSet.from_state(load_checkpoint(EMBEDDINGS / dataset / f"{method}.pt")["embeddings"])
        groups = groups or tracks(dataset, emb.ids)  # the same clips in every method's file
        fit, metrics, linear[method], knn[method] = score_test_split(
            emb.embeddings, emb.labels, emb.splits, groups, emb.label_set, emb.multilabel, fraction=percent / 100,
            config=config, knn=section["knn"], n_resamples=evaluation["resamples"], **options,
        )
        result[method] = metrics
        metric = "pr_auc" if emb.multilabel else "top1"
        x = "l2" if options["l2"] else "epoch"
        for row in fit.history:  # validation metric per epoch (or L2 strength), one column (plot line) per method
            curves.setdefault(row[x], {x: row[x]})[method] = row[metric]
        # The test metrics travel with the probe, so `s3t info` shows them without the metrics file.
        save_checkpoint({"probe": fit.probe.to_state(), "history": fit.history, "metrics": metrics},
                        MODELS / "probes" / dataset / f"{method}_{percent}.pt")
        log.info("%s: %s", method, {k: round(v, 4) for k, v in metrics.items() if isinstance(v, float)})
    test_groups = [g for g, s in zip(groups, emb.splits) if s == "test"]
    result.update(comparisons(linear, test_groups, knn=knn, n_resamples=evaluation["resamples"], seed=seed))
    _write_csv(plots / f"curve_{percent}.csv", list(curves.values()))
    write_json(METRICS / dataset / f"probe_{percent}.json", result)
    write_json(METRICS / dataset / f"summary_{percent}.json", summary(result))  # what `dvc metrics show` shows


def _write_csv(path, rows: list[dict]) -> None:
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
