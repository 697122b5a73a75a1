"""Stage validate: great_expectations suites on every dataset's features and on the augmentation draws.

A failed expectation exits non-zero (stopping `dvc repro` before pre-training) after writing
reports/validation/details/<suite>.json and GX's HTML data docs under
reports/validation/details/data_docs/. reports/validation/summary.json (pass/fail per suite)
is what pre-training depends on.
"""

import csv
import json
import sys

import pandas as pd
from _common import FEATURES, GROUP_COLUMNS, RAW, REPORTS, UNLABELED, logger, params

from s3t.augment import MusicAugment
from s3t.manifest import label_vocabulary, read_manifest
from s3t.model import ModelConfig
from s3t.validation import (
    PUBLISHED_SPLITS, ValidationError, read_index, sample_augmentation_params, validate_augmentations, validate_features,
    validate_groups,
)


def expected(dataset: str, index) -> tuple[dict | None, set | None]:
    """Published split sizes (less the files the featurizer rejected, which it reports) and the label set."""
    manifest = RAW / dataset / "manifest.csv"
    if not manifest.is_file():
        return None, None
    rows = read_manifest(manifest)
    counts = dict(PUBLISHED_SPLITS[dataset]) if dataset in PUBLISHED_SPLITS else {}
    if not counts:  # the generated corpus: its own manifest is the published list
        for row in rows:
            counts[row.split] = counts.get(row.split, 0) + 1
    elif len(rows) != sum(counts.values()):  # tracks the loader skipped (FMA's 3 without audio)
        for split in counts:
            counts[split] = sum(r.split == split for r in rows)
    return counts, set(label_vocabulary(rows))


def groups(dataset: str) -> pd.DataFrame:
    """path, split, group of every task clip (the manifest) and every pre-training clip (split `unlabeled`)."""
    root = RAW / dataset
    rows = read_manifest(root / "manifest.csv", group_column=GROUP_COLUMNS[dataset])
    records = [(r.path, r.split, r.group) for r in rows]
    if (root / f"{UNLABELED}.csv").is_file():
        with (root / f"{UNLABELED}.csv").open(newline="", encoding="utf-8") as fh:
            records += [(r["path"], UNLABELED, r[GROUP_COLUMNS[dataset]]) for r in csv.DictReader(fh)]
    return pd.DataFrame(records, columns=["path", "split", "group"])


def main() -> None:
    log = logger("validate")
    datasets, augment, cqt, preprocessor, validate = params("datasets", "augment", "cqt", "preprocessor", "validate")
    out = REPORTS / "validation" / "details"
    summary, failures = {}, []
    for dataset in datasets:
        index = read_index(FEATURES / dataset / "index.csv")
        splits, labels = expected(dataset, index)
        try:
            report = validate_features(
                index, dataset=dataset, expected_splits=splits, label_set=labels, n_bins=cqt["n_bins"],
                out_dir=out, suite=f"features_{dataset}",
            )
            summary[report.suite] = report.success
        except ValidationError as err:
            failures.append(str(err))
            summary[f"features_{dataset}"] = False
        checks = []
        if (FEATURES / dataset / UNLABELED / "index.csv").is_file():
            checks.append((f"features_{dataset}_{UNLABELED}", lambda name: validate_features(
                read_index(FEATURES / dataset / UNLABELED / "index.csv"), dataset=dataset, expected_splits=None,
                label_set=None, labeled=False, n_bins=cqt["n_bins"], out_dir=out, suite=name)))
        if dataset in GROUP_COLUMNS:
            checks.append((f"groups_{dataset}", lambda name: validate_groups(
                groups(dataset), dataset=dataset, out_dir=out, suite=name)))
        for name, check in checks:
            try:
                summary[name] = check(name).success
            except ValidationError as err:
                failures.append(str(err))
                summary[name] = False
    frames = ModelConfig(preprocessor=preprocessor["name"], input_size=preprocessor["input_size"]).build_preprocessor().frames
    music_augment = MusicAugment(out_frames=frames, **augment)
    draws = sample_augmentation_params(music_augment, validate["augment_draws"], n_bins=cqt["n_bins"], frames=frames)
    try:
        report = validate_augmentations(
            draws, augment=music_augment, out_dir=out, n_bins=cqt["n_bins"], frames=frames,
            tolerance_sigmas=validate["tolerance_sigmas"],
        )
        summary[report.suite] = report.success
    except ValidationError as err:
        failures.append(str(err))
        summary["augmentations"] = False
    # Only pass/fail per suite: deterministic, so re-validating unchanged data never re-runs pre-training.
    (REPORTS / "validation" / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    if failures:
        sys.exit("\n\n".join(failures))
    log.info("all suites passed: %s; data docs in %s", ", ".join(summary), out / "data_docs" / "index.html")


if __name__ == "__main__":
    main()
