"""Tests for s3t.manifest: the CSV contract (columns by name, extra columns, group column, BOM)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from s3t.manifest import (
    ManifestError,
    ManifestRow,
    dataset_recordings,
    is_multilabel,
    read_manifest,
    read_recordings,
    write_manifest,
)


def write_csv(path, text: str, encoding: str = "utf-8"):
    path.write_text(text, encoding=encoding, newline="")
    return path


def test_extra_columns_are_ignored_and_rows_match_a_plain_manifest(tmp_path):
    plain_text = "path,label,split\na.wav,rock,train\nb.wav,jazz|pop,test\n"
    plain = read_manifest(write_csv(tmp_path / "plain.csv", plain_text))
    rich = read_manifest(
        write_csv(
            tmp_path / "rich.csv",
            "track,path,artist,label,start_s,split\n"
            "t1,a.wav,Ann,rock,0.0,train\n"
            't2,b.wav,"Bo, Jr",jazz|pop,30,test\n',  # a quoted comma stays one field
        )
    )
    assert rich == plain
    assert rich[1] == ManifestRow(str((tmp_path / "b.wav").resolve()), ("jazz", "pop"), "test")
    assert all(row.group == "" for row in rich)


def test_required_columns_in_another_order(tmp_path):
    rows = read_manifest(write_csv(tmp_path / "m.csv", "split,label,path\nvalid,rock|pop,x/a.wav\ntest,,x/b.wav\n"))
    assert [(r.path, r.labels, r.split) for r in rows] == [
        (str((tmp_path / "x" / "a.wav").resolve()), ("rock", "pop"), "valid"),
        (str((tmp_path / "x" / "b.wav").resolve()), (), "test"),
    ]


def test_byte_order_mark_before_the_header_is_accepted(tmp_path):
    path = write_csv(tmp_path / "m.csv", "path,label,split\na.wav,rock,train\n", encoding="utf-8-sig")
    assert path.read_bytes().startswith(b"\xef\xbb\xbfpath")
    assert read_manifest(path) == [ManifestRow(str((tmp_path / "a.wav").resolve()), ("rock",), "train")]


def test_missing_required_column_names_missing_and_found_columns(tmp_path):
    path = write_csv(tmp_path / "m.csv", "file,label,track\na.wav,rock,t1\n")
    with pytest.raises(ManifestError) as err:
        read_manifest(path)
    message = str(err.value)
    assert "lacks the column(s) path, split" in message and "found: file, label, track" in message
    assert "\n" not in message


def test_missing_group_column_lists_the_header(tmp_path):
    path = write_csv(tmp_path / "m.csv", "path,label,split,artist\na.wav,rock,train,Ann\n")
    expected = r"group column 'track' is not in the header; its columns are path, label, split, artist"
    with pytest.raises(ManifestError, match=expected):
        read_manifest(path, group_column="track")


def test_empty_group_value_names_the_line(tmp_path):
    path = write_csv(tmp_path / "m.csv", "path,label,split,track\na.wav,rock,train,t1\nb.wav,rock,train,  \n")
    with pytest.raises(ManifestError, match=r"m\.csv:3: empty 'track' \(the group column\)"):
        read_manifest(path, group_column="track")
    # without a group column the same file is fine
    assert len(read_manifest(path)) == 2


def test_group_in_two_splits_names_group_and_splits(tmp_path):
    text = (
        "path,label,split,track\n"
        "a0.wav,rock,train,pkg/a.ogg\n"
        "b0.wav,jazz,train,pkg/b.ogg\n"
        "a1.wav,rock,test,pkg/a.ogg\n"
        "b1.wav,jazz,valid,pkg/b.ogg\n"
        "b2.wav,jazz,test,pkg/b.ogg\n"
        "c0.wav,pop,test,pkg/c.ogg\n"
    )
    path = write_csv(tmp_path / "m.csv", text)
    with pytest.raises(ManifestError) as err:
        read_manifest(path, group_column="track")
    message = str(err.value)
    assert "group 'pkg/a.ogg' is in train and test" in message
    assert "group 'pkg/b.ogg' is in train, valid and test" in message
    assert "pkg/c.ogg" not in message and "put each group in one split" in message
    assert "\n" not in message
    # with every group in one split the same file reads, each row carrying its group
    clean_text = text.replace("test,pkg/a", "train,pkg/a").replace("valid,pkg/b", "train,pkg/b")
    clean = write_csv(tmp_path / "clean.csv", clean_text.replace("test,pkg/b", "train,pkg/b"))
    rows = read_manifest(clean, group_column="track")
    assert [(r.split, r.group) for r in rows] == [
        ("train", "pkg/a.ogg"), ("train", "pkg/b.ogg"), ("train", "pkg/a.ogg"),
        ("train", "pkg/b.ogg"), ("train", "pkg/b.ogg"), ("test", "pkg/c.ogg"),
    ]


def test_leak_message_names_at_most_five_groups(tmp_path):
    lines = ["path,label,split,artist"]
    for g in range(7):
        lines += [f"{g}a.wav,rock,train,artist{g}", f"{g}b.wav,rock,test,artist{g}"]
    path = write_csv(tmp_path / "m.csv", "\n".join(lines) + "\n")
    with pytest.raises(ManifestError) as err:
        read_manifest(path, group_column="artist")
    message = str(err.value)
    assert message.count("is in train and test") == 5 and "(and 2 more)" in message and "7 group(s)" in message


def test_write_read_round_trip_with_group_column_and_extra(tmp_path):
    rows = [
        ManifestRow(str((tmp_path / "clips" / "a0.wav").resolve()), ("rock", "guitar"), "train", "track a"),
        ManifestRow(str((tmp_path / "clips" / "a1.wav").resolve()), ("rock",), "train", "track a"),
        ManifestRow(str((tmp_path / "clips" / "b0.wav").resolve()), (), "test", "track, b"),
    ]
    path = tmp_path / "m.csv"
    extra = {"artist": ["Ann", "Ann", "Bo"], "start_s": ["0", "30", "0"]}
    write_manifest(rows, path, group_column="track", extra=extra)
    assert path.read_text(encoding="utf-8").splitlines()[:2] == [
        "path,label,split,track,artist,start_s",
        "clips/a0.wav,rock|guitar,train,track a,Ann,0",
    ]
    assert read_manifest(path, group_column="track") == rows
    # read without the group column: same clips, no groups
    assert read_manifest(path) == [ManifestRow(r.path, r.labels, r.split) for r in rows]
    assert read_manifest(path, group_column="artist")[2].group == "Bo"


def test_write_refuses_what_read_would_refuse(tmp_path):
    a = ManifestRow(str(tmp_path / "a.wav"), ("rock",), "train", "t1")
    with pytest.raises(ValueError, match="extra column 'artist' has 1 values for 2 rows"):
        write_manifest([a, a], tmp_path / "m.csv", extra={"artist": ["Ann"]})
    with pytest.raises(ValueError, match="distinct"):
        write_manifest([a], tmp_path / "m.csv", group_column="split")
    with pytest.raises(ManifestError, match="group 't1' is in train and test"):
        write_manifest([a, replace(a, split="test")], tmp_path / "m.csv", group_column="track")
    with pytest.raises(ManifestError, match="no group for column 'track'"):
        write_manifest([replace(a, group="")], tmp_path / "m.csv", group_column="track")
    assert not (tmp_path / "m.csv").exists() and not (tmp_path / "m.csv.tmp").exists()


def test_row_with_too_many_fields_names_its_line(tmp_path):
    path = write_csv(tmp_path / "m.csv", "path,label,split,track\na.wav,rock,train,t1\n\nb.wav,rock,pop,train,t2\n")
    expected = r"m\.csv:4: expected 4 fields like the header \(path,label,split,track\), got 5"
    with pytest.raises(ManifestError, match=expected):
        read_manifest(path)


def test_row_values_are_still_checked_with_their_line(tmp_path):
    path = write_csv(tmp_path / "m.csv", "label,path,split\nrock,a.wav,train\nrock,b.wav,holdout\n")
    with pytest.raises(ManifestError, match=r"m\.csv:3: split 'holdout'"):
        read_manifest(path)


def _refusal(tmp_path, text: str) -> str:
    path = tmp_path / "m.csv"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ManifestError) as info:
        read_manifest(path)
    assert "\n" not in str(info.value)
    return str(info.value)


def test_clip_in_train_and_test_is_refused_naming_clip_and_both_splits(tmp_path):
    message = _refusal(tmp_path, "path,label,split\na.wav,x,train\nb.wav,y,train\na.wav,x,test\n")
    assert f"clip {tmp_path / 'a.wav'} is in train (line 2) and in test (line 4)" in message


def test_same_clip_under_two_names_is_one_clip(tmp_path):
    (tmp_path / "real.wav").write_bytes(b"x")
    (tmp_path / "alias.wav").symlink_to("real.wav")
    message = _refusal(tmp_path, "path,label,split\nreal.wav,x,train\nalias.wav,x,test\n")
    assert "real.wav is in train (line 2) and in test (line 3)" in message


def test_duplicated_row_is_refused_naming_both_lines(tmp_path):
    message = _refusal(tmp_path, "path,label,split\na.wav,x,train\nb.wav,y,valid\na.wav,x,train\n")
    assert "listed twice in train (lines 2 and 4)" in message


def test_empty_label_in_a_single_label_manifest_is_refused_naming_the_row(tmp_path):
    message = _refusal(tmp_path, "path,label,split\na.wav,x,train\nb.wav,,train\nc.wav,y,test\n")
    assert message.startswith(f"{tmp_path / 'm.csv'}:3: empty label in a single-label manifest")


def test_empty_label_in_a_tagging_manifest_is_a_clip_without_tags(tmp_path):
    path = tmp_path / "m.csv"
    path.write_text("path,label,split\na.wav,x|y,train\nb.wav,,train\nc.wav,y,test\n")
    rows = read_manifest(path)
    assert [r.labels for r in rows] == [("x", "y"), (), ("y",)] and is_multilabel(rows)


def test_manifest_without_any_label_is_refused(tmp_path):
    assert "no row has a label" in _refusal(tmp_path, "path,label,split\na.wav,,train\nb.wav,,test\n")


def test_symlink_loop_in_a_manifest_is_kept_for_the_decoder_to_report(tmp_path):
    (tmp_path / "loop.wav").symlink_to("loop.wav")
    path = tmp_path / "m.csv"
    path.write_text("path,label,split\nloop.wav,x,train\n")
    assert [r.path for r in read_manifest(path)] == [str(tmp_path / "loop.wav")]


def test_recordings_map_each_listed_file_to_its_track(tmp_path):
    (tmp_path / "a.flac").touch()
    write_csv(tmp_path / "unlabeled.csv", "path,track,start_s\na.flac,album/one.ogg,0\nsub/b.flac,album/one.ogg,30\n")
    got = read_recordings(tmp_path / "unlabeled.csv")
    assert got == {str((tmp_path / "a.flac").resolve()): "album/one.ogg",
                   str((tmp_path / "sub" / "b.flac").resolve()): "album/one.ogg"}
    write_csv(tmp_path / "manifest.csv", "path,label,split,track\nc.flac,x,train,album/two.ogg\n")
    write_csv(tmp_path / "other.csv", "path,track\nd.flac,nowhere\n")  # not one of the dataset's tables
    both = dataset_recordings(tmp_path)
    assert both == {**got, str((tmp_path / "c.flac").resolve()): "album/two.ogg"}
    write_csv(tmp_path / "manifest.csv", "path,label,split\nc.flac,x,train\n")  # no track column: skipped
    assert dataset_recordings(tmp_path) == got
    assert dataset_recordings(tmp_path / "missing") == {}


@pytest.mark.parametrize("text, match", [
    ("path,label\na.flac,x\n", "no 'track' column"),
    ("path,track\na.flac,\n", ":2: empty path or 'track'"),
    ("path,track\na.flac,t,extra\n", ":2: expected 2 fields"),
    ("path,track\na.flac,t\n./a.flac,u\n", ":3: ./a.flac is listed twice"),
])
def test_recordings_table_refusals_name_the_line(tmp_path, text, match):
    write_csv(tmp_path / "r.csv", text)
    with pytest.raises(ManifestError, match=match):
        read_recordings(tmp_path / "r.csv")
    with pytest.raises(ManifestError, match="does not exist"):
        read_recordings(tmp_path / "none.csv")
