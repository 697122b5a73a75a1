"""Tests for flows/featurize.py: corpus featurization mapped over shards on a two-worker Dask
cluster through Prefect writes exactly the single-process output (every shard file, index.csv,
rejects.csv, summary.json), skips complete shards, survives a failing shard,
and cleans up after an interrupted run.

One Prefect test server (prefect_test_harness: a temporary SQLite database, no server to set
up) and one LocalCluster of two workers serve the module; the flow reaches the cluster by its
address, the path a run on an existing cluster takes. The workers are threads: worker
processes each import torch and Prefect on their first task, which on two cores doubles the
module's run time. The same comparison on two worker processes, where every job and result
crosses a process boundary as it does on a real cluster, is marked slow (``pytest -m slow``).
The default LocalCluster path is checked through the runner's settings.
"""

from __future__ import annotations

import os
import time

import pytest

pytest.importorskip("prefect_dask")
distributed = pytest.importorskip("distributed")

from flows.featurize import ShardsFailedError, dask_task_runner, featurize_on_dask  # noqa: E402
from s3t.shards import featurize_to_shards  # noqa: E402
from tests.test_shards import (  # noqa: E402
    BAD,
    CFG,
    CLIPS_PER_SHARD,
    GOOD,
    MIN_SECONDS,
    _mtimes,
    _read_csv,
    _tree,
    _write_corpus,
)

SETTINGS = {"clips_per_shard": CLIPS_PER_SHARD, "batch_size": 2, "min_seconds": MIN_SECONDS}
TIMINGS = ("wall_s", "decode_s", "decode_wait_s", "cqt_s", "write_s")


@pytest.fixture(scope="module")
def prefect_server():
    from prefect.testing.utilities import prefect_test_harness

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DO_NOT_TRACK", "1")
        mp.setenv("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
        with prefect_test_harness(server_startup_timeout=60):
            yield


def _local_cluster(processes: bool):
    return distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=processes, dashboard_address=":0")


@pytest.fixture(scope="module")
def cluster():
    with _local_cluster(processes=False) as local, distributed.Client(local) as client:
        yield local.scheduler_address, client


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return _write_corpus(tmp_path_factory.mktemp("audio"))


@pytest.fixture(scope="module")
def single(corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("single")
    return out, featurize_to_shards(corpus, out, CFG, **SETTINGS)


def _counts(summary):
    return {k: v for k, v in summary.items() if k not in TIMINGS}


def _check_same_output_on_two_workers(address, client, corpus, single, out):
    reference, expected = single
    executed_before = client.run(lambda dask_worker: dask_worker.state.executed_count)
    summary = featurize_on_dask(corpus, out, CFG, address=address, **SETTINGS)

    got, want = _tree(out), _tree(reference)
    assert sorted(got) == sorted(want)  # plan.json, index.csv, rejects.csv, summary.json, 3 files per shard
    assert len([n for n in want if n.startswith("shards/")]) == 3 * expected["shards"]
    for name in want:
        assert got[name] == want[name], name
    assert _counts(summary) == _counts(expected)
    assert summary["clips"] == len(GOOD) and summary["rejected"] == len(BAD) and summary["shards_resumed"] == 0
    assert all(summary[k] >= 0.0 for k in TIMINGS) and summary["cqt_s"] > 0.0
    # One task per shard, spread over both workers.
    executed = client.run(lambda dask_worker: dask_worker.state.executed_count)
    per_worker = [executed[w] - executed_before[w] for w in executed]
    assert sum(per_worker) == expected["shards"] and min(per_worker) >= 1, per_worker


def test_dask_flow_writes_the_single_process_output_on_two_workers(prefect_server, cluster, corpus, single, tmp_path):
    address, client = cluster
    _check_same_output_on_two_workers(address, client, corpus, single, tmp_path)


@pytest.mark.slow
def test_dask_flow_writes_the_single_process_output_on_two_worker_processes(prefect_server, corpus, single, tmp_path):
    with _local_cluster(processes=True) as local, distributed.Client(local) as client:
        _check_same_output_on_two_workers(local.scheduler_address, client, corpus, single, tmp_path)


def test_dask_flow_resumes_from_complete_shards(prefect_server, cluster, corpus, single, tmp_path):
    address, _ = cluster
    reference, expected = single

    class Stop(Exception):
        pass

    def stop_after_first(progress):
        raise Stop

    with pytest.raises(Stop):
        featurize_to_shards(corpus, tmp_path, CFG, on_progress=stop_after_first, **SETTINGS)
    stale = tmp_path / "shards" / "shard-00002.npy.0123456789ab.tmp"  # as a killed writer leaves it
    stale.write_bytes(b"partial")
    first = _mtimes(tmp_path, 0)
    time.sleep(0.01)

    summary = featurize_on_dask(corpus, tmp_path, CFG, address=address, **SETTINGS)
    assert summary["shards_resumed"] == 1 and summary["shards"] == expected["shards"]
    first_clips = len(_read_csv(tmp_path / "shards" / "shard-00000.index.csv"))
    assert summary["clips_this_run"] == expected["clips"] - first_clips
    assert _mtimes(tmp_path, 0) == first  # the complete shard was not rewritten
    assert not list(tmp_path.rglob("*.tmp"))
    assert _tree(tmp_path) == _tree(reference)

    # A finished run is all resumed: no shard is written again.
    before = {k: _mtimes(tmp_path, k) for k in range(expected["shards"])}
    summary = featurize_on_dask(corpus, tmp_path, CFG, address=address, **SETTINGS)
    assert summary["shards_resumed"] == expected["shards"] and summary["clips_this_run"] == 0
    assert {k: _mtimes(tmp_path, k) for k in range(expected["shards"])} == before


def test_a_failing_shard_fails_the_run_and_a_rerun_finishes_it(prefect_server, cluster, corpus, single, tmp_path):
    address, _ = cluster
    reference, expected = single
    blocker = tmp_path / "shards" / "shard-00001.index.csv"
    blocker.mkdir(parents=True)  # the index part cannot be renamed over a folder: that shard's task fails
    with pytest.raises(ShardsFailedError, match="1 of 5 shards failed"):
        featurize_on_dask(corpus, tmp_path, CFG, address=address, **SETTINGS)
    assert not (tmp_path / "index.csv").exists() and not list(tmp_path.rglob("*.tmp"))
    others = {k: _mtimes(tmp_path, k) for k in (0, 2, 3, 4)}
    assert all(len(m) == 3 for m in others.values())  # every other shard is complete

    blocker.rmdir()
    summary = featurize_on_dask(corpus, tmp_path, CFG, address=address, **SETTINGS)
    assert summary["shards_resumed"] == expected["shards"] - 1
    assert {k: _mtimes(tmp_path, k) for k in (0, 2, 3, 4)} == others
    assert _tree(tmp_path) == _tree(reference)


def test_task_runner_uses_a_local_cluster_or_the_given_address():
    local = dask_task_runner(n_workers=3)
    assert local.address is None
    assert local.cluster_kwargs == {"n_workers": 3, "threads_per_worker": 1, "processes": True}
    remote = dask_task_runner("tcp://10.0.0.5:8786")
    assert remote.address == "tcp://10.0.0.5:8786" and remote.cluster_kwargs == {}
    with pytest.raises(ValueError, match="n_workers"):
        dask_task_runner(n_workers=0)
    with pytest.raises(ValueError, match="address"):
        dask_task_runner("")


def test_bad_arguments_are_refused_before_any_work(corpus, tmp_path):
    with pytest.raises(ValueError, match="batch_size"):
        featurize_on_dask(corpus, tmp_path, CFG, batch_size=0)
    with pytest.raises(ValueError, match="unique"):
        featurize_on_dask(corpus + corpus[:1], tmp_path, CFG)
    assert not os.listdir(tmp_path)
