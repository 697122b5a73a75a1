"""Tests for s3t.validation: GX suites over the feature index and the augmentation draws."""

from __future__ import annotations

import json
import math
import socket
import subprocess
import sys

import numpy as np
import pytest
import torch

from s3t.augment import MusicAugment
from s3t.validation import (
    INDEX_COLUMNS,
    LOG_CQT_RANGE,
    PUBLISHED_SPLITS,
    ValidationError,
    expected_split_counts,
    flatten_augmentation_params,
    read_index,
    sample_augmentation_params,
    validate_augmentations,
    validate_features,
    validate_groups,
)

pd = pytest.importorskip("pandas")
pytest.importorskip("great_expectations")

SPLIT_SIZES = {"train": 6, "valid": 3, "test": 3}
TAGS = {"rock", "pop", "jazz", "guitar"}


def good_index() -> pd.DataFrame:
    """12 clips of a labeled toy dataset, consistent with every expectation."""
    rng = np.random.default_rng(0)
    rows, i = [], 0
    for split, n in SPLIT_SIZES.items():
        for _ in range(n):
            frames = int(rng.integers(1, 20))
            mean = float(rng.uniform(-8, -2))
            rows.append(
                {
                    "clip_id": f"{i:06d}",
                    "dataset": "toy",
                    "split": split,
                    "label": ["rock|guitar", "jazz", "", "pop|rock"][i % 4],
                    "path": f"/data/toy/{i:06d}.wav",
                    "duration_s": frames * 2.32,
                    "frames": frames,
                    "shard": f"shards/shard-{i // 5:05d}.npy",
                    "offset": (i % 5) * 20,
                    "mean": mean,
                    "std": float(rng.uniform(0.5, 3)),
                    "min": -13.8,
                    "max": mean + 4.0,
                }
            )
            i += 1
    return pd.DataFrame(rows)[list(INDEX_COLUMNS)]


def check(index: pd.DataFrame, out_dir, **kwargs):
    args = {"dataset": "toy", "expected_splits": SPLIT_SIZES, "label_set": TAGS, "n_bins": 84, "out_dir": out_dir}
    return validate_features(index, **{**args, **kwargs})


def test_import_needs_neither_pandas_nor_gx():
    code = (
        "import sys; sys.modules['pandas'] = None; sys.modules['great_expectations'] = None; "
        "import s3t.validation as v; print(v.PUBLISHED_SPLITS['gtzan']['test'])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "290"


def test_good_index_passes_and_writes_json_and_data_docs(tmp_path):
    report = check(good_index(), tmp_path)
    assert report.success and not report.failures
    assert report.json_path == tmp_path / "features_toy.json"
    summary = json.loads(report.json_path.read_text())
    assert summary["success"] is True and summary["failed"] == []
    assert summary["gx_result"]["success"] is True
    assert len(summary["gx_result"]["results"]) == len(report.results)
    assert summary["meta"]["n_bins"] == 84
    # every count expectation ran on its split and saw the expected rows
    counts = {
        r["kwargs"]["row_condition"]: r["observed"]
        for r in report.results
        if r["expectation"] == "expect_table_row_count_to_equal"
    }
    assert counts == {f"split == '{s}'": n for s, n in SPLIT_SIZES.items()}
    assert report.html_path == tmp_path / "data_docs" / "index.html"
    html = report.html_path.read_text()
    assert "features_toy" in html
    assert list((tmp_path / "data_docs" / "validations" / "features_toy").rglob("*.html"))


def _dup_id(df):
    df.loc[1, "clip_id"] = df.loc[0, "clip_id"]


def _two_splits(df):
    # the same file indexed again under the test split (the count of test rises too)
    df.loc[len(df)] = df.loc[0].to_dict() | {"split": "test", "clip_id": "leak"}


def _wrong_count(df):
    df.loc[11, "split"] = "valid"


def _nan_stat(df):
    df.loc[4, "std"] = math.nan


def _out_of_range(df):
    df.loc[5, "max"] = 40.0


def _unknown_label(df):
    df.loc[2, "label"] = "rock|polka"


def _zero_frames(df):
    df.loc[3, "frames"] = 0


@pytest.mark.parametrize(
    "fault, named",
    [
        (_dup_id, "clip_id is unique: expect_column_values_to_be_unique(column='clip_id') failed: 2 of 12"),
        (_two_splits, "no clip is in two splits"),
        (
            _wrong_count,
            "test split has the expected 3 clips: "
            "expect_table_row_count_to_equal(value=3, row_condition=\"split == 'test'\") failed: observed 2",
        ),
        (_nan_stat, "no null std"),
        (_out_of_range, "clip max is finite and in [-14.0, 5.0]"),
        (_unknown_label, "every '|'-separated tag is in the label set"),
        (_zero_frames, "every clip has >= 1 frame"),
    ],
)
def test_each_fault_fails_and_is_named(tmp_path, fault, named):
    index = good_index()
    fault(index)
    with pytest.raises(ValidationError) as err:
        check(index, tmp_path)
    message = str(err.value)
    assert named in message
    if fault is _two_splits:
        assert "no audio file is indexed twice" in message
    failed = err.value.report.failures
    assert all(line["message"] in message for line in failed)
    assert len(message.splitlines()) == len(failed) + 2  # header + one line each + paths
    assert json.loads((tmp_path / "features_toy.json").read_text())["success"] is False


def test_fault_message_points_at_the_bad_rows(tmp_path):
    index = good_index()
    _zero_frames(index)
    report = check(index, tmp_path, raise_on_failure=False)
    (failure,) = report.failures
    assert failure["unexpected_count"] == 1
    assert failure["unexpected_examples"] == [{"frames": 0, "clip_id": "000003"}]


def test_missing_column_is_reported_not_crashed(tmp_path):
    report = check(good_index().drop(columns=["std"]), tmp_path, raise_on_failure=False)
    assert [r["description"] for r in report.failures] == ["required column std exists"]


def test_index_csv_round_trip_keeps_ids_and_empty_labels(tmp_path):
    index = good_index()
    index.to_csv(tmp_path / "index.csv", index=False)
    back = read_index(tmp_path / "index.csv")
    assert back["clip_id"].tolist() == index["clip_id"].tolist()  # leading zeros kept
    assert (back["label"] == "").sum() == 3  # empty labels stay ""
    assert check(back, tmp_path).success
    # a naive read turns ids into ints and "" into NaN: reported, not silently accepted
    naive = pd.read_csv(tmp_path / "index.csv")
    with pytest.raises(ValidationError, match="clip_id is text"):
        check(naive, tmp_path)


def test_unlabeled_index_needs_empty_split_and_label(tmp_path):
    index = good_index().assign(split="", label="")
    assert check(index, tmp_path, expected_splits=None, label_set=None).success
    index.loc[0, "split"] = "train"
    with pytest.raises(ValidationError, match="unlabeled rows have split ''"):
        check(index, tmp_path, expected_splits=None, label_set=None)


def test_expected_split_counts_subtracts_skipped_tracks():
    assert expected_split_counts("gtzan") == PUBLISHED_SPLITS["gtzan"]
    counts = expected_split_counts("fma_small", {"train": 2, "test": 1})
    assert counts == {"train": 6398, "valid": 800, "test": 799}
    assert PUBLISHED_SPLITS["fma_small"]["train"] == 6400  # the table itself is untouched
    with pytest.raises(ValueError, match="cannot skip"):
        expected_split_counts("gtzan", {"train": 444})


def test_log_cqt_range_bounds_a_real_cqt():
    from s3t.cqt import CQT

    sr = 22050
    t = torch.arange(2 * sr) / sr
    square = torch.sign(torch.sin(2 * math.pi * 55 * t))  # full scale, energy-rich low bins
    signals = torch.stack([square, torch.zeros_like(t), torch.rand(2 * sr) * 2 - 1])
    spec = CQT()(signals)
    assert LOG_CQT_RANGE[0] <= float(spec.min()) and float(spec.max()) <= LOG_CQT_RANGE[1]
    assert float(spec[1].max()) == pytest.approx(math.log(1e-6), abs=1e-4)  # silence sits on the floor


def test_validation_makes_no_network_connection(tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError(f"network connection attempted: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    assert check(good_index(), tmp_path).success


# --------------------------------------------------------------------------- clip groups


def good_groups() -> pd.DataFrame:
    """Clips of 5 tracks: each track's clips in one task split; train tracks also pre-trained on."""
    rows = []
    for track, split in (("t0", "train"), ("t1", "train"), ("t2", "valid"), ("t3", "test"), ("t4", "test")):
        rows += [{"path": f"/toy/{track}/{k}.wav", "split": split, "group": track} for k in range(2)]
    rows += [{"path": "/toy/t0/0.wav", "split": "unlabeled", "group": "t0"}]  # train audio, also pre-trained on
    rows += [{"path": "/extra/x.wav", "split": "unlabeled", "group": "x"}]
    return pd.DataFrame(rows)


def test_clean_groups_pass(tmp_path):
    frame = good_groups()
    before = frame.copy()
    report = validate_groups(frame, dataset="toy", out_dir=tmp_path)
    assert report.success and report.json_path == tmp_path / "groups_toy.json"
    pd.testing.assert_frame_equal(frame, before)  # derived columns go on a copy
    summary = json.loads(report.json_path.read_text())
    assert summary["meta"]["groups"] == 6 and summary["meta"]["rows"] == 12
    described = {r["description"] for r in report.results}
    assert any(d.startswith("no track in two splits of the task") for d in described)
    assert any(d.startswith("no test track is used for pre-training") for d in described)


def _failed(report, prefix):
    return [r for r in report.failures if r["description"].startswith(prefix)]


def test_group_in_train_and_test_fails_naming_the_expectation(tmp_path):
    frame = good_groups()
    frame.loc[len(frame)] = {"path": "/toy/t1/9.wav", "split": "test", "group": "t1"}
    with pytest.raises(ValidationError, match="no track in two splits of the task") as err:
        validate_groups(frame, dataset="toy", out_dir=tmp_path)
    (leak,) = err.value.report.failures
    assert leak["column"] == "splits_sharing_group" and leak["unexpected_count"] == 3  # every row of track t1
    assert {"splits_sharing_group": 2, "group": "t1", "path": "/toy/t1/9.wav"} in leak["unexpected_examples"]
    assert "'group': 't1'" in leak["message"]


def test_test_group_in_pretraining_fails(tmp_path):
    frame = good_groups()
    frame.loc[len(frame)] = {"path": "/toy/t3/0.wav", "split": "unlabeled", "group": "t3"}
    report = validate_groups(frame, dataset="toy", out_dir=tmp_path, raise_on_failure=False)
    assert [r["column"] for r in report.failures] == ["test_group_in_pretraining"]
    (failure,) = _failed(report, "no test track is used for pre-training")
    assert failure["unexpected_count"] == 3  # two test clips and the unlabeled one of track t3


def test_empty_or_null_group_fails_without_a_false_leak(tmp_path):
    frame = good_groups()
    frame.loc[0, "group"] = ""
    frame.loc[6, "group"] = None  # a test clip: pooled with row 0 it would look like a train/test leak
    report = validate_groups(frame, dataset="toy", out_dir=tmp_path, raise_on_failure=False)
    assert sorted(r["description"] for r in report.failures) == [
        "no empty group (every clip names its track)",
        "no null group",
    ]
    with pytest.raises(ValidationError, match="no empty group"):
        validate_groups(frame, dataset="toy", out_dir=tmp_path, suite="groups_again")


def test_unknown_split_and_missing_column_are_reported(tmp_path):
    frame = good_groups()
    frame.loc[0, "split"] = "pretrain"
    report = validate_groups(frame, dataset="toy", out_dir=tmp_path, raise_on_failure=False)
    assert [r["column"] for r in report.failures] == ["split"]
    no_group = good_groups().drop(columns=["group"])
    report = validate_groups(no_group, dataset="toy", out_dir=tmp_path, raise_on_failure=False)
    assert [r["description"] for r in report.failures] == ["required column group exists"]


# --------------------------------------------------------------------------- augmentations


@pytest.fixture(scope="module")
def augment():
    return MusicAugment(out_frames=32)  # T - 1 > 2W, so time warping can apply


@pytest.fixture(scope="module")
def params(augment):
    return sample_augmentation_params(augment, 1000, n_bins=84, seed=0)


def test_flatten_has_one_row_per_draw_per_view(params):
    df = flatten_augmentation_params(params)
    assert len(df) == 2000 and df["view"].value_counts().to_dict() == {"q": 1000, "k": 1000}
    q = df[df["view"] == "q"]
    np.testing.assert_allclose(q["crop_ratio"].to_numpy(), params["crop.ratio"][:, 0].numpy())
    np.testing.assert_array_equal(q["freq_mask_widths_4"].to_numpy(), params["q.freq_mask.widths"][:, 4].numpy())
    assert set(df["shift_abs_steps"]) <= set(range(11))


def test_real_augmentation_draws_pass(tmp_path, params, augment):
    report = validate_augmentations(params, augment=augment, out_dir=tmp_path)
    assert report.success
    rates = {
        r["column"]: r["observed"] for r in report.results if r["expectation"] == "expect_column_mean_to_be_between"
    }
    assert set(rates) == {"freq_mask_applied", "time_mask_applied", "time_warp_applied", "shift_applied"}
    assert abs(rates["freq_mask_applied"] - 0.5) < 0.045 and abs(rates["shift_applied"] - 0.4) < 0.045
    assert (tmp_path / "augmentations.json").is_file() and report.html_path.is_file()


def _tampered(params, key, edit):
    out = {k: v.clone() for k, v in params.items()}
    edit(out[key])
    return out


def test_tampered_augmentation_draws_fail_readably(tmp_path, params, augment):
    applied = params["q.freq_mask.applied"]
    row = int(torch.nonzero(applied)[0])

    def ratio(t):
        t[7, 0] = 0.95

    def width(t):
        t[row, 0] = 40

    def rate(t):
        t[: int(0.9 * len(t))] = True

    tampered = _tampered(params, "crop.ratio", ratio)
    tampered = _tampered(tampered, "q.freq_mask.widths", width)
    tampered = _tampered(tampered, "k.freq_mask.applied", rate)
    with pytest.raises(ValidationError) as err:
        validate_augmentations(tampered, augment=augment, out_dir=tmp_path)
    message = str(err.value)
    lines = message.splitlines()
    ratio_line = next(line for line in lines if "crop ratio in [0.1, 0.9]" in line)
    assert "1 of 2000 rows unexpected" in ratio_line and "0.95" in ratio_line
    width_line = next(line for line in lines if "kept freq_mask width 0 in [5, 30]" in line)
    assert "'freq_mask_widths_0': 40" in width_line and f"'draw': {row}" in width_line
    rate_line = next(line for line in lines if "freq_mask applied at rate p=0.5" in line)
    assert "expect_column_mean_to_be_between(column='freq_mask_applied'" in rate_line
    assert "observed 0.7" in rate_line  # (0.9 + ~0.5) / 2 pooled over both views
    assert "time_warp applied" not in message  # untouched transforms still pass


def test_rate_tolerance_follows_the_configured_p(tmp_path, params, augment):
    report = validate_augmentations(params, augment=augment, out_dir=tmp_path, p={"shift": 0.8}, raise_on_failure=False)
    assert [r["column"] for r in report.failures] == ["shift_applied"]
    with pytest.raises(ValueError, match="unknown transforms"):
        validate_augmentations(params, augment=augment, out_dir=tmp_path, p={"pitch": 0.5})


def test_mixing_draws_are_checked_when_mixing_is_on(tmp_path):
    augment = MusicAugment(out_frames=32, mix_p=0.5, mix_max_ratio=0.3)
    params = sample_augmentation_params(augment, 1000, n_bins=84, seed=1)
    report = validate_augmentations(params, augment=augment, out_dir=tmp_path)
    assert report.success
    checked = {r["column"] for r in report.results}
    assert {"mix_applied", "mix_ratio"} <= checked

    def too_strong(t):
        t[int(torch.nonzero(params["k.mix.applied"])[0])] = 0.35

    tampered = _tampered(params, "k.mix.ratio", too_strong)
    report = validate_augmentations(tampered, augment=augment, out_dir=tmp_path, raise_on_failure=False)
    assert [r["column"] for r in report.failures] == ["mix_ratio"]
