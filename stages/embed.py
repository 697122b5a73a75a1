"""Stage embed@<dataset>: clip embeddings from the pre-trained and from a randomly initialised
encoder (the Random-Init baseline) -> data/embeddings/<dataset>/{s3t,random_init}.pt."""

import sys

from _common import EMBEDDINGS, FEATURES, MODELS, device, logger, params

from s3t.checkpoint import save_checkpoint
from s3t.embed import embed_labeled
from s3t.shards import FeatureStore
from s3t.train import load_encoder


def main(dataset: str) -> None:
    log = logger(f"embed@{dataset}")
    section, seed = params("embed", "seed")
    store = FeatureStore(FEATURES / dataset)
    out = EMBEDDINGS / dataset
    out.mkdir(parents=True, exist_ok=True)
    for method, random_init in (("s3t", False), ("random_init", True)):
        encoder = load_encoder(MODELS / "pretrained.pt", random_init=random_init, seed=seed)
        embeddings = embed_labeled(
            encoder, store, ids=store.clip_ids, labels=store.labels, splits=store.splits, method=method,
            batch_size=section["batch_size"], num_segments=section["segments"], device=device(),
        )
        save_checkpoint({"embeddings": embeddings.to_state()}, out / f"{method}.pt")
        log.info("%s: %s", method, tuple(embeddings.embeddings.shape))


if __name__ == "__main__":
    main(sys.argv[1])
