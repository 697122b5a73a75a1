"""What an S3T file is and holds, as Markdown: ``s3t info FILE`` and ``models/pretrained.md``.

Works on the plain dict of :func:`s3t.checkpoint.load_checkpoint`. Three kinds of files:

* ``s3t-encoder``: a pre-training checkpoint (``models/pretrained.pt``, ``s3t pretrain --out``).
* ``s3t-probe``: a linear probe (``models/probes/``, ``s3t probe --save-probe``).
* ``s3t-embeddings``: labeled embeddings (``data/embeddings/``, ``s3t embed --manifest``).

A file that names its ``kind`` (and ``format_version``) is shown as such; older files do not,
and their kind is inferred from their keys (and said to be inferred). Facts a file does not
record (pre-training data and software versions, written by the pipeline since this card
exists) are shown as "not recorded" rather than guessed.
"""

from __future__ import annotations

import platform
from collections import Counter
from importlib import metadata
from typing import Any

KINDS = ("s3t-encoder", "s3t-probe", "s3t-embeddings")
SOFTWARE = ("s3t", "torch", "timm", "nnAudio", "numpy", "scipy")
NOT_RECORDED = "not recorded"


class CardError(ValueError):
    """A checkpoint dict that is none of the kinds this module describes."""


def infer_kind(state: dict[str, Any]) -> tuple[str, bool]:
    """(kind, inferred): the file's own ``kind`` field, else the kind its keys show (files
    written before kinds existed, or of no kind, store none or None)."""
    if state.get("kind") is not None:
        return str(state["kind"]), False
    if "encoder" in state and "config" in state:
        return "s3t-encoder", True
    if "probe" in state:
        return "s3t-probe", True
    if "embeddings" in state:
        return "s3t-embeddings", True
    raise CardError(f"holds none of encoder, probe or embeddings (keys: {', '.join(sorted(state)) or 'none'})")


def software_versions() -> dict[str, str]:
    """Python, the installed versions of the packages an encoder depends on, and the instruction set
    torch's CPU kernels run with here (``AVX2``, ``AVX512``, ...). Vectorised kernels of different
    widths may sum in a different order; the same code, data and seed have pre-trained to checkpoints
    that differ in their last digits on two kinds of machine (README, "Results"), and this says which
    kind made a file."""
    import torch

    versions = {"python": platform.python_version()}
    for name in SOFTWARE:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    versions["torch CPU kernels"] = torch.backends.cpu.get_cpu_capability()
    return versions


def parameter_count(model_config: dict[str, Any]) -> int:
    """Parameters of the encoder (pre-processor + backbone) a ``ModelConfig`` dict describes."""
    import torch

    from s3t.model import Encoder, ModelConfig

    # Building the model draws its initial weights; the caller's random state is left as it was.
    with torch.random.fork_rng(devices=[]):
        encoder = Encoder(ModelConfig.from_dict(model_config))
    return sum(p.numel() for p in encoder.parameters())


def _rows(pairs: list[tuple[str, Any]]) -> list[str]:
    return ["| | |", "|---|---|", *[f"| {k} | {v} |" for k, v in pairs]]


def _fmt(value: Any) -> str:
    if value is None:
        return NOT_RECORDED
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict):
        return ", ".join(f"{k}={_fmt(v)}" for k, v in value.items()) or "none"
    if isinstance(value, (list, tuple)):
        return ", ".join(map(str, value))
    return str(value)


def _header(state: dict[str, Any], name: str) -> list[str]:
    kind, inferred = infer_kind(state)
    version = state.get("format_version")
    lines = [f"# {name or 'S3T file'}", "", f"- **kind**: {kind}" + (" (inferred from its contents)" if inferred else "")]
    if version is not None:
        lines.append(f"- **format_version**: {version}")
    lines.append(f"- **format**: {state.get('format', NOT_RECORDED)}")
    return lines


def _encoder_card(state: dict[str, Any]) -> list[str]:
    model, train = state["config"]["model"], state["config"]["pretrain"]
    cqt = model["cqt"]
    history = state.get("history") or []
    data = state.get("data") or {}
    fps = cqt["sample_rate"] / cqt["hop_length"] / cqt["time_compression"]
    epochs_done = state.get("epoch", len(history) - 1) + 1
    lines = ["", f"S3T encoder: a {model['backbone']} backbone pre-trained with MoCo v2 on constant-Q spectrograms of",
             "music (Zhao et al., ICASSP 2022). Use it frozen: `s3t embed --checkpoint FILE --audio DIR --out emb.npy`,",
             "then a linear probe (`s3t probe`) and `s3t predict`.", "", "## Architecture", ""]
    lines += _rows([
        ("backbone", f"{model['backbone']} ({_fmt(model.get('backbone_kwargs', {}))})"),
        ("parameters", f"{parameter_count(model):,}"),
        ("pre-processor", f"{model['preprocessor']}, input {model['input_size']} x {model['input_size']}"),
        ("embedding", f"pooling {model.get('embed_pooling', 'final')}, {model.get('embed_segments', 1)} segment(s) per clip"),
        ("projection head (pre-training only)", f"{train['num_hidden']} hidden layer(s), {train['dim']}-dim output"),
        # Cards of checkpoints written before the setting existed: nothing was frozen then.
        ("kept at random initialisation", ", ".join(train.get("frozen", ())) or "none (every layer pre-trained)"),
    ])
    lines += ["", "## Input: constant-Q transform", ""]
    lines += _rows([
        ("sample rate", f"{cqt['sample_rate']} Hz, mono"),
        ("bins", f"{cqt['n_bins']} ({cqt['bins_per_octave']} per octave) from {cqt['fmin']} Hz"),
        ("hop", f"{cqt['hop_length']} samples, time compression {cqt['time_compression']}x: {fps:.2f} frames/s"),
        ("log offset", cqt.get("eps", NOT_RECORDED)),
    ])
    hours = data.get("hours")
    lines += ["", "## Pre-training", ""]
    lines += _rows([
        ("dataset", data.get("dataset", NOT_RECORDED)),
        ("splits used", _fmt(data.get("splits"))),
        ("clips", _fmt(data.get("clips"))),
        ("hours of audio", NOT_RECORDED if hours is None else f"{hours:.2f}"),
        ("clip length", NOT_RECORDED if not data.get("clip_seconds") else
         f"{data['clip_seconds']:.1f} s (median); a longer file's embedding is the mean of windows of this length"),
        ("epochs", f"{epochs_done} of {train['epochs']} ({state.get('step', NOT_RECORDED)} steps)"),
        ("final loss (InfoNCE, last epoch's mean)", f"{history[-1]['loss']:.4f}" if history else NOT_RECORDED),
        ("optimiser", f"AdamW, lr {train['lr']:g} (cosine, {train['warmup_epochs']} warm-up epochs), "
                      f"weight decay {train['weight_decay']:g}, batch {train['batch_size']} per process"),
        ("MoCo", f"queue K={train['K']}, momentum m={train['m']:g}, temperature T={train['T']:g}"),
        # Checkpoints written before these settings existed used the paper's: crops of one clip, every key.
        ("positive pair", {"clip": "two crops of one clip",
                           "recording": "crops of two pieces of one recording"}[train.get("positives", "clip")]),
        ("negatives", {"all": "every queued key",
                       "other_recordings": "queued keys of other recordings"}[train.get("negatives", "all")]),
        ("seed", train.get("seed", NOT_RECORDED)),
    ])
    what = f"{hours:.1f} h of {data.get('dataset')}" if hours is not None else "the data above"
    lines += ["", "## Intended use and limitations", "",
              "A research encoder for music-information retrieval: frozen embeddings for linear probes, nearest",
              f"neighbours and tagging of music like its pre-training data ({what}). Pre-trained on so little music,",
              "it is not a general music model: on the project's held-out packages it has read no better than the same",
              "network at random initialisation nor than per-bin log-CQT statistics (README, \"Results\", gives the",
              "figures with their intervals). Check it on your own labelled music with",
              "`s3t probe --baselines` before relying on it. Labels a probe gives to music unlike its training data",
              "are not flagged as such."]
    return lines + _software(state)


def _software(state: dict[str, Any]) -> list[str]:
    software = state.get("software")
    lines = ["", "## Software", ""]
    if not software:
        return lines + [f"Versions {NOT_RECORDED} (the file predates the model card)."]
    return lines + _rows(list(software.items()))


def _probe_card(state: dict[str, Any]) -> list[str]:
    probe = state["probe"]
    weight = probe["state_dict"]["linear.weight"]
    history = state.get("history") or []
    metrics = state.get("metrics") or {}
    key = "pr_auc" if probe["multilabel"] else "top1"
    valid = [row[key] for row in history if key in row]
    task = "multi-label tagging (sigmoid per tag)" if probe["multilabel"] else "single-label classification (softmax)"
    lines = ["", "Linear probe on frozen S3T embeddings: `s3t predict --checkpoint ENCODER --probe FILE AUDIO...`.", ""]
    pairs = [
        ("task", task),
        ("input", f"{weight.shape[1]}-dim embeddings, standardised with the training rows' mean and std"),
        ("labels", f"{len(probe['labels'])}: {', '.join(probe['labels'])}"),
    ]
    if probe["multilabel"]:
        pairs.append(("tag threshold (best micro-F1 on valid)", _fmt(probe.get("threshold"))))
    novelty = probe.get("novelty")
    pairs.append(("novelty notice", f"{novelty['reference'].shape[0]} training clips kept; 95 % of valid within "
                                    f"{novelty['threshold']:.2f}" if novelty else NOT_RECORDED))
    if history and "l2" in history[0]:
        # The logistic protocol fits each L2 strength to convergence (L-BFGS); it has no epochs to count.
        pairs.append(("fit", f"L2 logistic regression to convergence, {len(history)} strengths tried on valid"))
    else:
        pairs.append(("epochs trained", len(history) or NOT_RECORDED))
    if valid:
        pairs.append((f"best valid {key}", f"{max(valid):.4f}"))
    for name in ("top1", "top5", "roc_auc", "pr_auc"):
        if name == "top5" and len(probe["labels"]) <= 5:
            continue  # every label is among the top five: always 1
        if name in metrics:
            pairs.append((f"test {name}", f"{metrics[name]:.4f}"))
    for name in ("fraction", "n_train", "n_valid", "n_test", "selection"):
        if name in metrics:
            pairs.append((name, _fmt(metrics[name])))
    if not metrics:
        pairs.append(("test metrics", f"{NOT_RECORDED} in the file (see metrics/<dataset>/probe_<percent>.json)"))
    return lines + _rows(pairs)


def _embeddings_card(state: dict[str, Any]) -> list[str]:
    emb = state["embeddings"]
    splits = Counter(emb["splits"])
    pairs = [
        ("method", emb["method"]),
        ("shape", f"{tuple(emb['embeddings'].shape)} (clips x dimension)"),
        ("splits", ", ".join(f"{k} {v}" for k, v in sorted(splits.items()))),
        ("task", "multi-label" if emb["multilabel"] else "single-label"),
        ("labels", f"{len(emb['label_set'])}: {', '.join(emb['label_set'])}"),
    ]
    if "rejected" in state:
        pairs.append(("rejected files", len(state["rejected"])))
    return ["", "Labeled clip embeddings for `s3t probe --embeddings FILE`.", ""] + _rows(pairs)


def model_card(state: dict[str, Any], name: str = "") -> str:
    """Markdown describing a checkpoint dict (see module docstring); ``name`` titles it."""
    kind, _ = infer_kind(state)
    body = {"s3t-encoder": _encoder_card, "s3t-probe": _probe_card, "s3t-embeddings": _embeddings_card}.get(kind)
    if body is None:
        raise CardError(f"kind {kind!r} is none of {', '.join(KINDS)}")
    return "\n".join(_header(state, name) + body(state)) + "\n"
