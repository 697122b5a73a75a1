"""Check that the soundtrack cutter's clips decoded by part (s3t.datasets.soundtracks._cut_track) equal, sample for
sample, the same clips cut from the whole decoded track. Runs on a cut dataset (after `dvc repro` or `make run`).

For every ``--every``-th task track outside the pre-training pool (those are the tracks cut part by part), decode
the whole track, cut each of its task clips from it, write it as 16-bit FLAC in memory as the cutter does, and
compare the integers with the clip on disk. Prints the number of clips compared and how many differ.

    python bench/check_clip_parts.py [--root data/raw/soundtracks] [--every 9]
"""

from __future__ import annotations

import argparse
import csv
import io
from collections import defaultdict
from pathlib import Path

import numpy as np
import soundfile as sf

from s3t.audio import load_audio


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default="data/raw/soundtracks")
    parser.add_argument("--every", type=int, default=9)
    args = parser.parse_args()
    root = Path(args.root)
    with (root / "unlabeled.csv").open(newline="") as fh:
        pool = {row["track"] for row in csv.DictReader(fh)}
    tracks = defaultdict(list)
    with (root / "manifest.csv").open(newline="") as fh:
        for row in csv.DictReader(fh):
            if row["track"] not in pool:
                tracks[row["track"]].append(row)
    compared = differ = 0
    for track, rows in list(tracks.items())[:: args.every]:
        whole = load_audio(root / "tracks" / track, 22050)
        for row in rows:
            piece = whole[round(float(row["start_s"]) * 22050) : round(float(row["end_s"]) * 22050)]
            buffer = io.BytesIO()
            sf.write(buffer, piece, 22050, format="FLAC", subtype="PCM_16")
            buffer.seek(0)
            expected, _ = sf.read(buffer, dtype="int16")
            found, _ = sf.read(root / row["path"], dtype="int16")
            compared += 1
            differ += not np.array_equal(expected, found)
    print(f"{len(tracks)} task tracks outside the pool; {compared} clips of every {args.every}th compared: {differ} differ")


if __name__ == "__main__":
    main()
