"""Stage cv@<dataset>: cross-validation by track over the train + valid clips -> metrics/<dataset>/cv.json.

For choosing settings without reading the test split (s3t.evaluation): the train and valid clips
are cut into `evaluation.folds` folds by track, and every one of them is scored once by the probe
protocol of `probe` trained on the other folds (the next fold selecting its setting and k). Rows:
S3T, Random-Init and the hand-crafted statistics, each top-1 (linear and k-NN) with its 95 %
interval, and the paired intervals of S3T minus Random-Init and S3T minus hand-crafted. The
Supervised row is not scored here: its encoder learned the train split's labels (s3t.evaluation)."""

import sys

from _common import EMBEDDINGS, METRICS, logger, params, probe_protocol, tracks, write_json, write_scores

from s3t.checkpoint import load_checkpoint
from s3t.embed import EmbeddingSet
from s3t.evaluation import cross_validated_rows, summary

CV_METHODS = ("s3t", "random_init", "handcrafted")


def main(dataset: str) -> None:
    log = logger(f"cv@{dataset}")
    section, evaluation, seed = params("probe", "evaluation", "seed")
    config, options = probe_protocol(section, dataset, seed)
    sets = {m: EmbeddingSet.from_state(load_checkpoint(EMBEDDINGS / dataset / f"{m}.pt")["embeddings"]) for m in CV_METHODS}
    reference = sets["s3t"]
    if reference.multilabel:
        sys.exit(f"cv@{dataset}: cross-validation by track scores single-label tasks; {dataset} is multi-label")
    keep = [i for i, split in enumerate(reference.splits) if split in ("train", "valid")]
    groups = tracks(dataset, reference.ids)
    result = {"dataset": dataset, "protocol": section["protocol"], **cross_validated_rows(
        {m: s.embeddings[keep] for m, s in sets.items()}, [reference.labels[i] for i in keep], [groups[i] for i in keep],
        reference.label_set, folds=evaluation["folds"], n_resamples=evaluation["resamples"], config=config, **options)}
    write_scores(log, METRICS / dataset / "cv.json", result)
    write_json(METRICS / dataset / "summary_cv.json", summary(result))  # what `dvc metrics show` shows


if __name__ == "__main__":
    main(sys.argv[1])
