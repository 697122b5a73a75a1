"""Stage embed@<dataset>: clip embeddings from the pre-trained and from a randomly initialised
encoder (the Random-Init baseline), and the hand-crafted log-CQT statistics of the same features
-> data/embeddings/<dataset>/{s3t,random_init,handcrafted}.pt."""

import sys

from _common import EMBEDDINGS, FEATURES, MODELS, device, logger, params

from s3t.checkpoint import save_checkpoint
from s3t.embed import EmbeddingSet, embed_labeled
from s3t.handcrafted import handcrafted_embeddings
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
            batch_size=section["batch_size"], device=device(),
        )
        save_checkpoint({"embeddings": embeddings.to_state()}, out / f"{method}.pt")
        log.info("%s: %s", method, tuple(embeddings.embeddings.shape))
    reference = embeddings
    handcrafted = EmbeddingSet(
        embeddings=handcrafted_embeddings(store), ids=reference.ids, labels=reference.labels, splits=reference.splits,
        label_set=reference.label_set, multilabel=reference.multilabel, method="handcrafted",
    )
    save_checkpoint({"embeddings": handcrafted.to_state()}, out / "handcrafted.pt")
    log.info("handcrafted: %s", tuple(handcrafted.embeddings.shape))


if __name__ == "__main__":
    main(sys.argv[1])
