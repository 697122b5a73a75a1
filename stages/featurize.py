"""Stage featurize@<dataset>: decode -> CQT -> compressed log-CQT shards in data/features/<dataset>/.

`featurize.executor` picks how: `local` runs s3t.shards.featurize_to_shards in this process
(with `featurize.workers` decoding processes); `dask` maps the shards over a Dask cluster with
the Prefect flow of flows/featurize.py, on the scheduler at `featurize.dask_address` or on a
LocalCluster of `featurize.dask_workers` processes. Both write the same files.

A dataset with a manifest may also hold pre-training-only audio in data/raw/<dataset>/unlabeled/
(the soundtracks do): it is featurized as an unlabeled store of its own, data/features/<dataset>/unlabeled/.

Paths in the stores' index.csv and rejects.csv are relative to the repository root (files outside
it keep their absolute path), so the features' bytes, and DVC's hashes of them, do not depend on
where the checkout is.

Resumable: an interrupted run continues from its finished shards, whichever executor wrote
them. When the params or the input list changed, the stale shards are removed and the
dataset is featurized again.
"""

import dataclasses
import logging
import os
import shutil
import sys
from pathlib import Path

from _common import FEATURES, RAW, ROOT, UNLABELED, device, logger, params

from s3t.cqt import CQTConfig
from s3t.manifest import read_manifest
from s3t.shards import ClipSource, ShardPlanError, featurize_to_shards, sources_from_folder, sources_from_manifest

EXECUTORS = ("local", "dask")


def _runner(featurize: dict):
    """The featurization function of the configured executor, with its own settings bound."""
    executor = featurize["executor"]
    if executor not in EXECUTORS:
        raise SystemExit(f"featurize.executor is {executor!r}; choose one of {', '.join(EXECUTORS)}")
    if executor == "local":
        return lambda sources, out, cqt, **kw: featurize_to_shards(
            sources, out, cqt, workers=featurize["workers"], **kw
        )
    # Prefect reports usage unless told not to; a pipeline run has no business phoning home.
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per Prefect API call otherwise
    sys.path.insert(0, str(ROOT))  # flows/ sits beside stages/, outside the installed s3t package
    from flows.featurize import featurize_on_dask

    return lambda sources, out, cqt, **kw: featurize_on_dask(
        sources, out, cqt, address=featurize["dask_address"], n_workers=featurize["dask_workers"], **kw
    )


def _from_root(sources: list[ClipSource]) -> list[ClipSource]:
    """The sources with the paths under the repository root made relative to it."""
    return [
        dataclasses.replace(s, path=Path(s.path).relative_to(ROOT).as_posix(), root=str(ROOT))
        if Path(s.path).is_relative_to(ROOT) else s
        for s in sources
    ]


def main(dataset: str) -> None:
    log = logger(f"featurize@{dataset}")
    cqt, featurize = params("cqt", "featurize")
    run = _runner(featurize)
    root = RAW / dataset
    stores = []  # (sources, out folder)
    if (root / "manifest.csv").is_file():
        stores.append((sources_from_manifest(read_manifest(root / "manifest.csv"), dataset), FEATURES / dataset))
        if (root / UNLABELED).is_dir():
            stores.append((sources_from_folder(root / UNLABELED, dataset), FEATURES / dataset / UNLABELED))
    else:
        stores.append((sources_from_folder(root, dataset), FEATURES / dataset))
    kwargs = dict(
        clips_per_shard=featurize["clips_per_shard"], batch_size=featurize["batch_size"],
        min_seconds=featurize["min_seconds"], device=device(),
    )
    for sources, out in stores:
        sources = _from_root(sources)
        try:
            summary = run(sources, out, CQTConfig(**cqt), **kwargs)
        except ShardPlanError as err:
            log.info("%s; starting over", err)
            _clear(out)
            summary = run(sources, out, CQTConfig(**cqt), **kwargs)
        log.info("%s: %s", out.relative_to(FEATURES), {k: v for k, v in summary.items() if not isinstance(v, dict)})


def _clear(out) -> None:
    """Remove a store's files, keeping a nested store (the unlabeled one lives inside the labeled one)."""
    for path in out.iterdir():
        if path.name != UNLABELED:
            shutil.rmtree(path) if path.is_dir() else path.unlink()


if __name__ == "__main__":
    main(sys.argv[1])
