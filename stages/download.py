"""Stage download@<dataset>: generate the bundled corpus, or fetch and verify a real dataset.

Writes data/raw/<dataset>/ with manifest.csv for labeled datasets. `unlabeled` is the user's
own folder of audio for pre-training, placed by hand in data/raw/unlabeled/. `soundtracks`
fetches Debian packages (apt-get download, or .deb files placed in data/raw/soundtracks/downloads/),
extracts and verifies their music and cuts it into the task's clips (manifest.csv) and the
pre-training clips (unlabeled/), leaving out the transfer task's packages; `transfer` fetches those
packages the same way and cuts them into the transfer task's clips, labelled by package. Which task:
`soundtracks.task` pool (s3t.datasets.pool_task: the packages of the pool index with
`soundtracks.min_tracks` tracks, pre-training on `soundtracks.pool_hours` of the pool) or five (the
five-class task of s3t.datasets.soundtracks, with `soundtracks.pretraining_packages`).

`python stages/download.py --check soundtracks` only says whether the soundtracks can be fetched
here (exit 0) or not (exit 3, with the reason): `make run` uses it to choose its data.

Maintenance, not a DVC stage: `python stages/download.py --index-pool OUT.csv [--downloads DIR]`
fetches the Debian pool's packages (s3t.datasets.debian_pool.POOL_PACKAGES; reserved packages are
refused by name before apt-get is called) into DIR (default data/raw/pool/downloads), indexes their
music and writes the pool CSV to OUT.csv, then prints a summary: packages indexed, tracks, hours,
duplicates dropped, packages skipped and why (exit 1 if none could be indexed).
"""

import argparse
import sys
import time

from _common import RAW, logger, params

from s3t.audio import find_audio_files
from s3t.corpus import GENRES, generate_corpus
from s3t.datasets import write_dataset_manifest
from s3t.datasets.debian import DebError
from s3t.datasets.download import ArchiveError, DownloadError, fetch_dataset
from s3t.datasets.pool_task import pool_task_entries, pool_transfer_entries
from s3t.datasets.soundtracks import (fetch_soundtracks, make_clips, pretraining_entries, soundtracks_available,
                                      transfer_entries, transfer_plan)


def soundtrack_entries(section: dict, transfer: dict) -> list:
    """The soundtracks dataset's index entries: the pool task (``soundtracks.task: pool``) or the
    five-class task (``five``)."""
    if section["task"] == "five":
        return pretraining_entries(section["pretraining_packages"], transfer["packages"])
    if section["task"] != "pool":
        raise ValueError(f"soundtracks.task must be pool or five, got {section['task']!r}")
    return pool_task_entries(transfer["packages"], min_tracks=section["min_tracks"], pool_hours=section["pool_hours"])


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
                entries, plan = soundtrack_entries(section, transfer), None
            else:
                entries = transfer_entries(transfer["packages"]) if section["task"] == "five" else \
                    pool_transfer_entries(transfer["packages"])
                plan = transfer_plan(entries, section["clip_seconds"], transfer["clips_per_track"])
        except ValueError as err:
            sys.exit(f"params.yaml soundtracks/transfer: {err}")
        try:
            fetched = fetch_soundtracks(root, entries, workers=section["workers"])
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


POOL_DOWNLOADS = RAW / "pool" / "downloads"


class _EchoLog(list):
    """A log list that also prints each line as it is appended (indexing the pool takes minutes)."""

    def append(self, line: str) -> None:
        super().append(line)
        print(line, flush=True)


def index_pool(argv: list[str]) -> int:
    """``--index-pool OUT.csv [--downloads DIR]``: build, write and summarize the Debian pool's index."""
    from s3t.datasets.debian_pool import POOL_PACKAGES, build_pool_index, pool_totals, write_pool_index

    parser = argparse.ArgumentParser(prog="stages/download.py --index-pool",
                                     description="Fetch and index the Debian music pool (issue 31).")
    parser.add_argument("--index-pool", dest="out", required=True, metavar="OUT.csv", help="the pool CSV to write")
    parser.add_argument("--downloads", default=str(POOL_DOWNLOADS), metavar="DIR",
                        help=f"the folder of .deb files (default {POOL_DOWNLOADS})")
    args = parser.parse_args(argv)
    log = _EchoLog()
    started = time.perf_counter()
    try:
        kept, dropped = build_pool_index(POOL_PACKAGES, args.downloads, log=log)
    except (DownloadError, DebError, ArchiveError) as err:
        print(f"--index-pool: {err}", file=sys.stderr)
        return 1
    write_pool_index(kept, args.out)
    totals = pool_totals(kept)
    skipped = [line for line in log if line.startswith("skipped ")]
    indexed = [line for line in log if line.startswith("indexed ")]
    print(f"\nwrote {args.out} in {time.perf_counter() - started:.0f} s")
    print("package,version,tracks,minutes (after de-duplication across packages)")
    for name, version in POOL_PACKAGES:
        if name in totals:
            print(f"{name},{version},{totals[name][0]},{totals[name][1] / 60:.1f}")
    print(f"packages indexed: {len(indexed)} of {len(POOL_PACKAGES)} ({len(totals)} with tracks)")
    print(f"tracks: {len(kept)}, hours: {sum(t[1] for t in totals.values()) / 3600:.2f}")
    print(f"duplicates dropped: {len(dropped)}")
    for first, copy in dropped:
        print(f"  {copy.track} = {first.track}")
    print(f"packages skipped: {len(skipped)}")
    for line in skipped:
        print(f"  {line}")
    return 0


if __name__ == "__main__":
    if sys.argv[1] == "--index-pool":
        sys.exit(index_pool(sys.argv[1:]))
    if sys.argv[1] == "--check":
        section, transfer = params("soundtracks", "transfer")
        try:
            entries = soundtrack_entries(section, transfer)
        except ValueError as err:
            sys.exit(f"params.yaml soundtracks/transfer: {err}")
        ok, why = soundtracks_available(RAW / "soundtracks", entries)
        print(why)
        sys.exit(0 if ok else 3)
    main(sys.argv[1])
