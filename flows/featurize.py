"""Corpus featurization on a Dask cluster: a Prefect flow mapping one task per shard (prefect-dask).

The same four steps as :func:`s3t.shards.featurize_to_shards`, with the shards spread over
Dask workers: the calling process plans the shards and prepares ``out_dir``
(:func:`s3t.shards.plan_shards`, :func:`s3t.shards.prepare_shards`), the flow maps
:func:`s3t.shards.featurize_shard` over the unfinished shards with a
:class:`prefect_dask.DaskTaskRunner`, then merges (:func:`s3t.shards.merge_shards`). A
shard depends only on its own clips, so the output is byte for byte the single-process
output, and a rerun skips the complete shards.

The cluster: a temporary ``distributed.LocalCluster`` of ``n_workers`` single-threaded
processes by default (Dask starts them with ``OMP_NUM_THREADS=1``, so each runs its CQT on
one core), or the running cluster whose scheduler is at ``address``. Every worker must see
the audio files and ``out_dir`` at the same paths as the calling process (a shared file
system on a multi-machine cluster).

Choices:

- The clip list is not a flow parameter. Prefect stores every flow parameter as JSON in its
  database, and a million clip records do not belong there; the flow's parameters are the
  output folder and the shard counts, and each task receives only its own shard's clips.
- Each task decodes in its own process, one file at a time: Dask worker processes are
  daemons and may not start the decode pool of :func:`s3t.features.decode_files`, and the
  parallelism comes from the workers. A decoder that crashes the process (rather than
  raising) therefore costs its Dask worker: Dask re-runs the shard elsewhere and, after
  ``distributed.scheduler.allowed-failures`` deaths, fails that shard; the flow then fails
  naming it, with every other shard complete. The single-process path isolates such files.
- No Prefect caching or result persistence (``NO_CACHE``): the shard files on disk are the
  results, and their completeness is what resuming checks.
- Each worker process builds one CQT per setting and reuses it for all its shards: building
  the kernels takes longer than featurizing a small shard.
"""

from __future__ import annotations

import contextlib
import functools
import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Iterator

from s3t.threads import sleep_at_barriers

sleep_at_barriers()  # before torch loads: OpenMP threads sleep rather than spin on a busy machine (s3t.threads)

import torch  # noqa: E402
from prefect import flow, task, unmapped
from prefect.cache_policies import NO_CACHE
from prefect.futures import as_completed
from prefect.logging import get_run_logger
from prefect.settings import PREFECT_API_URL, temporary_settings
from prefect_dask import DaskTaskRunner

from s3t.cqt import CQT, CQTConfig
from s3t.shards import (
    ClipSource,
    ShardJob,
    ShardResult,
    featurize_shard,
    merge_shards,
    plan_shards,
    prepare_shards,
)

__all__ = ["ShardsFailedError", "dask_task_runner", "featurize_on_dask", "featurize_shard_task"]


class ShardsFailedError(RuntimeError):
    """Some shards failed on the cluster; the others are complete and a rerun resumes from them."""


@functools.lru_cache(maxsize=4)
def _cqt(config: CQTConfig, device: str) -> CQT:
    """The CQT of ``config`` on ``device``, built once per worker process."""
    return CQT.from_config(config).to(device).eval()


@task(name="featurize-shard", task_run_name="{job.name}", cache_policy=NO_CACHE, persist_result=False)
def featurize_shard_task(
    job: ShardJob, out_dir: str, cqt_config: CQTConfig, batch_size: int, device: str, min_seconds: float
) -> ShardResult:
    """One shard, on whichever Dask worker runs it (see :func:`s3t.shards.featurize_shard`)."""
    return featurize_shard(
        job, out_dir, cqt_config, batch_size=batch_size, min_seconds=min_seconds, cqt=_cqt(cqt_config, device)
    )


@contextlib.contextmanager
def _one_api_for_all_workers() -> Iterator[None]:
    """Make the Prefect API this process uses the one every task reports to.

    With no ``PREFECT_API_URL`` Prefect starts a temporary local server in each process that
    first needs one, so each Dask worker would start its own (seconds apiece, several servers
    on one SQLite file). Start it here, once, and set its URL for the run: Prefect sends the
    caller's settings along with every task. On a multi-machine cluster that address is this
    machine's loopback, so set ``PREFECT_API_URL`` to a server every worker can reach.
    """
    if PREFECT_API_URL.value():
        yield
        return
    from prefect.server.api.server import SubprocessASGIServer

    server = SubprocessASGIServer()  # the instance Prefect's own client would start in this process
    server.start()
    with temporary_settings({PREFECT_API_URL: server.api_url}):
        yield


def dask_task_runner(address: str | None = None, n_workers: int = 2) -> DaskTaskRunner:
    """A runner on the Dask scheduler at ``address``, or on a temporary LocalCluster of
    ``n_workers`` single-threaded worker processes when ``address`` is None."""
    if address is not None:
        if not isinstance(address, str) or not address:
            raise ValueError(f"address must be a Dask scheduler address such as 'tcp://10.0.0.5:8786', got {address!r}")
        return DaskTaskRunner(address=address)
    if isinstance(n_workers, bool) or not isinstance(n_workers, int) or n_workers < 1:
        raise ValueError(f"n_workers must be a positive integer, got {n_workers!r}")
    # Dask's dashboard stays on (port 8787, or a free one); the runner logs its address.
    return DaskTaskRunner(cluster_kwargs={"n_workers": n_workers, "threads_per_worker": 1, "processes": True})


def featurize_on_dask(
    sources: Iterable[ClipSource],
    out_dir: str | os.PathLike,
    cqt_config: CQTConfig,
    *,
    clips_per_shard: int = 256,
    batch_size: int = 16,
    device: str | torch.device = "cpu",
    min_seconds: float = 0.0,
    address: str | None = None,
    n_workers: int = 2,
) -> dict[str, Any]:
    """:func:`s3t.shards.featurize_to_shards` with the shards made on a Dask cluster; resumable.

    Runs a Prefect flow (against ``PREFECT_API_URL``, or Prefect's temporary local server
    when none is set) whose tasks run on the cluster of :func:`dask_task_runner`.

    Args:
        sources, out_dir, cqt_config, clips_per_shard, batch_size, min_seconds: as for
            :func:`s3t.shards.featurize_to_shards`; the output is the same.
        device: where each worker runs its CQT (every worker must have it).
        address: a running Dask scheduler, e.g. ``"tcp://10.0.0.5:8786"``; None starts a
            LocalCluster for this run.
        n_workers: worker processes of that LocalCluster (ignored with ``address``).

    Returns:
        the run's summary (see :func:`s3t.shards.featurize_to_shards`; ``summary.json`` holds its
        corpus counts); its ``decode_wait_s``, ``cqt_s`` and ``write_s`` are summed over the workers.

    Raises:
        ValueError: a bad argument, no sources, or a repeated ``clip_id``.
        ShardPlanError: ``out_dir`` holds shards of other settings or another input list.
        ShardsFailedError: some shards failed; the rest are written and a rerun resumes.
    """
    start = time.perf_counter()
    runner = dask_task_runner(address, n_workers)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    jobs = plan_shards(sources, clips_per_shard)
    pending = prepare_shards(out_dir, jobs, cqt_config, clips_per_shard=clips_per_shard, min_seconds=min_seconds)
    out = str(Path(out_dir))

    # Defined here so that the jobs reach the tasks without becoming flow parameters (see above).
    @flow(name="featurize-shards", task_runner=runner, validate_parameters=False)
    def featurize_shards(out_dir: str, shards: int, unfinished: int) -> dict[str, Any]:
        log = get_run_logger()
        log.info("%d of %d shards to make in %s", unfinished, shards, out_dir)
        futures = featurize_shard_task.map(
            pending, unmapped(out_dir), unmapped(cqt_config), unmapped(batch_size), unmapped(str(device)),
            unmapped(float(min_seconds)),
        )
        results: list[ShardResult] = []
        failed: list[str] = []
        for future in as_completed(futures):
            future.wait()
            if future.state.is_completed():
                result = future.result()
                results.append(result)
                log.info("shard %05d: %d clips, %d rejected (%d/%d)", result.index, result.clips, result.rejected,
                         shards - unfinished + len(results), shards)
            else:
                failed.append(future.state.message or future.state.name)
        if failed:
            raise ShardsFailedError(
                f"{len(failed)} of {unfinished} shards failed, the other shards in {out_dir} are complete; "
                f"run again to resume. First failure: {failed[0]}"
            )
        return merge_shards(out_dir, sorted(results, key=lambda r: r.index), started=start)

    with _one_api_for_all_workers():
        return featurize_shards(out, len(jobs), len(pending))
