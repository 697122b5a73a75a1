"""Self-supervised pre-training loop (paper 2.1-2.3, 3.2 "Pre-training Setup").

One step: a batch of whole-clip log-CQTs is standardised, the music augmentation
pipeline cuts two views per clip and perturbs them, the pre-processor squares them,
and MoCo v2 scores the query against its key and the queue (InfoNCE). AdamW (lr 5e-4,
weight decay 0.05), linear warm-up for 20 epochs then cosine decay, batch 128 per GPU.

Choices where the paper is silent:
- Gradient clipping at a global norm of 5.0, as in the Swin Transformer training recipe
  the paper follows for its optimiser ("Following [7]").
- AdamW betas are PyTorch's defaults (the paper: "with default setting").
- The learning rate is set per optimizer step from :func:`s3t.schedule.cosine_with_warmup`;
  the step counter is the whole scheduler state, so a checkpoint stores the step.
- Clips are drawn once per epoch in a permutation seeded by ``seed + epoch``; the last
  incomplete batch is dropped so every enqueue has the same size and the queue (K a
  multiple of the global batch) wraps exactly.
- ``frozen`` names backbone sub-modules (``patch_embed``, ``layers.0``) kept at their random
  initialisation: neither the optimiser nor weight decay touches them, and the key encoder's
  copies stay equal to the query encoder's. MoCo v3 (Chen, Xie and He 2021, "An Empirical Study of
  Training Self-Supervised Vision Transformers") keeps ViT's patch projection random for stability;
  the paper does not mention it, so nothing is frozen by default.
- ``head_from_stage`` leaves a pooled head's first stages out of its input. A stage kept at its
  random weights (``frozen``) still feeds the head otherwise, and the head can then score the pair
  from those fixed features without the stages that train.
- ``positives`` says where the key view comes from. ``"clip"`` (the paper, 2.3): both views are
  crops of the same clip. ``"recording"``: the key view is cut from a piece of the same recording
  drawn uniformly among its pieces (the query's own piece included), so a long track cut into 30 s
  pieces gives positives up to its whole length apart, as CLMR's crops of a whole song are (Spijkervet
  and Burgoyne 2021). The paper's "two crops from the same music sample" (2.3) does not say which;
  its datasets' samples are 30 s excerpts, where the two agree.
- ``negatives``: ``"all"`` (MoCo, the paper) contrasts each query with every queued key;
  ``"other_recordings"`` leaves out the keys cut from the query's own recording (:class:`s3t.moco.MoCo`
  ``queue_groups``), which MoCo would push away as other music.
- Mixed precision: bfloat16 autocast (``bf16``) on a GPU and on a CPU with AVX512-BF16 or AMX units.
  On a CPU without them oneDNN emulates bfloat16 with float32 instructions plus conversions, so the
  step keeps float32 there (BENCHMARKS.md has the forced run).
- Checkpoints are written at the end of every epoch. Resuming restores the model,
  optimiser, queue and pointer, step, and every random state of every rank (global torch
  RNG for drop path, the augmentation generator), so on CPU a resumed run ends with the
  same weights as an uninterrupted one.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader

from s3t.augment import MusicAugment
from s3t.checkpoint import KIND_ENCODER, CheckpointError, load_checkpoint, save_checkpoint
from s3t.model import POOLINGS, Encoder, ModelConfig, clip_moments, pad_batch
from s3t.modelcard import software_versions
from s3t.moco import MoCo, info_nce
from s3t.schedule import cosine_with_warmup


POSITIVES = ("clip", "recording")
NEGATIVES = ("all", "other_recordings")


@dataclass(frozen=True)
class PretrainConfig:
    """Pre-training hyper-parameters; paper values by default (per-process batch 128 on 4 GPUs)."""

    epochs: int = 400
    batch_size: int = 128
    lr: float = 5e-4
    weight_decay: float = 0.05
    warmup_epochs: int = 20
    grad_clip: float = 5.0
    K: int = 65536
    m: float = 0.999
    T: float = 0.2
    dim: int = 128
    num_hidden: int = 2
    seed: int = 0
    bf16: bool = True  # bfloat16 autocast where the device computes it in hardware (native_bf16); float32 elsewhere
    compile: bool = False  # torch.compile both encoders with their heads (on an AVX2 CPU it measured slower)
    num_workers: int = 0
    augment: dict[str, Any] = field(default_factory=dict)
    head_pooling: str = "final"  # what MoCo's head sees: "final" (MoCo's), or a clip embedding's pooling
    frozen: tuple[str, ...] = ()  # backbone sub-modules kept at their random initialisation
    head_from_stage: int = 0  # with a pooled head: the first backbone stage (0-based) whose features it sees
    positives: str = "clip"  # the key view's source: "clip" (the query's own clip) or "recording"
    negatives: str = "all"  # the queued keys a query is contrasted with: "all" or "other_recordings"

    @property
    def needs_recordings(self) -> bool:
        """Whether :func:`pretrain` needs each clip's recording (its ``groups``)."""
        return self.positives == "recording" or self.negatives == "other_recordings"

    def __post_init__(self) -> None:
        object.__setattr__(self, "frozen", tuple(self.frozen))  # a YAML list compares equal after a resume
        if self.head_pooling not in POOLINGS:
            raise ValueError(f"head_pooling must be one of {', '.join(POOLINGS)}, got {self.head_pooling!r}")
        if self.head_from_stage < 0 or (self.head_from_stage and self.head_pooling == "final"):
            raise ValueError(f"head_from_stage must be >= 0, and 0 with head_pooling 'final' (MoCo's head sees the "
                             f"backbone's output), got {self.head_from_stage} with {self.head_pooling!r}")
        if self.positives not in POSITIVES:
            raise ValueError(f"positives must be one of {', '.join(POSITIVES)}, got {self.positives!r}")
        if self.negatives not in NEGATIVES:
            raise ValueError(f"negatives must be one of {', '.join(NEGATIVES)}, got {self.negatives!r}")
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError(f"epochs and batch_size must be >= 1, got {self.epochs} and {self.batch_size}")
        if not 0 <= self.warmup_epochs <= self.epochs:
            raise ValueError(f"warmup_epochs must be in [0, epochs={self.epochs}], got {self.warmup_epochs}")
        if self.lr <= 0 or self.grad_clip <= 0:
            raise ValueError(f"lr and grad_clip must be > 0, got {self.lr} and {self.grad_clip}")


class ResumeError(ValueError):
    """A checkpoint that cannot be resumed with the requested configuration."""


def _rng_state(augment_generator: torch.Generator) -> dict[str, Any]:
    state = {"torch": torch.get_rng_state(), "augment": augment_generator.get_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any], augment_generator: torch.Generator) -> None:
    torch.set_rng_state(state["torch"])
    augment_generator.set_state(state["augment"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _collate(clips: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    return pad_batch([clip.float() for clip in clips], frames_major=True)


def _partners(batch: list[int], members: list[list[int]], group_of: Sequence[int], generator: torch.Generator) -> list[int]:
    """For each clip of ``batch``, a clip of the same recording drawn uniformly (itself included)."""
    draws = torch.rand(len(batch), generator=generator).tolist()
    return [members[group_of[i]][int(u * len(members[group_of[i]]))] for i, u in zip(batch, draws)]


def build_moco(model: ModelConfig, config: PretrainConfig, world: int = 1) -> MoCo:
    """The MoCo module :func:`pretrain` trains for ``model`` and ``config``, on the CPU, its weights and
    queue drawn from ``config.seed`` (the global torch RNG is seeded here, as the run's first draw).

    With ``config.head_pooling`` other than ``"final"`` the head sees the backbone's stages pooled
    that way (from stage ``config.head_from_stage`` on); ``world`` processes share the queue.
    """
    pool, pool_dim = None, None
    if config.head_pooling != "final":
        # Built before the seed is set, so a run with MoCo's head draws the same weights as before.
        pooler = Encoder(replace(model, embed_pooling=config.head_pooling))
        pool, pool_dim = pooler.pool_stages, pooler.embedding_dim
        if config.head_from_stage:
            dims = pooler.stage_dims
            if config.head_from_stage >= len(dims):
                raise ValueError(f"head_from_stage is {config.head_from_stage} but the {model.backbone} backbone "
                                 f"has {len(dims)} stages (0-{len(dims) - 1})")
            skip = sum(dims[: config.head_from_stage])  # the left-out stages' leading blocks
            pool, pool_dim = (lambda backbone, x: pooler.pool_stages(backbone, x)[:, skip:]), pool_dim - skip
    torch.manual_seed(config.seed)
    return MoCo(
        model.build_backbone,
        dim=config.dim, K=config.K, m=config.m, T=config.T, num_hidden=config.num_hidden,
        batch_size=config.batch_size, world_size=world, pool=pool, pool_dim=pool_dim,
        queue_groups=config.negatives == "other_recordings",
    )


def native_bf16(device: torch.device | str) -> bool:
    """Whether ``device`` computes bfloat16 matrix products in hardware: any CUDA device; a CPU
    with AVX512-BF16 or AMX-BF16 (``torch.cpu.get_capabilities``). Elsewhere oneDNN emulates
    bfloat16 with float32 instructions plus conversions, which costs more than float32 alone."""
    device = torch.device(device)
    if device.type == "cuda":
        return True
    if device.type != "cpu":
        return False
    capabilities = torch.cpu.get_capabilities()
    return bool(capabilities.get("avx512_bf16") or capabilities.get("amx_bf16"))


def autocast(device: torch.device | str, bf16: bool) -> torch.autocast:
    """The step's mixed precision: bfloat16 autocast when ``bf16`` is asked for and ``device`` has it
    in hardware (:func:`native_bf16`), float32 otherwise (a disabled autocast)."""
    device = torch.device(device)
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=bf16 and native_bf16(device))


def pretrain(
    clips: Sequence[torch.Tensor],
    model: ModelConfig,
    config: PretrainConfig,
    checkpoint_path: str | Path,
    *,
    groups: Sequence[str | int] | None = None,
    resume: bool = False,
    device: torch.device | str = "cpu",
    on_step: Callable[[dict[str, float]], None] | None = None,
    on_epoch: Callable[[dict[str, float]], None] | None = None,
    log_every: int = 10,
    checkpoint_every: int = 1,
) -> list[dict[str, float]]:
    """Pre-train MoCo on ``clips`` (each a log-CQT (F, T_i)); return the per-epoch history.

    ``groups[i]`` names clip i's recording (any hashable id); ``config.positives == "recording"``
    needs it and then cuts each key view from a piece of the query's recording, and
    ``config.negatives == "other_recordings"`` needs it to leave that recording's queued keys out.

    Under ``torch.distributed`` (torchrun) each rank takes every world_size-th clip of the
    epoch's permutation and only rank 0 writes the checkpoint. ``on_step`` receives
    {step, epoch, loss, lr, samples_per_s} every ``log_every`` steps and at the end of each
    epoch (reading the loss waits for the device, so it is not read every step); ``on_epoch``
    receives the epoch's history row after its checkpoint is written (raising there
    interrupts the run cleanly). The checkpoint is written every ``checkpoint_every`` epochs
    and after the last: on a GPU an epoch of a small dataset can take less time than writing
    the checkpoint, and an interrupted run loses at most ``checkpoint_every`` epochs.
    """
    if log_every < 1 or checkpoint_every < 1:
        raise ValueError(f"log_every and checkpoint_every must be >= 1, got {log_every} and {checkpoint_every}")
    device = torch.device(device)
    rank, world = (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)
    steps_per_epoch = len(clips) // (config.batch_size * world)
    if steps_per_epoch == 0:
        raise ValueError(
            f"{len(clips)} clips give no full batch of {config.batch_size} x {world} processes; "
            "lower batch_size or add audio"
        )
    if groups is not None and len(groups) != len(clips):
        raise ValueError(f"groups names {len(groups)} recordings for {len(clips)} clips; give one per clip")
    if config.needs_recordings and groups is None:
        raise ValueError(f"positives {config.positives!r} with negatives {config.negatives!r} needs each clip's "
                         "recording (groups); give it, or set positives to 'clip' and negatives to 'all'")
    group_of: list[int] = []  # each clip's recording as a dense id, in order of first appearance
    members: list[list[int]] = []  # each recording's clips
    if config.needs_recordings:
        ids: dict[Any, int] = {}
        group_of = [ids.setdefault(g, len(ids)) for g in groups]
        members = [[] for _ in ids]
        for i, g in enumerate(group_of):
            members[g].append(i)
    total_steps = config.epochs * steps_per_epoch
    warmup_steps = config.warmup_epochs * steps_per_epoch

    # The run's seed fixes the initial weights and queue (the same on every rank), then each
    # rank's drop path and augmentation draws (different per rank).
    moco = build_moco(model, config, world).to(device)
    torch.manual_seed(config.seed + 1000 * rank)
    augment_generator = torch.Generator(device=device).manual_seed(config.seed + 1000 * rank)
    preprocess = model.build_preprocessor().to(device)
    augment = MusicAugment(out_frames=preprocess.frames, **config.augment).to(device)
    for name in config.frozen:
        try:
            moco.encoder_q.backbone.get_submodule(name).requires_grad_(False)
        except AttributeError:
            children = ", ".join(n for n, _ in moco.encoder_q.backbone.named_children())
            raise ValueError(f"frozen: the {model.backbone} backbone has no sub-module {name!r} "
                             f"(its top-level ones: {children})") from None
    trainable = [p for p in moco.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(
        trainable, lr=config.lr, weight_decay=config.weight_decay, fused=device.type == "cuda"
    )

    resolved = {"model": model.to_dict(), "pretrain": asdict(config)}
    start_epoch, step, history = 0, 0, []
    checkpoint_path = Path(checkpoint_path)
    if resume and checkpoint_path.exists():
        state = load_checkpoint(checkpoint_path, map_location=device, kind=KIND_ENCODER)
        saved = state["config"]
        # A checkpoint of older code lacks settings added since; they had their defaults then.
        saved = {**saved, "pretrain": {**asdict(PretrainConfig()), **saved.get("pretrain", {})}}
        if saved != resolved:
            raise ResumeError(f"{checkpoint_path} was written with another configuration; resume with the same one")
        moco.load_state_dict(state["moco"])
        optimizer.load_state_dict(state["optimizer"])
        if len(state["rng"]) != world:
            raise ResumeError(f"{checkpoint_path} was written by {len(state['rng'])} processes; resume with as many")
        _set_rng_state(state["rng"][rank], augment_generator)
        start_epoch, step, history = state["epoch"] + 1, state["step"], list(state["history"])

    net: nn.Module = moco
    if world > 1:
        # Every rank enqueues the same gathered keys, so the queue needs no broadcast each step.
        net = nn.parallel.DistributedDataParallel(
            moco, device_ids=[device.index] if device.type == "cuda" else None, broadcast_buffers=False
        )
    if config.compile:
        # What both encoders compute, head included (pooled stages too): the queue and momentum
        # update around it stay eager. On a CPU without a bfloat16 unit inductor measured slower
        # than eager (BENCHMARKS.md), so the CPU recipe leaves this off.
        moco._project = torch.compile(moco._project)
    amp = autocast(device, config.bf16)

    for epoch in range(start_epoch, config.epochs):
        moco.train()
        epoch_generator = torch.Generator().manual_seed(config.seed + epoch)
        order = torch.randperm(len(clips), generator=epoch_generator)
        order = order[rank::world]
        batches = [order[i * config.batch_size : (i + 1) * config.batch_size].tolist() for i in range(steps_per_epoch)]
        if config.positives == "recording":
            # Each batch carries its clips, then their partners: rows [B, 2B) give the key views.
            batches = [b + _partners(b, members, group_of, epoch_generator) for b in batches]
        # Worker processes read and pad the next batches while the device trains on this one;
        # the batch order is fixed above, so the run does not depend on num_workers.
        loader = DataLoader(
            clips, batch_sampler=batches, collate_fn=_collate, num_workers=config.num_workers,
            pin_memory=device.type == "cuda", persistent_workers=False,
        )
        epoch_loss, tic = torch.zeros((), device=device), time.perf_counter()  # summed on the device
        for i, ((x, lengths), batch) in enumerate(zip(loader, batches)):
            x = x.to(device, non_blocking=True)  # lengths stay on the host: checked there, no device wait
            moments = clip_moments(x, lengths)
            x_q, x_k, _ = augment(x, lengths, augment_generator, moments=moments)
            if config.positives == "recording":
                # Both halves were augmented (the query half's key views and the partners' query
                # views are dropped): a fraction of the step's time, and one code path for the views.
                x_q, x_k = x_q[: config.batch_size], x_k[config.batch_size :]

            lr = cosine_with_warmup(step, total_steps, warmup_steps, config.lr)
            for group in optimizer.param_groups:
                group["lr"] = lr
            recordings = None
            if config.negatives == "other_recordings":
                recordings = torch.tensor([group_of[j] for j in batch[: config.batch_size]], device=device)
            with amp:
                logits, labels = net(preprocess(x_q), preprocess(x_k), recordings)
                loss = info_nce(logits.float(), labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(trainable, config.grad_clip)
            optimizer.step()

            step += 1
            epoch_loss += loss.detach()
            if on_step is not None and (step % log_every == 0 or i + 1 == steps_per_epoch):
                seen = (i + 1) * config.batch_size * world
                on_step({"step": step, "epoch": epoch, "loss": loss.item(), "lr": lr,
                         "samples_per_s": seen / (time.perf_counter() - tic)})

        row = {"epoch": epoch, "step": step, "loss": epoch_loss.item() / steps_per_epoch, "lr": lr,
               "samples_per_s": steps_per_epoch * config.batch_size * world / (time.perf_counter() - tic)}
        history.append(row)
        rng = [_rng_state(augment_generator)]  # one entry per rank, so each resumes its own draws
        if world > 1:
            rng = [None] * world
            dist.all_gather_object(rng, _rng_state(augment_generator))
        if rank == 0 and ((epoch + 1) % checkpoint_every == 0 or epoch + 1 == config.epochs):
            save_checkpoint(
                {
                    "moco": moco.state_dict(),
                    "encoder": moco.encoder_q.backbone.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "rng": rng,
                    "epoch": epoch,
                    "step": step,
                    "history": history,
                    "config": resolved,
                },
                checkpoint_path,
                kind=KIND_ENCODER,
            )
        if on_epoch is not None:
            on_epoch(row)
    return history


def _weights_mismatch(expected: dict[str, torch.Tensor], stored: object) -> str:
    """One line saying how ``stored`` differs from a module's state dict; "" when it fits.

    load_state_dict would say it too, over one line per tensor; this names the counts and one example.
    """
    if not isinstance(stored, dict) or not all(isinstance(v, torch.Tensor) for v in stored.values()):
        return "the encoder entry is not a dict of tensors"
    missing = sorted(expected.keys() - stored.keys())
    unexpected = sorted(stored.keys() - expected.keys())
    reshaped = sorted(k for k in expected.keys() & stored.keys() if expected[k].shape != stored[k].shape)
    if not (missing or unexpected or reshaped):
        return ""
    example = (
        f"{reshaped[0]} is {tuple(stored[reshaped[0]].shape)}, the model needs {tuple(expected[reshaped[0]].shape)}"
        if reshaped else f"e.g. {(missing or unexpected)[0]!r}"
    )
    return f"{len(missing)} tensors missing, {len(unexpected)} unexpected, {len(reshaped)} of another shape; {example}"


def source_digest(*extra: str | Path) -> str:
    """sha256 (hex) of this library's modules and ``extra`` files: keys resumable work (a
    finished run of older code must not be taken for this code's)."""
    digest = hashlib.sha256()
    for source in sorted([*Path(__file__).parent.glob("*.py"), *map(Path, extra)]):
        digest.update(source.read_bytes())
    return digest.hexdigest()


def run_key(settings: dict[str, Any], *sources: str | Path) -> str:
    """sha256 (hex) of ``settings`` (JSON, keys sorted) and :func:`source_digest` of ``sources``: names
    the folder of a resumable run, so that neither another configuration nor other code resumes it."""
    payload = json.dumps(settings, sort_keys=True, default=str) + source_digest(*sources)
    return hashlib.sha256(payload.encode()).hexdigest()


def record_provenance(checkpoint: str | Path, out: str | Path, data: dict[str, Any]) -> dict[str, Any]:
    """Write ``checkpoint`` to ``out`` with what the training loop does not know, for the model
    card: ``data`` ({dataset, splits, clips, hours}) and the software versions. Returns the state."""
    state = load_checkpoint(checkpoint)
    state.update(data=data, software=software_versions())
    save_checkpoint(state, out)
    return state


def training_clip_seconds(state: dict[str, Any]) -> float | None:
    """The length in seconds of the clips an encoder checkpoint was pre-trained on: the median its provenance
    records, or for checkpoints written before that, its hours over its clips; None when it records neither."""
    data = state.get("data") or {}
    if isinstance(data.get("clip_seconds"), (int, float)) and data["clip_seconds"] > 0:
        return float(data["clip_seconds"])
    if isinstance(data.get("hours"), (int, float)) and isinstance(data.get("clips"), int) and data["clips"] > 0:
        return float(data["hours"]) * 3600 / data["clips"] or None
    return None


def load_encoder(checkpoint_path: str | Path, *, random_init: bool = False, seed: int = 0) -> Encoder:
    """The frozen pre-trained encoder of a checkpoint, or the same architecture freshly
    initialised with ``seed`` (the paper's Random-Init baseline) when ``random_init``.

    Raises:
        CheckpointError: the file is not an encoder checkpoint (see :func:`s3t.checkpoint.load_checkpoint`),
            names an architecture this s3t cannot build, or holds weights that do not fit it.
    """
    state = load_checkpoint(checkpoint_path, kind=KIND_ENCODER)
    try:
        model = ModelConfig.from_dict(state["config"]["model"])
        # Seeded for the Random-Init baseline; otherwise the weights are replaced below anyway.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            encoder = Encoder(model)
    except (KeyError, TypeError, ValueError) as err:
        raise CheckpointError(
            f"{checkpoint_path} describes a model this s3t cannot build ({type(err).__name__}: {err})"
        ) from None
    if not random_init:
        mismatch = _weights_mismatch(encoder.backbone.state_dict(), state["encoder"])
        if mismatch:
            raise CheckpointError(
                f"{checkpoint_path}: its weights do not fit the {model.backbone} architecture it names ({mismatch})"
            )
        encoder.backbone.load_state_dict(state["encoder"])
    encoder.requires_grad_(False)
    return encoder.eval()
