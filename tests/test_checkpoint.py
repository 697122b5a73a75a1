import os
import pickle
import stat
import subprocess
import sys
import time

import pytest
import torch

from s3t.checkpoint import (
    FORMAT,
    FORMAT_VERSION,
    KIND_EMBEDDINGS,
    KIND_ENCODER,
    KIND_PROBE,
    STALE_TMP_SECONDS,
    CheckpointError,
    load_checkpoint,
    save_checkpoint,
)


def test_round_trip_keeps_tensors_and_plain_data(tmp_path):
    state = {"w": torch.arange(6.0).view(2, 3), "config": {"K": 16, "name": "swin", "sizes": (2, 2)}, "rng": torch.get_rng_state()}
    save_checkpoint(state, tmp_path / "c.pt")
    back = load_checkpoint(tmp_path / "c.pt")
    assert torch.equal(back["w"], state["w"]) and back["config"] == state["config"]
    assert torch.equal(back["rng"], state["rng"])
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"], "no temporary file is left behind"


def test_arbitrary_objects_are_not_unpickled(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    path = tmp_path / "evil.pt"
    torch.save({"format": "s3t-checkpoint-v1", "x": Evil()}, path)
    with pytest.raises(CheckpointError):
        load_checkpoint(path)


def test_failed_write_leaves_previous_checkpoint_intact(tmp_path):
    path = tmp_path / "c.pt"
    save_checkpoint({"v": torch.ones(1)}, path)

    class Unpicklable:
        def __reduce__(self):
            raise pickle.PicklingError("cannot")

    with pytest.raises(pickle.PicklingError):
        save_checkpoint({"v": Unpicklable()}, path)
    assert torch.equal(load_checkpoint(path)["v"], torch.ones(1))
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]


def test_non_checkpoint_files_raise(tmp_path):
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError):
        load_checkpoint(tmp_path / "junk.pt")
    torch.save({"no": "format"}, tmp_path / "plain.pt")
    with pytest.raises(CheckpointError, match="not an S3T checkpoint"):
        load_checkpoint(tmp_path / "plain.pt")
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt")


def test_kind_and_version_are_stored_and_checked_naming_both(tmp_path):
    save_checkpoint({"probe": {"labels": ["a"]}}, tmp_path / "p.pt", kind=KIND_PROBE)
    state = load_checkpoint(tmp_path / "p.pt", kind=KIND_PROBE)
    assert (state["kind"], state["format_version"]) == (KIND_PROBE, FORMAT_VERSION)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(tmp_path / "p.pt", kind=KIND_ENCODER)
    message = str(info.value)
    assert "\n" not in message and "(s3t-probe)" in message and "(s3t-encoder) is expected" in message


def test_files_without_kind_or_version_still_load_with_the_kind_of_their_keys(tmp_path):
    old = {"format": FORMAT, "encoder": {"w": torch.ones(2)}, "config": {"model": {}}}
    torch.save(old, tmp_path / "old.pt")
    state = load_checkpoint(tmp_path / "old.pt", kind=KIND_ENCODER)
    assert (state["kind"], state["format_version"]) == (KIND_ENCODER, 1)
    torch.save({"format": FORMAT, "embeddings": {}}, tmp_path / "old_emb.pt")
    with pytest.raises(CheckpointError, match="s3t-embeddings"):
        load_checkpoint(tmp_path / "old_emb.pt", kind=KIND_PROBE)


def test_newer_format_version_is_refused(tmp_path):
    torch.save({"format": FORMAT, "format_version": FORMAT_VERSION + 1, "probe": {}}, tmp_path / "new.pt")
    with pytest.raises(CheckpointError, match="upgrade s3t"):
        load_checkpoint(tmp_path / "new.pt")


def test_pickle_payload_refusal_is_one_line_without_pytorch_advice(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    torch.save({"format": FORMAT, "x": Evil()}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(tmp_path / "evil.pt")
    message = str(info.value)
    assert "\n" not in message and "pickle payload" in message and "weights_only=False" not in message


def test_truncated_checkpoint_is_refused(tmp_path):
    save_checkpoint({"probe": {"w": torch.randn(64, 64)}}, tmp_path / "p.pt")
    data = (tmp_path / "p.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated"):
        load_checkpoint(tmp_path / "cut.pt")


def test_checkpoints_are_readable_by_others_under_the_usual_umask(tmp_path):
    old = os.umask(0o022)
    try:
        save_checkpoint({"probe": {}}, tmp_path / "p.pt")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "p.pt").stat().st_mode) == 0o644


def test_replacing_another_kind_or_a_non_checkpoint_is_refused(tmp_path):
    model = tmp_path / "model.pt"
    save_checkpoint({"encoder": {"w": torch.ones(3)}, "config": {}}, model)
    with pytest.raises(CheckpointError, match="refusing to replace"):
        save_checkpoint({"embeddings": {}}, model, kind=KIND_EMBEDDINGS)
    assert load_checkpoint(model, kind=KIND_ENCODER)["encoder"]["w"].sum() == 3
    manifest = tmp_path / "m.csv"
    manifest.write_text("path,label,split\n")
    with pytest.raises(CheckpointError, match="not an S3T checkpoint"):
        save_checkpoint({"embeddings": {}}, manifest)
    assert manifest.read_text() == "path,label,split\n"
    save_checkpoint({"encoder": {"w": torch.zeros(3)}, "config": {}}, model)  # same kind: the normal re-run
    assert load_checkpoint(model)["encoder"]["w"].sum() == 0


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_stale_temporary_files_of_the_target_are_removed_on_the_next_write(tmp_path):
    target = tmp_path / "c.pt"
    killed = tmp_path / f"c.pt.{_dead_pid()}.0123456789abcdef.tmp"
    live = tmp_path / f"c.pt.{os.getppid()}.fedcba9876543210.tmp"  # a live writer (pytest's parent)
    old_style = tmp_path / "c.pt.ab12_x9z.tmp"  # mkstemp name of earlier versions, left long ago
    other = tmp_path / f"d.pt.{_dead_pid()}.0123456789abcdef.tmp"  # another target's: not ours to judge
    unrelated = tmp_path / "c.pt.notes.tmp"
    for path in (killed, live, old_style, other, unrelated):
        path.write_bytes(b"partial")
    hour_ago = time.time() - STALE_TMP_SECONDS - 60
    os.utime(old_style, (hour_ago, hour_ago))
    save_checkpoint({"probe": {}}, target)
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == sorted(["c.pt", live.name, other.name, unrelated.name])


def test_random_bytes_are_damage_not_a_pickle_payload(tmp_path):
    path = tmp_path / "noise.pt"
    path.write_bytes(bytes(range(200)))
    with pytest.raises(CheckpointError, match="not a torch archive") as info:
        load_checkpoint(path)
    # torch.load is never reached, so its advice (weights_only=False) is never repeated.
    assert "pickle payload" not in str(info.value) and "weights_only" not in str(info.value) and "\n" not in str(info.value)
