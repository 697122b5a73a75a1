"""Tests for s3t.moco: gradients, momentum update, queue, logits, validation and a 2-rank gloo run."""

from __future__ import annotations

import math
from functools import partial

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from torch import nn

from s3t.backbones import swin_cpu
from s3t.moco import (
    MoCo,
    ProjectionHead,
    batch_shuffle,
    batch_unshuffle,
    contrastive_logits,
    info_nce,
)

SIDE = 4  # tiny (B, 1, 4, 4) "spectrograms"
DIM = 5


class TinyBackbone(nn.Module):
    """(B, 1, SIDE, SIDE) -> (B, num_features): a linear map, optionally followed by BatchNorm."""

    def __init__(self, num_features: int = 6, batch_norm: bool = False) -> None:
        super().__init__()
        self.proj = nn.Linear(SIDE * SIDE, num_features)
        self.norm = nn.BatchNorm1d(num_features) if batch_norm else nn.Identity()
        self.num_features = num_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.proj(x.flatten(1)))


def views(batch: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 1, SIDE, SIDE, generator=g), torch.randn(batch, 1, SIDE, SIDE, generator=g)


def tiny_moco(**kwargs) -> MoCo:
    options = dict(dim=DIM, K=12, m=0.9, T=0.1)
    options.update(kwargs)
    return MoCo(TinyBackbone, **options)


def keys_of(model: MoCo, im_k: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return F.normalize(model.encoder_k(im_k), dim=1)


def test_encoders_share_structure_and_start_equal():
    model = tiny_moco()
    assert isinstance(model.encoder_q.backbone, TinyBackbone)
    assert isinstance(model.encoder_q.head, ProjectionHead)
    assert model.encoder_k.backbone is not model.encoder_q.backbone
    for p_q, p_k in zip(model.encoder_q.parameters(), model.encoder_k.parameters()):
        assert torch.equal(p_q, p_k)
        assert p_q.requires_grad and not p_k.requires_grad
    assert model.queue.shape == (DIM, 12)
    torch.testing.assert_close(model.queue.norm(dim=0), torch.ones(12))
    assert int(model.queue_ptr) == 0
    assert not model.shuffle_bn
    assert MoCo(partial(TinyBackbone, batch_norm=True), dim=DIM, K=12).shuffle_bn


def test_only_the_query_encoder_receives_gradients():
    model = tiny_moco()
    logits, labels = model(*views(4, seed=0))
    info_nce(logits, labels).backward()
    assert all(p.grad is None for p in model.encoder_k.parameters())
    grads = [p.grad for p in model.encoder_q.parameters()]
    assert all(g is not None for g in grads)
    assert all(g.abs().sum() > 0 for g in grads)


def test_key_encoder_moves_by_exactly_the_momentum_rule():
    model = tiny_moco(m=0.9)
    with torch.no_grad():  # make the encoders differ so the update is not trivially k = q
        for p in model.encoder_q.parameters():
            p.add_(torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())))
    q_old = [p.detach().clone() for p in model.encoder_q.parameters()]
    k_old = [p.detach().clone() for p in model.encoder_k.parameters()]
    model(*views(4, seed=1))
    for p_k, k0, q0 in zip(model.encoder_k.parameters(), k_old, q_old):
        assert not torch.equal(p_k, k0)
        torch.testing.assert_close(p_k, 0.9 * k0 + 0.1 * q0)
    # The forward pass itself does not touch the query encoder.
    for p_q, q0 in zip(model.encoder_q.parameters(), q_old):
        assert torch.equal(p_q, q0)


def test_queue_pointer_advances_by_the_batch_and_wraps():
    model = tiny_moco(K=12)
    pointers = []
    for step in range(4):
        im_q, im_k = views(4, seed=10 + step)
        start = int(model.queue_ptr)
        model(im_q, im_k)
        pointers.append(int(model.queue_ptr))
        # The columns written this step are this batch's normalised keys.
        torch.testing.assert_close(model.queue[:, start:start + 4].T, keys_of(model, im_k))
    assert pointers == [4, 8, 0, 4]  # K / B = 3 batches fill the queue once


def test_logits_hold_the_positive_first_then_the_old_queue():
    model = tiny_moco(K=12, T=0.1)
    im_q, im_k = views(4, seed=2)
    queue_before = model.queue.clone()
    logits, labels = model(im_q, im_k)
    assert logits.shape == (4, 1 + 12)
    assert labels.dtype == torch.long and torch.equal(labels, torch.zeros(4, dtype=torch.long))
    with torch.no_grad():
        q = F.normalize(model.encoder_q(im_q), dim=1)
    k = keys_of(model, im_k)
    torch.testing.assert_close(logits[:, 0], (q * k).sum(dim=1) / 0.1)
    # Negatives come from the queue as it was before this batch was enqueued.
    torch.testing.assert_close(logits[:, 1:], q @ queue_before / 0.1)


def test_contrastive_logits_on_hand_values():
    q = torch.tensor([[1.0, 0.0]])
    k = torch.tensor([[0.6, 0.8]])
    queue = torch.tensor([[0.0, -1.0], [1.0, 0.0]])  # negatives (0, 1) and (-1, 0)
    logits, labels = contrastive_logits(q, k, queue, T=0.5)
    torch.testing.assert_close(logits, torch.tensor([[1.2, 0.0, -2.0]]))
    assert labels.tolist() == [0]


def test_queued_keys_of_the_query_s_recording_are_no_negatives():
    model = tiny_moco(K=8, queue_groups=True)
    assert model.queue_group.tolist() == [-1] * 8
    first = torch.tensor([3, 3, 7, 9])
    model(*views(4, seed=0), groups=first)  # fills columns 0-3 with recordings 3, 3, 7, 9
    assert model.queue_group.tolist() == [3, 3, 7, 9, -1, -1, -1, -1]
    im_q, im_k = views(4, seed=1)
    queue_before = model.queue.clone()
    logits, _ = model(im_q, im_k, groups=torch.tensor([3, 7, 5, 5]))
    with torch.no_grad():
        q = F.normalize(model.encoder_q(im_q), dim=1)
    masked = torch.isinf(logits[:, 1:])
    assert masked.tolist() == [
        [True, True, False, False, False, False, False, False],  # recording 3's two queued keys
        [False, False, True, False, False, False, False, False],  # recording 7's
        [False] * 8,
        [False] * 8,
    ]
    torch.testing.assert_close(logits[:, 1:][~masked], (q @ queue_before / model.T)[~masked])
    # The loss is InfoNCE over the remaining negatives only.
    row = torch.cat([logits[0, :1], logits[0, 3:]])
    torch.testing.assert_close(info_nce(logits[:1], torch.zeros(1, dtype=torch.long)), -torch.log_softmax(row, 0)[0])
    assert model.queue_group.tolist() == [3, 3, 7, 9, 3, 7, 5, 5]
    with pytest.raises(ValueError, match="needs each query's recording"):
        model(im_q, im_k)
    with pytest.raises(ValueError, match="build it with queue_groups=True"):
        tiny_moco(K=8)(im_q, im_k, groups=first)


def test_info_nce_is_low_for_a_clear_positive_and_log_1_plus_k_for_a_tie():
    labels = torch.zeros(3, dtype=torch.long)
    confident = torch.tensor([[50.0, 0.0, 0.0, 0.0]]).repeat(3, 1)
    assert info_nce(confident, labels) < 1e-6
    tie = torch.zeros(3, 4)
    torch.testing.assert_close(info_nce(tie, labels), torch.tensor(math.log(4)))
    wrong = torch.tensor([[0.0, 50.0, 0.0, 0.0]]).repeat(3, 1)
    assert info_nce(wrong, labels) > 49


def test_projection_head_layers():
    head = ProjectionHead(6, 128)
    linears = [mod for mod in head.modules() if isinstance(mod, nn.Linear)]
    assert [(lin.in_features, lin.out_features) for lin in linears] == [(6, 6), (6, 6), (6, 128)]
    assert sum(isinstance(mod, nn.ReLU) for mod in head.modules()) == 2
    moco_v2 = ProjectionHead(6, 128, hidden_dim=32, num_hidden=1)
    linears = [mod for mod in moco_v2.modules() if isinstance(mod, nn.Linear)]
    assert [(lin.in_features, lin.out_features) for lin in linears] == [(6, 32), (32, 128)]
    assert moco_v2(torch.randn(3, 6)).shape == (3, 128)
    with pytest.raises(ValueError, match="num_hidden must be >= 0"):
        ProjectionHead(6, num_hidden=-1)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            dict(K=1000, batch_size=128, world_size=4),
            r"queue size K=1000 is not divisible by the global batch 128\*4=512; "
            r"choose K as a multiple of 512 \(e\.g\. 65536\)",
        ),
        (dict(K=0), "queue size K must be >= 1"),
        (dict(m=1.0), r"momentum m must be in \[0, 1\)"),
        (dict(m=-0.1), r"momentum m must be in \[0, 1\)"),
        (dict(T=0.0), "temperature T must be > 0"),
        (dict(K=12, batch_size=0), "batch_size must be >= 1"),
    ],
)
def test_construction_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        tiny_moco(**kwargs)


def test_paper_queue_and_batch_are_accepted():
    model = MoCo(TinyBackbone, dim=DIM, K=65536, batch_size=128, world_size=4)
    assert model.queue.shape == (DIM, 65536)


def test_backbone_without_num_features_is_rejected():
    with pytest.raises(ValueError, match="must have a positive int attribute num_features"):
        MoCo(lambda: nn.Linear(3, 3), K=4)


def test_batch_that_does_not_divide_the_queue_is_rejected_at_run_time():
    model = tiny_moco(K=12)
    with pytest.raises(ValueError, match="drop_last=True"):
        model(*views(5, seed=3))


def test_mismatched_views_are_rejected():
    model = tiny_moco(K=12)
    im_q, _ = views(4, seed=4)
    with pytest.raises(ValueError, match="same shape"):
        model(im_q, im_q[:2])


def test_single_process_batch_shuffle_round_trips():
    x = torch.arange(6.0).unsqueeze(1)  # (6, 1): sample i holds the value i
    shuffled, perm = batch_shuffle(x, generator=torch.Generator().manual_seed(0))
    assert sorted(shuffled.squeeze(1).tolist()) == list(range(6))
    assert torch.equal(shuffled.squeeze(1).long(), perm)
    assert torch.equal(batch_unshuffle(shuffled, perm), x)


def test_moco_trains_one_step_on_swin_cpu():
    model = MoCo(partial(swin_cpu, drop_path_rate=0.0), dim=16, K=4, batch_size=2)
    g = torch.Generator().manual_seed(5)
    im_q, im_k = torch.randn(2, 1, 256, 256, generator=g), torch.randn(2, 1, 256, 256, generator=g)
    logits, labels = model(im_q, im_k)
    assert logits.shape == (2, 5)
    loss = info_nce(logits, labels)
    loss.backward()
    assert torch.isfinite(loss)
    assert model.encoder_q.backbone.patch_embed.proj.weight.grad is not None


# ---------------------------------------------------------------------------------------------
# Two processes, gloo backend, CPU
# ---------------------------------------------------------------------------------------------

WORLD = 2
LOCAL_BATCH = 3


def _gloo_worker(rank: int, init_file: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    try:
        torch.set_num_threads(1)

        # batch_shuffle: rank r holds global samples r*B .. r*B+B-1 (their ids as values).
        x = (torch.arange(LOCAL_BATCH) + rank * LOCAL_BATCH).float().unsqueeze(1)  # (B, 1)
        shuffled, perm = batch_shuffle(x, generator=torch.Generator().manual_seed(rank))
        parts = [torch.empty_like(shuffled) for _ in range(WORLD)]
        dist.all_gather(parts, shuffled)
        # Every rank got rank 0's permutation, and the slices are the global batch in that order.
        assert torch.equal(torch.cat(parts).squeeze(1).long(), perm)
        assert not torch.equal(perm, torch.arange(WORLD * LOCAL_BATCH))
        assert torch.equal(batch_unshuffle(shuffled, perm), x)

        # One MoCo step per backbone kind; keys from both ranks reach each queue in rank order.
        inputs = [views(LOCAL_BATCH, seed=100 + r) for r in range(WORLD)]  # every rank can rebuild all
        for batch_norm in (False, True):
            torch.manual_seed(0)  # same initial weights and queue on both ranks
            model = MoCo(
                partial(TinyBackbone, batch_norm=batch_norm),
                dim=DIM,
                K=4 * WORLD * LOCAL_BATCH,
                m=0.9,
                T=0.1,
                batch_size=LOCAL_BATCH,
                world_size=WORLD,
            )
            assert model.shuffle_bn is batch_norm
            if batch_norm:
                # Eval-mode BN is per-sample, so shuffled keys must come back exactly in order.
                model.eval()
            im_q, im_k = inputs[rank]
            model(im_q, im_k)
            expected = torch.cat([keys_of(model, inputs[r][1]) for r in range(WORLD)])  # (W*B, DIM)
            torch.testing.assert_close(model.queue[:, : WORLD * LOCAL_BATCH].T, expected)
            assert int(model.queue_ptr) == WORLD * LOCAL_BATCH
            queues = [torch.empty_like(model.queue) for _ in range(WORLD)]
            dist.all_gather(queues, model.queue)
            assert torch.equal(queues[0], queues[1])
    finally:
        dist.destroy_process_group()


def test_two_gloo_ranks_share_keys_in_rank_order(tmp_path):
    mp.spawn(_gloo_worker, args=(str(tmp_path / "dist_init"),), nprocs=WORLD, join=True)


def test_a_pool_feeds_the_head_and_trains_the_backbone_through_it():
    def pool(backbone: nn.Module, x: torch.Tensor) -> torch.Tensor:  # (B, 1, 4, 4) -> (B, 8): row means
        h = backbone(x)
        return torch.cat([h, x.mean(3).flatten(1) * h[:, :1]], 1)[:, :8]

    torch.manual_seed(0)
    model = tiny_moco(pool=pool, pool_dim=8)
    assert model.encoder_q.head.mlp[0].in_features == 8  # pool_dim in, the backbone's width hidden
    assert model.encoder_q.head.mlp[0].out_features == model.encoder_q.backbone.num_features
    im_q, im_k = views(4, seed=1)
    logits, labels = model(im_q, im_k)
    info_nce(logits, labels).backward()
    assert model.encoder_q.backbone.proj.weight.grad.abs().sum() > 0
    with torch.no_grad():
        expected = F.normalize(model.encoder_k.head(pool(model.encoder_k.backbone, im_k)), dim=1)
    assert torch.allclose(model.queue[:, :4].T, expected, atol=1e-6)  # keys went through the pool too
    with pytest.raises(ValueError, match="pool_dim"):
        tiny_moco(pool=pool)
    with pytest.raises(ValueError, match="pool_dim"):
        tiny_moco(pool_dim=8)
