"""Stage probe@<dataset>-<percent>: linear probes on the S3T, Random-Init, Supervised and hand-crafted
embeddings with <percent> % of the training labels -> metrics/<dataset>/probe_<percent>.json (side by
side), the trained probes in models/probes/, and validation curves in reports/probe/<dataset>/.

`probe.protocol`: `logistic` (default) fits the probe to convergence at each L2 strength of `probe.l2`
and keeps the best on valid; `grid` keeps the best of the (lr, weight decay) grid of AdamW probes;
both record the grid and the selection. `paper` is the paper's fixed setting (probe.lr /
probe.batch_size per dataset). `probe.knn` adds k-NN accuracy (k chosen on valid)."""

import csv
import json
import sys

from _common import EMBEDDINGS, METHODS, METRICS, MODELS, REPORTS, logger, params

from s3t.checkpoint import load_checkpoint, save_checkpoint
from s3t.embed import EmbeddingSet
from s3t.probe import ProbeConfig, lr_wd_grid, probe_splits, protocol_options


def main(dataset: str, percent: int) -> None:
    log = logger(f"probe@{dataset}-{percent}")
    section, seed = params("probe", "seed")
    config = ProbeConfig(
        epochs=section["epochs"], batch_size=section["batch_size"][dataset], lr=section["lr"][dataset],
        weight_decay=section["weight_decay"], warmup_epochs=section["warmup_epochs"], seed=seed,
    )
    try:
        options = protocol_options(
            section["protocol"], grid=lr_wd_grid(section["grid"]["lr"], section["grid"]["weight_decay"]), l2=section["l2"])
    except ValueError as err:
        raise SystemExit(f"params.yaml probe: {err}") from None
    result = {"dataset": dataset, "percent": percent, "protocol": section["protocol"]}
    plots = REPORTS / "probe" / dataset
    plots.mkdir(parents=True, exist_ok=True)
    curves: dict[int, dict] = {}
    for method in METHODS:
        emb = EmbeddingSet.from_state(load_checkpoint(EMBEDDINGS / dataset / f"{method}.pt")["embeddings"])
        probe, metrics, history = probe_splits(
            emb.embeddings, emb.labels, emb.splits, emb.label_set, emb.multilabel, fraction=percent / 100, config=config,
            knn=section["knn"], **options,
        )
        result[method] = metrics
        metric = "pr_auc" if emb.multilabel else "top1"
        x = "l2" if options["l2"] else "epoch"
        for row in history:  # validation metric per epoch (or L2 strength), one column (plot line) per method
            curves.setdefault(row[x], {x: row[x]})[method] = row[metric]
        # The test metrics travel with the probe, so `s3t info` shows them without the metrics file.
        save_checkpoint({"probe": probe.to_state(), "history": history, "metrics": metrics},
                        MODELS / "probes" / dataset / f"{method}_{percent}.pt")
        log.info("%s: %s", method, {k: round(v, 4) for k, v in metrics.items() if isinstance(v, float)})
    _write_csv(plots / f"curve_{percent}.csv", list(curves.values()))
    out = METRICS / dataset
    out.mkdir(parents=True, exist_ok=True)
    (out / f"probe_{percent}.json").write_text(json.dumps(result, indent=2) + "\n")


def _write_csv(path, rows: list[dict]) -> None:
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
