import pytest
import torch

from s3t.modelcard import NOT_RECORDED, CardError, infer_kind, model_card, parameter_count, software_versions
from s3t.model import Encoder, ModelConfig
from s3t.probe import LinearProbe

MODEL = ModelConfig(backbone="tiny_test", preprocessor="frequency_tiling", input_size=32).to_dict()
TRAIN = {"epochs": 5, "batch_size": 8, "lr": 1e-3, "weight_decay": 0.05, "warmup_epochs": 1, "K": 16, "m": 0.99,
         "T": 0.2, "dim": 128, "num_hidden": 2, "seed": 0}


def _encoder_state(**extra):
    history = [{"epoch": e, "loss": 4.0 - e, "lr": 1e-3} for e in range(3)]
    return {"format": "s3t-checkpoint-v1", "encoder": {}, "config": {"model": MODEL, "pretrain": TRAIN},
            "epoch": 2, "step": 30, "history": history, **extra}


def test_encoder_card_shows_architecture_cqt_data_epochs_loss_and_software():
    state = _encoder_state(data={"dataset": "soundtracks", "splits": ["unlabeled"], "clips": 497, "hours": 4.0435},
                           software=software_versions())
    card = model_card(state, name="models/pretrained.pt")
    expected_params = sum(p.numel() for p in Encoder(ModelConfig.from_dict(MODEL)).parameters())
    assert parameter_count(MODEL) == expected_params
    for line in ("# models/pretrained.pt", "**kind**: s3t-encoder (inferred from its contents)",
                 f"| parameters | {expected_params:,} |", "| dataset | soundtracks |", "| clips | 497 |",
                 "| hours of audio | 4.04 |", "| epochs | 3 of 5 (30 steps) |", "| final loss (InfoNCE, last epoch's mean) | 2.0000 |",
                 "| bins | 84 (12 per octave) from 32.7 Hz |", f"| torch | {torch.__version__.split('+')[0]}",
                 f"| torch CPU kernels | {torch.backends.cpu.get_cpu_capability()} |"):
        assert line in card, line


def test_older_files_say_what_they_do_not_record_and_a_kind_field_wins():
    card = model_card(_encoder_state())
    assert f"| dataset | {NOT_RECORDED} |" in card and f"Versions {NOT_RECORDED}" in card
    assert infer_kind({"kind": "s3t-encoder", "format_version": 2}) == ("s3t-encoder", False)
    card = model_card(_encoder_state(kind="s3t-encoder", format_version=2))
    assert "**kind**: s3t-encoder\n" in card and "**format_version**: 2" in card
    with pytest.raises(CardError, match="none of encoder, probe or embeddings"):
        model_card({"format": "s3t-checkpoint-v1", "weights": 1})


def test_encoder_card_says_which_modules_stayed_random():
    assert "| kept at random initialisation | none (every layer pre-trained) |" in model_card(_encoder_state())
    state = _encoder_state()
    state["config"]["pretrain"] = {**TRAIN, "frozen": ("patch_embed", "layers.0")}
    assert "| kept at random initialisation | patch_embed, layers.0 |" in model_card(state)


def test_encoder_card_says_how_positive_pairs_and_negatives_were_drawn():
    card = model_card(_encoder_state())  # written before the settings existed: the paper's
    assert "| positive pair | two crops of one clip |" in card and "| negatives | every queued key |" in card
    state = _encoder_state()
    state["config"]["pretrain"] = {**TRAIN, "positives": "recording", "negatives": "other_recordings"}
    card = model_card(state)
    assert "| positive pair | crops of two pieces of one recording |" in card
    assert "| negatives | queued keys of other recordings |" in card


def test_probe_and_embeddings_cards_show_labels_threshold_and_metrics():
    probe = LinearProbe(6, ["rock", "jazz", "piano"], multilabel=True)
    probe.threshold = 0.31
    history = [{"epoch": 0, "pr_auc": 0.4}, {"epoch": 1, "pr_auc": 0.55}]
    card = model_card({"probe": probe.to_state(), "history": history, "metrics": {"roc_auc": 0.9, "pr_auc": 0.5, "n_train": 40}})
    for line in ("s3t-probe", "| labels | 3: rock, jazz, piano |", "| tag threshold (best micro-F1 on valid) | 0.31 |",
                 "| best valid pr_auc | 0.5500 |", "| test roc_auc | 0.9000 |", "| n_train | 40 |", "6-dim embeddings"):
        assert line in card, line
    emb = {"embeddings": torch.zeros(4, 3), "ids": list("abcd"), "labels": [["x"]] * 4, "splits": ["train", "train", "valid", "test"],
           "label_set": ["x"], "multilabel": False, "method": "s3t"}
    card = model_card({"embeddings": emb, "rejected": [["bad.wav", "zero bytes"]]})
    assert "| shape | (4, 3) (clips x dimension) |" in card and "| splits | test 1, train 2, valid 1 |" in card
    assert "| rejected files | 1 |" in card


def test_a_logistic_probe_card_counts_strengths_not_epochs_and_top5_only_over_five_labels():
    probe = LinearProbe(6, ["a", "b", "c"], multilabel=False)
    history = [{"l2": s, "valid": 0.5} for s in (1.0, 0.1, 0.01)]
    card = model_card({"probe": probe.to_state(), "history": history, "metrics": {"top1": 0.6, "top5": 1.0}})
    assert "| fit | L2 logistic regression to convergence, 3 strengths tried on valid |" in card
    assert "epochs trained" not in card and "test top5" not in card and "| test top1 | 0.6000 |" in card


def test_the_encoder_card_states_its_clip_length_and_limitations():
    card = model_card(_encoder_state(data={"dataset": "soundtracks", "clips": 480, "hours": 3.9, "clip_seconds": 30.0}))
    assert "| clip length | 30.0 s (median); a longer file's embedding is the mean of windows of this length |" in card
    assert "## Intended use and limitations" in card and "3.9 h of soundtracks" in card
