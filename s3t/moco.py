"""MoCo v2 for S3T: query encoder, momentum key encoder and a queue of keys (paper Sections 2.2, 3.2).

The query ``q = normalize(encoder_q(x_q))`` is contrasted with its key ``k+ = normalize(encoder_k(x_k))``
and the ``K`` keys of earlier batches held in ``queue``, with InfoNCE at temperature ``T``; the key
encoder follows the query encoder as an exponential moving average with momentum ``m``. The paper's
values are ``K = 65536`` and a global batch of 4 GPUs x 128 (Section 3.2, following MoCo [3]); it does
not state ``m`` or ``T``, so we keep MoCo v2's ``m = 0.999`` and ``T = 0.2``.

Ambiguities and choices:

- Projection head. The paper follows "the MoCo v2 configuration using a projection head with two
  hidden fully-connected layers" to 128-d. MoCo v2's head has one hidden layer (fc-ReLU-fc). We read
  the paper literally: ``num_hidden = 2`` (fc-ReLU-fc-ReLU-fc, hidden width = backbone width) by
  default; ``num_hidden = 1`` gives MoCo v2's head.
- Shuffling BN. MoCo shuffles the key batch across GPUs so that BatchNorm statistics cannot leak
  which key belongs to which query. Swin uses LayerNorm and needs none of this. For backbones with
  BatchNorm (``resnet50``, ``cnn_bigru``) we shuffle across ranks when torch.distributed is
  initialised with more than one process. In a single process the whole batch shares one set of BN
  statistics, so a shuffle would change nothing; such runs keep the leak (they are CPU smoke runs).
  Do not convert the backbone to SyncBatchNorm: it would pool the statistics over all ranks again.
- Momentum update. Only parameters are averaged; buffers are not. Swin's buffers are constants
  (relative position index, attention masks) equal in both encoders from the deep copy; BatchNorm
  running statistics of ``encoder_k`` come from its own forward passes, as in MoCo.
- What the head sees. MoCo feeds the backbone's globally pooled output to the head. S3T's clip
  embedding may pool otherwise (``embed_pooling: bands`` keeps the frequency layout, see
  :mod:`s3t.model`), and a head that only sees a global average gives pre-training no reason to
  make that layout informative. ``pool(backbone, x) -> (B, pool_dim)`` replaces the backbone's own
  output as the head's input (and the head's hidden width stays the backbone's ``num_features``);
  without it the module is MoCo's. The paper does not say; its default is MoCo's.
- Negatives of the query's own recording. MoCo counts every queued key as a negative. Where clips
  are pieces of longer recordings, the queue holds other pieces of the query's recording, pushed
  away as if they were other music. With ``queue_groups`` the module keeps each queued key's
  recording id, and ``forward(..., groups=...)`` drops the keys of the query's own recording from its
  negatives (their logits become -inf). The paper does not say; its default keeps them all.
- Key encoder mode. ``encoder_k`` follows the module's train/eval mode like MoCo's, so drop path and
  BN batch statistics are active for keys during training.
- Distributed queue. Keys from all ranks are gathered (rank order) before they are enqueued, so every
  rank holds the same queue. ``K`` must be a multiple of the global batch: the data loader must use
  ``drop_last=True`` so that the last, smaller batch never reaches the queue.

Wrap the whole :class:`MoCo` module in DistributedDataParallel: DDP copies rank 0's weights and
queue to every rank at construction, and ``encoder_k`` has no trainable parameters, so DDP reduces
no gradients for it.
"""

from __future__ import annotations

import copy
from collections import OrderedDict
from typing import Callable

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

__all__ = [
    "MoCo",
    "ProjectionHead",
    "batch_shuffle",
    "batch_unshuffle",
    "concat_all_gather",
    "contrastive_logits",
    "info_nce",
]


def _distributed_world_size() -> int:
    """Number of processes in the default group, 1 when torch.distributed is not initialised."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return 1


@torch.no_grad()
def concat_all_gather(x: torch.Tensor) -> torch.Tensor:
    """Concatenate ``x`` (B, ...) from every rank in rank order: (world_size * B, ...). No gradient.

    Returns ``x`` itself when torch.distributed is not initialised. Every rank must pass the same
    batch size.
    """
    world_size = _distributed_world_size()
    if world_size == 1:
        return x
    parts = [torch.empty_like(x) for _ in range(world_size)]
    dist.all_gather(parts, x.contiguous())
    return torch.cat(parts, dim=0)


@torch.no_grad()
def batch_shuffle(
    x: torch.Tensor, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Give this rank a random slice of the global batch (for shuffling BN across ranks).

    x: (B, ...) local batch. Rank 0 draws a permutation ``perm`` of the global batch (W * B) and
    broadcasts it; rank ``r`` receives global samples ``perm[r*B:(r+1)*B]``. Returns the shuffled
    local batch (B, ...) and ``perm`` (W * B,), to be passed to :func:`batch_unshuffle`.
    """
    gathered = concat_all_gather(x)  # (W*B, ...)
    perm = torch.randperm(gathered.shape[0], generator=generator).to(x.device)
    if _distributed_world_size() > 1:
        dist.broadcast(perm, src=0)
        rank = dist.get_rank()
    else:
        rank = 0
    local = x.shape[0]
    return gathered[perm[rank * local:(rank + 1) * local]], perm


@torch.no_grad()
def batch_unshuffle(y: torch.Tensor, perm: torch.Tensor) -> torch.Tensor:
    """Undo :func:`batch_shuffle`: y (B, ...) computed from the shuffled slice -> (B, ...) in local order."""
    gathered = concat_all_gather(y)  # (W*B, ...) in shuffled order
    restored = torch.empty_like(gathered)
    restored[perm] = gathered  # shuffled position j held global sample perm[j]
    rank = dist.get_rank() if _distributed_world_size() > 1 else 0
    local = y.shape[0]
    return restored[rank * local:(rank + 1) * local]


def contrastive_logits(
    q: torch.Tensor, k: torch.Tensor, queue: torch.Tensor, T: float, mask: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """InfoNCE logits of queries against their positive keys and the queued negatives.

    q: (B, C) and k: (B, C), L2-normalised; queue: (C, K) of L2-normalised negatives; T: temperature;
    mask: (B, K) bool, True where a queued key is not a negative of that query (its logit is -inf).
    Returns logits (B, 1 + K), column 0 the positive ``q.k / T``, and labels (B,) of zeros (long).
    """
    l_pos = torch.einsum("bc,bc->b", q, k).unsqueeze(1)  # (B, 1)
    l_neg = q @ queue  # (B, K)
    if mask is not None:
        l_neg = l_neg.masked_fill(mask, float("-inf"))
    logits = torch.cat([l_pos, l_neg], dim=1) / T  # (B, 1+K)
    labels = torch.zeros(logits.shape[0], dtype=torch.long, device=logits.device)  # (B,)
    return logits, labels


def info_nce(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """InfoNCE loss: cross entropy of logits (B, 1+K) with the positive's index labels (B,); a scalar."""
    return F.cross_entropy(logits, labels)


class ProjectionHead(nn.Module):
    """MLP head: ``num_hidden`` x (Linear -> ReLU), then Linear to ``out_dim``. (B, in_dim) -> (B, out_dim).

    ``hidden_dim`` defaults to ``in_dim``. ``num_hidden = 2`` follows the paper's "two hidden
    fully-connected layers"; ``num_hidden = 1`` is MoCo v2's head; ``num_hidden = 0`` is linear.
    """

    def __init__(
        self, in_dim: int, out_dim: int = 128, hidden_dim: int | None = None, num_hidden: int = 2
    ) -> None:
        super().__init__()
        hidden_dim = in_dim if hidden_dim is None else hidden_dim
        if min(in_dim, out_dim, hidden_dim) < 1:
            raise ValueError(
                f"in_dim, out_dim and hidden_dim must be positive, got {in_dim}, {out_dim}, {hidden_dim}"
            )
        if num_hidden < 0:
            raise ValueError(f"num_hidden must be >= 0 (number of hidden layers), got {num_hidden}")
        layers: list[nn.Module] = []
        width = in_dim
        for _ in range(num_hidden):
            layers += [nn.Linear(width, hidden_dim), nn.ReLU(inplace=True)]
            width = hidden_dim
        layers.append(nn.Linear(width, out_dim))
        self.mlp = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp(x)


class MoCo(nn.Module):
    """MoCo v2 with a query encoder, a momentum key encoder and a queue of K keys.

    Args:
        backbone_factory: builds the feature extractor, a module ``(B, ...) -> (B, num_features)``
            with an int attribute ``num_features`` (see :mod:`s3t.backbones`).
        dim: output dimension of the projection head (128 in the paper).
        K: queue size, the number of negative keys (65536).
        m: momentum of the key encoder update (MoCo's 0.999).
        T: softmax temperature (MoCo v2's 0.2).
        num_hidden: hidden layers in the projection head (2, see the module docstring).
        batch_size: per-rank batch size; when given, ``K`` is checked to be a multiple of
            ``batch_size * world_size`` at construction.
        world_size: number of data-parallel processes, for that check.
        pool: ``(backbone, x) -> (B, pool_dim)``, the head's input instead of ``backbone(x)``
            (see "What the head sees" in the module docstring); needs ``pool_dim``.
        pool_dim: length of ``pool``'s vectors.
        queue_groups: keep each queued key's recording id (buffer ``queue_group``, (K,) long, -1 for
            none yet), so that ``forward(..., groups=...)`` leaves the query's own recording out of its
            negatives (see the module docstring).

    ``encoder_q`` and ``encoder_k`` are ``nn.Sequential(backbone, head)`` with named children
    ``.backbone`` and ``.head``; downstream features are ``encoder_q.backbone(x)``.
    """

    def __init__(
        self,
        backbone_factory: Callable[[], nn.Module],
        dim: int = 128,
        K: int = 65536,
        m: float = 0.999,
        T: float = 0.2,
        num_hidden: int = 2,
        batch_size: int | None = None,
        world_size: int = 1,
        pool: Callable[[nn.Module, torch.Tensor], torch.Tensor] | None = None,
        pool_dim: int | None = None,
        queue_groups: bool = False,
    ) -> None:
        super().__init__()
        if K < 1:
            raise ValueError(f"queue size K must be >= 1, got {K}")
        if not 0.0 <= m < 1.0:
            raise ValueError(f"momentum m must be in [0, 1), got {m} (MoCo uses 0.999)")
        if T <= 0:
            raise ValueError(f"temperature T must be > 0, got {T} (MoCo v2 uses 0.2)")
        if world_size < 1:
            raise ValueError(f"world_size must be >= 1, got {world_size}")
        if batch_size is not None:
            if batch_size < 1:
                raise ValueError(f"batch_size must be >= 1, got {batch_size}")
            global_batch = batch_size * world_size
            if K % global_batch:
                raise ValueError(
                    f"queue size K={K} is not divisible by the global batch {batch_size}*{world_size}="
                    f"{global_batch}; choose K as a multiple of {global_batch} (e.g. {global_batch * 128})"
                )
        if (pool is None) != (pool_dim is None) or (pool_dim is not None and pool_dim < 1):
            raise ValueError(f"pool and a positive pool_dim go together, got pool={pool!r}, pool_dim={pool_dim!r}")
        self.K = K
        self.m = m
        self.T = T
        self.pool = pool

        backbone = backbone_factory()
        num_features = getattr(backbone, "num_features", None)
        if not isinstance(num_features, int) or num_features < 1:
            raise ValueError(
                f"the backbone ({type(backbone).__name__}) must have a positive int attribute "
                f"num_features (its embedding size), got {num_features!r}"
            )
        head = (ProjectionHead(num_features, dim, num_hidden=num_hidden) if pool is None
                else ProjectionHead(pool_dim, dim, hidden_dim=num_features, num_hidden=num_hidden))
        self.encoder_q = nn.Sequential(OrderedDict(backbone=backbone, head=head))
        self.encoder_k = copy.deepcopy(self.encoder_q)
        self.encoder_k.requires_grad_(False)
        self.shuffle_bn = any(
            isinstance(mod, nn.modules.batchnorm._BatchNorm) for mod in self.encoder_k.modules()
        )

        self.register_buffer("queue", F.normalize(torch.randn(dim, K), dim=0))  # (dim, K)
        self.register_buffer("queue_ptr", torch.zeros(1, dtype=torch.long))  # next column to write
        if queue_groups:
            self.register_buffer("queue_group", torch.full((K,), -1, dtype=torch.long))  # (K,)

    @torch.no_grad()
    def momentum_update(self) -> None:
        """``param_k = m * param_k + (1 - m) * param_q`` for every parameter (buffers are not averaged)."""
        # One fused call over all parameters (as torch.optim's foreach path), not one per tensor.
        params_k = list(self.encoder_k.parameters())
        params_q = [p.detach() for p in self.encoder_q.parameters()]
        torch._foreach_lerp_(params_k, params_q, 1.0 - self.m)

    @torch.no_grad()
    def dequeue_and_enqueue(self, keys: torch.Tensor, groups: torch.Tensor | None = None) -> None:
        """Write keys (B, dim), and their recordings ``groups`` (B,) where kept, from every rank (rank
        order) over the oldest queue columns."""
        keys = concat_all_gather(keys)  # (W*B, dim)
        n = keys.shape[0]
        if self.K % n:
            raise ValueError(
                f"queue size K={self.K} is not divisible by the global batch of {n} keys; every batch "
                f"must have the same size dividing K (use drop_last=True in the DataLoader)"
            )
        # Columns and pointer computed on the device: reading the pointer into Python would make
        # the host wait for the GPU at every step.
        columns = (self.queue_ptr + torch.arange(n, device=keys.device)) % self.K  # (n,)
        self.queue.index_copy_(1, columns, keys.T.to(self.queue.dtype))
        if groups is not None:
            self.queue_group.index_copy_(0, columns, concat_all_gather(groups))
        self.queue_ptr.copy_((self.queue_ptr + n) % self.K)

    def _project(self, encoder: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
        """(B, C, S, S) -> (B, dim): ``encoder(x)``, or its head on ``pool(encoder.backbone, x)``."""
        if self.pool is None:
            return encoder(x)
        return encoder.head(self.pool(encoder.backbone, x))

    @torch.no_grad()
    def _keys(self, im_k: torch.Tensor) -> torch.Tensor:
        """Normalised keys (B, dim) of im_k, BN-shuffled across ranks where that matters."""
        if self.shuffle_bn and _distributed_world_size() > 1:
            shuffled, perm = batch_shuffle(im_k)
            return batch_unshuffle(F.normalize(self._project(self.encoder_k, shuffled), dim=1), perm)
        return F.normalize(self._project(self.encoder_k, im_k), dim=1)

    def forward(
        self, im_q: torch.Tensor, im_k: torch.Tensor, groups: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """im_q, im_k: (B, C, S, S) two augmented views; groups: (B,) long recording ids (needs
        ``queue_groups``), whose queued keys are then no negatives. Returns logits (B, 1+K) and
        labels (B,) of zeros.

        Updates ``encoder_k`` and enqueues this batch's keys (and groups) as side effects.
        """
        if im_q.shape != im_k.shape:
            raise ValueError(
                "query and key batches must have the same shape, got "
                f"{tuple(im_q.shape)} and {tuple(im_k.shape)}"
            )
        keeps_groups = hasattr(self, "queue_group")
        if groups is not None and not keeps_groups:
            raise ValueError("groups were given but this MoCo keeps no recording ids; build it with queue_groups=True")
        if groups is None and keeps_groups:
            raise ValueError("a MoCo built with queue_groups=True needs each query's recording (groups)")
        q = F.normalize(self._project(self.encoder_q, im_q), dim=1)  # (B, dim)
        with torch.no_grad():
            self.momentum_update()
            k = self._keys(im_k)  # (B, dim)
        mask = None if groups is None else groups.unsqueeze(1) == self.queue_group.unsqueeze(0)  # (B, K)
        logits, labels = contrastive_logits(q, k, self.queue.clone().detach(), self.T, mask)
        self.dequeue_and_enqueue(k, groups)
        return logits, labels
