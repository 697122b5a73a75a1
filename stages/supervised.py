"""Stage supervised@<dataset>: the same encoder trained end-to-end on the labeled train split
(our Supervised row) -> models/supervised/<dataset>.pt and data/embeddings/<dataset>/supervised.pt."""

import sys

from _common import EMBEDDINGS, FEATURES, MODELS, device, logger, params
from torch.utils.data import Subset

from s3t.allocator import keep_freed_memory
from s3t.checkpoint import load_checkpoint, save_checkpoint
from s3t.embed import embed_labeled
from s3t.model import ModelConfig
from s3t.probe import encode_targets
from s3t.supervised import SupervisedConfig, train_supervised
from s3t.shards import FeatureStore


def main(dataset: str) -> None:
    log = logger(f"supervised@{dataset}")
    keep_freed_memory()  # as in pre-training (s3t.allocator)
    section, augment, embed, seed = params("supervised", "augment", "embed", "seed")
    model = ModelConfig.from_dict(load_checkpoint(MODELS / "pretrained.pt")["config"]["model"])
    store = FeatureStore(FEATURES / dataset)
    train = [i for i, split in enumerate(store.splits) if split == "train"]
    label_set = sorted({label for labels in store.labels for label in labels})
    multilabel = any(len(labels) != 1 for labels in store.labels)
    targets = encode_targets([store.labels[i] for i in train], label_set, multilabel)
    config = SupervisedConfig(**section, seed=seed, augment=dict(augment))
    encoder, history = train_supervised(
        Subset(store, train), targets, model, config, device=device(),
        on_epoch=lambda row: log.info("epoch %d loss %.4f", row["epoch"], row["loss"]),
    )
    (MODELS / "supervised").mkdir(parents=True, exist_ok=True)
    save_checkpoint(
        {"encoder": encoder.backbone.state_dict(), "config": {"model": model.to_dict()}, "history": history},
        MODELS / "supervised" / f"{dataset}.pt",
    )
    embeddings = embed_labeled(
        encoder, store, ids=store.clip_ids, labels=store.labels, splits=store.splits, method="supervised",
        batch_size=embed["batch_size"], device=device(),
    )
    save_checkpoint({"embeddings": embeddings.to_state()}, EMBEDDINGS / dataset / "supervised.pt")


if __name__ == "__main__":
    main(sys.argv[1])
