"""Linear-probe settings on one dataset's embeddings: test and valid top-1 per method and setting.

Reads data/embeddings/<dataset>/{s3t,random_init,supervised}.pt written by the pipeline and
trains the paper's probe (AdamW, cosine with warm-up, wd 0.05) with several batch sizes and
learning rates. Settings are meant to be chosen by the S3T probe's VALID accuracy; test is
printed so the choice can be audited, not to choose by. Also prints a converged reference:
scikit-learn's L2 logistic regression (lbfgs) on the same standardised embeddings.

    python bench/probe_sweep.py --dataset corpus
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from s3t.checkpoint import load_checkpoint
from s3t.embed import EmbeddingSet
from s3t.probe import ProbeConfig, probe_splits

SETTINGS = [(32, 1e-3, 50), (8, 1e-3, 50), (16, 3e-3, 50), (8, 3e-3, 100), (32, 1e-2, 50)]
METHODS = ("s3t", "random_init", "supervised")


def logistic_regression(emb: EmbeddingSet, split: str) -> float:
    x = emb.embeddings.numpy()
    y = np.array([labels[0] for labels in emb.labels])
    splits = np.array(emb.splits)
    scaler = StandardScaler().fit(x[splits == "train"])
    clf = LogisticRegression(C=0.1, max_iter=3000).fit(scaler.transform(x[splits == "train"]), y[splits == "train"])
    return clf.score(scaler.transform(x[splits == split]), y[splits == split])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="corpus")
    args = parser.parse_args()
    root = Path("data/embeddings") / args.dataset
    embeddings = {m: EmbeddingSet.from_state(load_checkpoint(root / f"{m}.pt")["embeddings"]) for m in METHODS}
    print("batch lr     epochs | " + " | ".join(f"{m}: test/valid (10% test)" for m in METHODS))
    for batch, lr, epochs in SETTINGS:
        cells = []
        for method, emb in embeddings.items():
            config = ProbeConfig(batch_size=batch, lr=lr, epochs=epochs)
            args_ = (emb.embeddings, emb.labels, emb.splits, emb.label_set, emb.multilabel)
            _, full, _ = probe_splits(*args_, fraction=1.0, config=config)
            _, tenth, _ = probe_splits(*args_, fraction=0.1, config=config)
            cells.append(f"{full['top1']:.3f}/{full['valid']['top1']:.3f} ({tenth['top1']:.3f})")
        print(f"{batch:5d} {lr:.0e} {epochs:6d} | " + " | ".join(cells))
    refs = " | ".join(f"{m}: {logistic_regression(e, 'test'):.3f}/{logistic_regression(e, 'valid'):.3f}" for m, e in embeddings.items())
    print(f"sklearn logistic regression (C=0.1), test/valid | {refs}")


if __name__ == "__main__":
    main()
