"""Stage featurize@<dataset>: decode -> CQT -> compressed log-CQT shards in data/features/<dataset>/.

Resumable: an interrupted run continues from its finished shards. When the params or the
input list changed, the stale shards are removed and the dataset is featurized again.
"""

import shutil
import sys

from _common import FEATURES, RAW, device, logger, params

from s3t.cqt import CQTConfig
from s3t.manifest import read_manifest
from s3t.shards import ShardPlanError, featurize_to_shards, sources_from_folder, sources_from_manifest


def main(dataset: str) -> None:
    log = logger(f"featurize@{dataset}")
    cqt, featurize = params("cqt", "featurize")
    root = RAW / dataset
    if (root / "manifest.csv").is_file():
        sources = sources_from_manifest(read_manifest(root / "manifest.csv"), dataset)
    else:
        sources = sources_from_folder(root, dataset)
    out = FEATURES / dataset
    kwargs = dict(
        clips_per_shard=featurize["clips_per_shard"], workers=featurize["workers"],
        batch_size=featurize["batch_size"], min_seconds=featurize["min_seconds"], device=device(),
    )
    try:
        summary = featurize_to_shards(sources, out, CQTConfig(**cqt), **kwargs)
    except ShardPlanError as err:
        log.info("%s; starting over", err)
        shutil.rmtree(out)
        summary = featurize_to_shards(sources, out, CQTConfig(**cqt), **kwargs)
    log.info("%s", {k: v for k, v in summary.items() if not isinstance(v, dict)})


if __name__ == "__main__":
    main(sys.argv[1])
