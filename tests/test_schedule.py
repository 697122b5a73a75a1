import math

import pytest

from s3t.schedule import cosine_with_warmup


def test_warmup_is_linear_and_reaches_base_lr():
    lrs = [cosine_with_warmup(s, total_steps=100, warmup_steps=10, base_lr=1.0) for s in range(10)]
    assert lrs == pytest.approx([(s + 1) / 10 for s in range(10)])
    assert cosine_with_warmup(10, 100, 10, 1.0) == pytest.approx(1.0)


def test_cosine_decays_monotonically_to_min_lr():
    lrs = [cosine_with_warmup(s, 100, 10, 1.0, min_lr=0.1) for s in range(10, 101)]
    assert all(a >= b for a, b in zip(lrs, lrs[1:]))
    assert lrs[-1] == pytest.approx(0.1)
    # Half-way through the decay the cosine is at its midpoint.
    assert cosine_with_warmup(55, 100, 10, 1.0) == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.5)))


@pytest.mark.parametrize("total,warmup", [(0, 0), (10, 11), (10, -1)])
def test_bad_arguments_raise(total, warmup):
    with pytest.raises(ValueError):
        cosine_with_warmup(0, total, warmup, 1.0)
