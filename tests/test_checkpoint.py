import pickle

import pytest
import torch

from s3t.checkpoint import CheckpointError, load_checkpoint, save_checkpoint


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
