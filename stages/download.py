"""Stage download@<dataset>: generate the bundled corpus, or fetch and verify a real dataset.

Writes data/raw/<dataset>/ with manifest.csv for labeled datasets. `unlabeled` is the user's
own folder of audio for pre-training, placed by hand in data/raw/unlabeled/. `soundtracks`
fetches Debian packages (apt-get download, or .deb files placed in data/raw/soundtracks/downloads/),
extracts and verifies their music and cuts it into the task's clips (manifest.csv) and the
pre-training clips (unlabeled/), leaving out the transfer task's packages; `transfer` fetches those
packages the same way and cuts them into the transfer task's clips, labelled by package.

`python stages/download.py --check soundtracks` only says whether the soundtracks can be fetched
here (exit 0) or not (exit 3, with the reason): `make run` uses it to choose its data.
"""

import sys

from _common import RAW, logger, params

from s3t.audio import find_audio_files
from s3t.corpus import GENRES, generate_corpus
from s3t.datasets import write_dataset_manifest
from s3t.datasets.debian import DebError
from s3t.datasets.download import ArchiveError, DownloadError, fetch_dataset
from s3t.datasets.soundtracks import (fetch_soundtracks, make_clips, pretraining_entries, soundtracks_available,
                                      transfer_entries, transfer_plan)


def main(dataset: str) -> None:
    log = logger(f"download@{dataset}")
    root = RAW / dataset
    if dataset == "corpus":
        corpus, seed = params("corpus", "seed")
        genres = corpus["genres"] or GENRES
        generate_corpus(root, corpus["clips_per_genre"], seed=seed, genres=genres, seconds=corpus["seconds"], workers=corpus["workers"])
    elif dataset in ("soundtracks", "transfer"):
        section, transfer = params("soundtracks", "transfer")
        try:
            if dataset == "soundtracks":
                entries, plan = pretraining_entries(section["pretraining_packages"], transfer["packages"]), None
            else:
                entries = transfer_entries(transfer["packages"])
                plan = transfer_plan(entries, section["clip_seconds"], transfer["clips_per_track"])
        except ValueError as err:
            sys.exit(f"params.yaml transfer: {err}")
        try:
            fetched = fetch_soundtracks(root, entries)
            log.info("tracks: %s", fetched)
            log.info("clips: %s", make_clips(root, entries, clip_seconds=section["clip_seconds"], workers=section["workers"],
                                             plan=plan))
        except (DownloadError, DebError, ArchiveError) as err:
            sys.exit(f"download@{dataset}: {err}")
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
    if sys.argv[1] == "--check":
        section, transfer = params("soundtracks", "transfer")
        ok, why = soundtracks_available(RAW / "soundtracks", pretraining_entries(section["pretraining_packages"],
                                                                                 transfer["packages"]))
        print(why)
        sys.exit(0 if ok else 3)
    main(sys.argv[1])
