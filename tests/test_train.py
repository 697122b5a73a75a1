import pytest
import torch

from s3t.checkpoint import load_checkpoint, save_checkpoint
from s3t.cqt import CQTConfig
from s3t.model import ModelConfig
from s3t.train import PretrainConfig, ResumeError, load_encoder, pretrain, run_key

MODEL = ModelConfig(backbone="tiny_test", preprocessor="frequency_tiling", input_size=32, cqt=CQTConfig(n_bins=84))
CONFIG = PretrainConfig(epochs=3, batch_size=4, K=16, warmup_epochs=1, m=0.9, lr=1e-2)


def _clips(n: int = 9, seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(84, int(torch.randint(40, 80, (1,), generator=g)), generator=g) for _ in range(n)]


def test_resumed_run_ends_with_the_same_weights_as_an_uninterrupted_one(tmp_path):
    clips = _clips()
    full = pretrain(clips, MODEL, CONFIG, tmp_path / "full.pt")

    class Interrupt(Exception):
        pass

    def stop_after_first_epoch(row):
        if row["epoch"] == 0:
            raise Interrupt

    with pytest.raises(Interrupt):
        pretrain(clips, MODEL, CONFIG, tmp_path / "resumed.pt", on_epoch=stop_after_first_epoch)
    assert load_checkpoint(tmp_path / "resumed.pt")["epoch"] == 0
    resumed = pretrain(clips, MODEL, CONFIG, tmp_path / "resumed.pt", resume=True)

    a, b = load_checkpoint(tmp_path / "full.pt"), load_checkpoint(tmp_path / "resumed.pt")
    assert [h["loss"] for h in resumed] == pytest.approx([h["loss"] for h in full])
    for key, value in a["moco"].items():
        assert torch.equal(value, b["moco"][key]), key
    assert a["step"] == b["step"] == 3 * 2


def test_checkpoint_holds_everything_needed_to_resume_and_embed(tmp_path):
    pretrain(_clips(), MODEL, PretrainConfig(epochs=1, batch_size=4, K=16, warmup_epochs=0), tmp_path / "c.pt")
    state = load_checkpoint(tmp_path / "c.pt")
    assert {"moco", "encoder", "optimizer", "rng", "epoch", "step", "history", "config"} <= set(state)
    assert state["moco"]["queue"].shape == (128, 16) and int(state["moco"]["queue_ptr"]) == 8
    assert ModelConfig.from_dict(state["config"]["model"]) == MODEL
    encoder = load_encoder(tmp_path / "c.pt")
    assert all(not p.requires_grad for p in encoder.parameters())
    assert torch.equal(encoder.backbone.conv.weight, state["encoder"]["conv.weight"])
    random = load_encoder(tmp_path / "c.pt", random_init=True, seed=1)
    assert not torch.equal(random.backbone.conv.weight, encoder.backbone.conv.weight)
    assert torch.equal(random.backbone.conv.weight, load_encoder(tmp_path / "c.pt", random_init=True, seed=1).backbone.conv.weight)


def test_resume_with_another_config_is_refused(tmp_path):
    pretrain(_clips(), MODEL, PretrainConfig(epochs=1, batch_size=4, K=16, warmup_epochs=0), tmp_path / "c.pt")
    with pytest.raises(ResumeError, match="another configuration"):
        pretrain(_clips(), MODEL, PretrainConfig(epochs=2, batch_size=4, K=16, warmup_epochs=0), tmp_path / "c.pt", resume=True)


def test_too_few_clips_and_bad_config_raise(tmp_path):
    with pytest.raises(ValueError, match="no full batch"):
        pretrain(_clips(3), MODEL, CONFIG, tmp_path / "c.pt")
    with pytest.raises(ValueError, match="warmup_epochs"):
        PretrainConfig(epochs=2, warmup_epochs=5)


def test_data_loading_workers_do_not_change_the_run(tmp_path):
    clips = _clips()
    config = PretrainConfig(epochs=1, batch_size=4, K=16, warmup_epochs=0)
    pretrain(clips, MODEL, config, tmp_path / "inline.pt")
    pretrain(clips, MODEL, PretrainConfig(**{**config.__dict__, "num_workers": 2}), tmp_path / "workers.pt")
    a, b = load_checkpoint(tmp_path / "inline.pt")["moco"], load_checkpoint(tmp_path / "workers.pt")["moco"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_checkpoint_every_writes_every_nth_epoch_and_the_last(tmp_path):
    config = PretrainConfig(epochs=5, batch_size=4, K=16, warmup_epochs=1, m=0.9, lr=1e-2)
    path = tmp_path / "c.pt"
    written = []

    def record(row):
        written.append(load_checkpoint(path)["epoch"] if path.exists() else None)

    history = pretrain(_clips(), MODEL, config, path, on_epoch=record, checkpoint_every=2)
    assert len(history) == 5
    assert written == [None, 1, 1, 3, 4]  # after epochs 2 and 4 (indices 1, 3) and the last
    with pytest.raises(ValueError, match="checkpoint_every"):
        pretrain(_clips(), MODEL, config, tmp_path / "d.pt", checkpoint_every=0)


def test_run_key_changes_with_the_settings_and_the_code(tmp_path):
    extra = tmp_path / "stage.py"
    extra.write_text("a = 1\n")
    key = run_key({"epochs": 2, "augment": {"shift_p": 0.0}}, extra)
    assert key == run_key({"augment": {"shift_p": 0.0}, "epochs": 2}, extra)  # key order does not matter
    assert key != run_key({"epochs": 2, "augment": {"shift_p": 0.4}}, extra)
    extra.write_text("a = 2\n")
    assert key != run_key({"epochs": 2, "augment": {"shift_p": 0.0}}, extra)


def test_head_pooling_pretrains_through_the_embedding_and_keeps_the_encoder_loadable(tmp_path):
    swin = ModelConfig(backbone="swin_cpu", preprocessor="time_folding", input_size=64,
                       backbone_kwargs={"patch_size": 4, "window_size": 4}, cqt=CQTConfig(n_bins=84))
    config = PretrainConfig(epochs=1, batch_size=4, K=8, warmup_epochs=0, head_pooling="bands")
    history = pretrain(_clips(8), swin, config, tmp_path / "bands.pt")
    state = load_checkpoint(tmp_path / "bands.pt")
    assert state["config"]["pretrain"]["head_pooling"] == "bands"
    head_in = state["moco"]["encoder_q.head.mlp.0.weight"].shape[1]
    assert head_in == 2 * 7 * (48 + 96 + 192)  # 7 octaves x mean and std x every stage's channels
    assert torch.isfinite(torch.tensor(history[-1]["loss"]))
    encoder = load_encoder(tmp_path / "bands.pt")  # the backbone's weights alone, as with MoCo's head
    assert set(encoder.backbone.state_dict()) == set(state["encoder"])
    with pytest.raises(ValueError, match="head_pooling"):
        PretrainConfig(head_pooling="max")


def test_frozen_modules_keep_their_random_weights_and_the_rest_trains(tmp_path):
    swin = ModelConfig(backbone="swin_cpu", preprocessor="time_folding", input_size=64,
                       backbone_kwargs={"patch_size": 4, "window_size": 4}, cqt=CQTConfig(n_bins=84))
    config = PretrainConfig(epochs=1, batch_size=4, K=8, warmup_epochs=0, lr=1e-2, frozen=["patch_embed", "layers.0"])
    assert config.frozen == ("patch_embed", "layers.0")
    pretrain(_clips(8), swin, config, tmp_path / "frozen.pt")
    trained = load_checkpoint(tmp_path / "frozen.pt")
    torch.manual_seed(config.seed)  # as pretrain seeds before MoCo builds the query backbone first
    initial = swin.build_backbone().state_dict()
    for key, value in trained["encoder"].items():
        if key.startswith(("patch_embed.", "layers.0.")) and value.is_floating_point():
            assert torch.equal(value, initial[key]), key
            assert torch.equal(value, trained["moco"][f"encoder_k.backbone.{key}"]), key
    assert not torch.equal(trained["encoder"]["layers.1.blocks.0.mlp.fc1.weight"], initial["layers.1.blocks.0.mlp.fc1.weight"])
    assert trained["config"]["pretrain"]["frozen"] == ("patch_embed", "layers.0")
    with pytest.raises(ValueError, match="no sub-module 'stem'.*patch_embed, layers"):
        pretrain(_clips(8), swin, PretrainConfig(epochs=1, batch_size=4, K=8, warmup_epochs=0, frozen=["stem"]), tmp_path / "x.pt")


def test_a_checkpoint_without_settings_added_later_resumes_with_their_defaults(tmp_path):
    config = PretrainConfig(epochs=2, batch_size=4, K=16, warmup_epochs=0)
    pretrain(_clips(), MODEL, PretrainConfig(epochs=1, batch_size=4, K=16, warmup_epochs=0), tmp_path / "c.pt")
    state = load_checkpoint(tmp_path / "c.pt")
    # as written before `frozen` existed, and claiming two epochs so that resuming runs the second
    del state["config"]["pretrain"]["frozen"]
    state["config"]["pretrain"]["epochs"] = 2
    save_checkpoint(state, tmp_path / "c.pt")
    history = pretrain(_clips(), MODEL, config, tmp_path / "c.pt", resume=True)
    assert [row["epoch"] for row in history] == [0, 1]
    state["config"]["pretrain"]["frozen"] = ("conv",)
    save_checkpoint(state, tmp_path / "c.pt")
    with pytest.raises(ResumeError, match="another configuration"):
        pretrain(_clips(), MODEL, config, tmp_path / "c.pt", resume=True)


def test_recording_positives_pair_each_clip_with_a_piece_of_its_own_recording(tmp_path, monkeypatch):
    import s3t.train

    # Three recordings of three pieces each; a recording's pieces share one loud frequency bin.
    groups = [g for g in range(3) for _ in range(3)]
    clips = [torch.randn(84, 50 + i, generator=torch.Generator().manual_seed(i)) for i in range(9)]
    for clip, g in zip(clips, groups):
        clip[10 * g] += 20.0
    batches = []

    class Recorded(s3t.train.MusicAugment):
        def forward(self, x, lengths=None, generator=None, *, moments=None):
            batches.append(x.mean(dim=2).argmax(dim=1) // 10)  # each row's recording
            return super().forward(x, lengths, generator, moments=moments)

    monkeypatch.setattr(s3t.train, "MusicAugment", Recorded)
    config = PretrainConfig(epochs=4, batch_size=4, K=16, warmup_epochs=0, positives="recording")
    history = pretrain(clips, MODEL, config, tmp_path / "r.pt", groups=[f"track{g}" for g in groups])
    assert len(history) == 4 and all(torch.isfinite(torch.tensor(row["loss"])) for row in history)
    assert len(batches) == 4 * 2
    for rows in batches:
        assert rows.shape == (8,)  # the batch, then one partner per clip
        assert torch.equal(rows[:4], rows[4:])
    with pytest.raises(ValueError, match="needs each clip's recording"):
        pretrain(clips, MODEL, config, tmp_path / "x.pt")
    with pytest.raises(ValueError, match="needs each clip's recording"):
        pretrain(clips, MODEL, PretrainConfig(epochs=1, batch_size=4, K=16, warmup_epochs=0, negatives="other_recordings"),
                 tmp_path / "x.pt")
    with pytest.raises(ValueError, match="3 recordings for 9 clips"):
        pretrain(clips, MODEL, config, tmp_path / "x.pt", groups=[0, 1, 2])
    with pytest.raises(ValueError, match="positives must be one of clip, recording"):
        PretrainConfig(positives="track")
    with pytest.raises(ValueError, match="negatives must be one of all, other_recordings"):
        PretrainConfig(negatives="others")


def test_other_recordings_negatives_queue_each_key_s_recording(tmp_path):
    groups = [i // 3 for i in range(9)]
    config = PretrainConfig(epochs=2, batch_size=4, K=8, warmup_epochs=0, negatives="other_recordings")
    history = pretrain(_clips(), MODEL, config, tmp_path / "n.pt", groups=[f"r{g}" for g in groups])
    assert all(torch.isfinite(torch.tensor(row["loss"])) for row in history)
    state = load_checkpoint(tmp_path / "n.pt")
    # Two epochs of two batches of 4 filled the queue of 8 twice; each column holds the recording
    # (dense ids in order of first appearance: r0 -> 0, ...) of the clip whose key it is.
    queued = state["moco"]["queue_group"]
    assert queued.shape == (8,) and set(queued.tolist()) <= {0, 1, 2}
    last_epoch = torch.randperm(9, generator=torch.Generator().manual_seed(config.seed + 1))[:8]
    assert queued.tolist() == [groups[i] for i in last_epoch.tolist()]


def test_partners_are_drawn_uniformly_within_the_recording():
    from s3t.train import _partners

    members, group_of = [[0, 1, 2], [3]], [0, 0, 0, 1]
    drawn = _partners([0] * 3000 + [3] * 10, members, group_of, torch.Generator().manual_seed(0))
    counts = torch.bincount(torch.tensor(drawn[:3000]), minlength=4)
    assert counts[3] == 0 and all(900 < c < 1100 for c in counts[:3])  # about a third each, itself included
    assert drawn[3000:] == [3] * 10  # a recording of one piece pairs the piece with itself


def test_head_from_stage_feeds_the_head_only_the_later_stages(tmp_path):
    swin = ModelConfig(backbone="swin_cpu", preprocessor="time_folding", input_size=64,
                       backbone_kwargs={"patch_size": 4, "window_size": 4}, cqt=CQTConfig(n_bins=84))
    config = PretrainConfig(epochs=1, batch_size=4, K=8, warmup_epochs=0, head_pooling="bands", head_from_stage=1,
                            frozen=["patch_embed", "layers.0"])
    history = pretrain(_clips(8), swin, config, tmp_path / "h.pt")
    assert torch.isfinite(torch.tensor(history[-1]["loss"]))
    head_in = load_checkpoint(tmp_path / "h.pt")["moco"]["encoder_q.head.mlp.0.weight"].shape[1]
    assert head_in == 2 * 7 * (96 + 192)  # 7 octaves x mean and std x the channels of stages 1 and 2
    with pytest.raises(ValueError, match="has 3 stages"):
        pretrain(_clips(8), swin, PretrainConfig(epochs=1, batch_size=4, K=8, warmup_epochs=0, head_pooling="bands",
                                                 head_from_stage=3), tmp_path / "x.pt")
    with pytest.raises(ValueError, match="0 with head_pooling 'final'"):
        PretrainConfig(head_from_stage=1)


def test_bf16_autocast_only_where_the_cpu_has_bfloat16_units(monkeypatch):
    from s3t import train

    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: {"avx2": True, "avx512_bf16": False, "amx_bf16": False})
    assert not train.native_bf16("cpu")
    assert not train.autocast("cpu", bf16=True)._enabled  # emulated bfloat16: float32 stays
    for unit in ("avx512_bf16", "amx_bf16"):
        monkeypatch.setattr(torch.cpu, "get_capabilities", lambda unit=unit: {"avx2": True, unit: True})
        assert train.native_bf16("cpu")
        amp = train.autocast("cpu", bf16=True)
        assert amp._enabled and amp.fast_dtype == torch.bfloat16
        assert not train.autocast("cpu", bf16=False)._enabled  # the switch turns it off
    assert train.native_bf16("cuda")


def test_build_moco_is_the_module_pretrain_trains(tmp_path):
    from s3t.train import build_moco

    swin = ModelConfig(backbone="swin_cpu", preprocessor="time_folding", input_size=64,
                       backbone_kwargs={"patch_size": 4, "window_size": 4}, cqt=CQTConfig(n_bins=84))
    config = PretrainConfig(epochs=1, batch_size=4, K=8, warmup_epochs=0, head_pooling="bands", lr=1e-12,
                            weight_decay=0.0)
    built = build_moco(swin, config)
    pretrain(_clips(8), swin, config, tmp_path / "run.pt")
    trained = load_checkpoint(tmp_path / "run.pt")["moco"]
    # Same architecture and head input, and the same initial draw (a step at lr 1e-12 moves nothing visible).
    assert set(built.state_dict()) == set(trained)
    for name, tensor in built.state_dict().items():
        if name.startswith("encoder_q.") and tensor.is_floating_point():
            torch.testing.assert_close(tensor, trained[name], rtol=0, atol=1e-6)
