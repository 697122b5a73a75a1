"""Stage transfer@<dataset>: the encoders on music pre-training never heard -> metrics/<dataset>/cv.json.

<dataset> (the soundtracks' `transfer`: Debian packages kept out of the pre-training pool, labelled
by package; s3t.datasets.soundtracks) is embedded by the pre-trained encoder (S3T), the same
architecture at random (Random-Init), the Supervised encoder of `transfer.supervised` (trained on
that task's labels, other music) and the hand-crafted statistics, and every clip is scored by
cross-validation by track (s3t.evaluation), each top-1 with its 95 % interval and the paired
intervals of S3T minus Random-Init and S3T minus hand-crafted. The embeddings go to
data/embeddings/<dataset>/."""

import sys

from _common import EMBEDDINGS, FEATURES, METRICS, MODELS, device, logger, params, probe_protocol, tracks, write_json, write_scores

from s3t.checkpoint import save_checkpoint
from s3t.embed import embed_labeled
from s3t.evaluation import cross_validated_rows, summary
from s3t.handcrafted import handcrafted_embeddings
from s3t.shards import FeatureStore
from s3t.train import load_encoder


def main(dataset: str) -> None:
    log = logger(f"transfer@{dataset}")
    section, evaluation, transfer, embed, seed = params("probe", "evaluation", "transfer", "embed", "seed")
    config, options = probe_protocol(section, dataset, seed)
    store = FeatureStore(FEATURES / dataset)
    encoders = {
        "s3t": lambda: load_encoder(MODELS / "pretrained.pt"),
        "random_init": lambda: load_encoder(MODELS / "pretrained.pt", random_init=True, seed=seed),
        "supervised": lambda: load_encoder(MODELS / "supervised" / f"{transfer['supervised']}.pt"),
    }
    out = EMBEDDINGS / dataset
    out.mkdir(parents=True, exist_ok=True)
    x = {}
    for method, encoder in encoders.items():
        emb = embed_labeled(encoder(), store, ids=store.clip_ids, labels=store.labels, splits=store.splits, method=method,
                            batch_size=embed["batch_size"], device=device())
        save_checkpoint({"embeddings": emb.to_state()}, out / f"{method}.pt")
        x[method] = emb.embeddings
    x["handcrafted"] = handcrafted_embeddings(store)
    label_set = sorted({label for labels in store.labels for label in labels})
    result = {"dataset": dataset, "protocol": section["protocol"], "packages": label_set, **cross_validated_rows(
        x, store.labels, tracks(dataset, emb.ids), label_set, folds=evaluation["folds"],
        n_resamples=evaluation["resamples"], config=config, **options)}
    write_scores(log, METRICS / dataset / "cv.json", result)
    write_json(METRICS / dataset / "summary_cv.json", summary(result))  # what `dvc metrics show` shows


if __name__ == "__main__":
    main(sys.argv[1])
