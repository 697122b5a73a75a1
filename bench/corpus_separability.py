"""How separable are the genres of the generated corpus (s3t.corpus) with simple features?

Generates (or reuses) a small corpus, then cross-validates two logistic regressions:

  (a) global cues only: a librosa.beat tempo estimate, mean RMS and mean spectral centroid;
  (b) clip statistics: mean and standard deviation over time of a log-magnitude CQT
      (84 bins, 12 per octave, hop 512, the paper's input) and of 20 MFCCs.

The corpus is meant to make (a) clearly imperfect (no single global cue gives the genre
away) and (b) clearly better (genres differ in instrumentation, register and rhythm).
Also reports generation speed. Usage:

    .venv/bin/python bench/corpus_separability.py --clips-per-genre 20 --workers 2
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

# Runs from a checkout even where the editable install does not expose s3t.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def clip_features(path: str) -> tuple[np.ndarray, np.ndarray]:
    """(global cues (3,), CQT+MFCC mean/std statistics (208,)) of one audio file."""
    import librosa

    y, sr = librosa.load(path, sr=22050, mono=True)
    tempo, _ = librosa.beat.beat_track(y=y, sr=sr)
    rms = librosa.feature.rms(y=y)[0]
    centroid = librosa.feature.spectral_centroid(y=y, sr=sr)[0]
    cues = np.array([float(np.atleast_1d(tempo)[0]), rms.mean(), centroid.mean()])
    cqt = librosa.amplitude_to_db(np.abs(librosa.cqt(y, sr=sr, hop_length=512, n_bins=84, bins_per_octave=12)))
    mfcc = librosa.feature.mfcc(y=y, sr=sr, n_mfcc=20)
    stats = np.concatenate([cqt.mean(1), cqt.std(1), mfcc.mean(1), mfcc.std(1)])
    return cues, stats


def cross_validate(x: np.ndarray, y: np.ndarray, c: float, folds: int, seed: int) -> tuple[float, float, np.ndarray]:
    """Mean and std of stratified k-fold accuracy, and the summed confusion matrix."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import confusion_matrix
    from sklearn.model_selection import StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    scores, confusion = [], np.zeros((len(np.unique(y)),) * 2, dtype=int)
    for train, test in StratifiedKFold(folds, shuffle=True, random_state=seed).split(x, y):
        model = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=5000))
        model.fit(x[train], y[train])
        predicted = model.predict(x[test])
        scores.append(float(np.mean(predicted == y[test])))
        confusion += confusion_matrix(y[test], predicted, labels=np.unique(y))
    return float(np.mean(scores)), float(np.std(scores)), confusion


def main(argv: list[str] | None = None) -> None:
    from s3t.corpus import GENRES, generate_corpus
    from s3t.manifest import read_manifest

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="/tmp/s3t-corpus-separability", help="corpus folder (reused if present)")
    parser.add_argument("--clips-per-genre", type=int, default=20)
    parser.add_argument("--genres", nargs="+", default=list(GENRES))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--folds", type=int, default=5)
    args = parser.parse_args(argv)

    print("command:", shlex.join([sys.executable, *sys.argv]) if argv is None else shlex.join(argv))
    out = Path(args.out)
    before = len(list(out.glob("audio/*/*.wav")))
    start = time.perf_counter()
    manifest = generate_corpus(out, args.clips_per_genre, seed=args.seed, genres=args.genres,
                               seconds=args.seconds, workers=args.workers)
    elapsed = time.perf_counter() - start
    rows = read_manifest(manifest)
    made = len(list(out.glob("audio/*/*.wav"))) - before
    if made > 0:
        print(f"generated {made} clips of {args.seconds:g} s in {elapsed:.1f} s wall with {args.workers} worker(s): "
              f"{elapsed * args.workers / made:.2f} s per clip per core")
    else:
        print(f"reused {len(rows)} clips already in {out}")

    start = time.perf_counter()
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        features = list(pool.map(clip_features, [row.path for row in rows], chunksize=4))
    print(f"features of {len(rows)} clips in {time.perf_counter() - start:.1f} s")
    cues = np.stack([f[0] for f in features])
    stats = np.stack([f[1] for f in features])
    labels = np.array([row.labels[0] for row in rows])
    names = sorted(set(labels))

    chance = max(np.mean(labels == g) for g in names)
    acc_a, std_a, _ = cross_validate(cues, labels, c=1.0, folds=args.folds, seed=args.seed)
    acc_b, std_b, confusion = cross_validate(stats, labels, c=0.1, folds=args.folds, seed=args.seed)
    print(f"\n{len(names)} genres x {len(rows) // len(names)} clips, {args.folds}-fold stratified CV, "
          "logistic regression on standardised features")
    print(f"chance (majority class)           : {chance:.3f}")
    print(f"(a) tempo + RMS + centroid (3)    : {acc_a:.3f} +- {std_a:.3f}")
    print(f"(b) CQT + MFCC mean/std ({stats.shape[1]})     : {acc_b:.3f} +- {std_b:.3f}")
    for name, column in zip(("tempo", "RMS", "centroid"), cues.T):
        single, _, _ = cross_validate(column[:, None], labels, c=1.0, folds=args.folds, seed=args.seed)
        print(f"    single cue {name:<9}: {single:.3f}")
    print("\nconfusion of (b), rows = true genre:")
    print(" " * 10 + " ".join(f"{n[:5]:>5}" for n in names))
    for name, row in zip(names, confusion):
        print(f"{name:<10}" + " ".join(f"{v:>5d}" for v in row))


if __name__ == "__main__":
    main()
