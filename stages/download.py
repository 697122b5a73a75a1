"""Stage download@<dataset>: generate the bundled corpus, or fetch and verify a real dataset.

Writes data/raw/<dataset>/ with manifest.csv for labeled datasets. `unlabeled` is the user's
own folder of audio for pre-training, placed by hand in data/raw/unlabeled/.
"""

import sys

from _common import RAW, logger, params

from s3t.audio import find_audio_files
from s3t.corpus import GENRES, generate_corpus
from s3t.datasets import write_dataset_manifest
from s3t.datasets.download import DownloadError, fetch_dataset


def main(dataset: str) -> None:
    log = logger(f"download@{dataset}")
    root = RAW / dataset
    if dataset == "corpus":
        corpus, seed = params("corpus", "seed")
        genres = corpus["genres"] or GENRES
        generate_corpus(root, corpus["clips_per_genre"], seed=seed, genres=genres, seconds=corpus["seconds"], workers=corpus["workers"])
    elif dataset == "unlabeled":
        if not root.is_dir() or not find_audio_files(root):
            sys.exit(f"put your unlabeled pre-training audio (any format, any folder depth) under {root}")
    else:
        try:
            fetch_dataset(dataset, root)
        except DownloadError as err:
            sys.exit(str(err))
        _, skipped = write_dataset_manifest(dataset, root)
        for track in skipped:
            log.info("skipped %s (%s split): %s", track.track_id, track.split, track.reason)
    log.info("%s ready in %s", dataset, root)


if __name__ == "__main__":
    main(sys.argv[1])
