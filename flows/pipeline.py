"""Prefect 3 flow `s3t`: the DVC pipeline's stages as concurrent Prefect tasks, each run through DVC.

DVC stays the authority on what is cached and what changed; the flow never runs a stage script
itself. A run

1. composes params.yaml from conf/ with the run's Hydra overrides exactly as `dvc exp run -S`
   does: DVC's own `compose_and_dump` with the [hydra] settings of .dvc/config (`dvc exp run`
   recomposes params.yaml even without `-S`, and so does every run of this flow);
2. asks DVC for the stage graph: `Repo.index.graph` restricted to `Repo.stage.collect(target,
   with_deps=True)`, the same collection `dvc repro <targets>` makes (all of dvc.yaml by
   default), so the stage list is never written twice;
3. runs every stage as `dvc --wait-for-lock repro --single-item <stage>` as soon as all its
   upstream stages completed, at most `max_parallel` at a time. DVC decides whether the stage
   changed, runs it, skips it or restores it from its run cache, and records it in dvc.lock, so
   after a run `dvc status` is clean.

Concurrent `dvc repro` processes in one repository (checked against dvc 3.67):

- DVC holds the repository lock (.dvc/tmp/lock) only while it collects and hashes a stage and
  while it saves the outputs and rewrites dvc.lock; it releases it while the stage command runs
  (`unlocked_repo(cmd_run)` in dvc/stage/run.py), which is what lets stages run side by side.
  Without `--wait-for-lock` a process that finds the lock taken gives up after 3 s, also when it
  re-takes the lock after its command finished, which throws the finished stage's work away.
  With it, the process waits for the lock.
- Per-path read/write locks (.dvc/tmp/rwlock) refuse to start a stage whose outputs another
  running stage reads or writes. The flow starts a stage only after its upstream stages
  finished, and stages that are ready together (embed/supervised per dataset, the probe matrix)
  write disjoint paths, so they never collide; a collision with a `dvc` started by hand fails
  the stage, which is then retried.

Why not `dvc exp run`: it runs the whole pipeline in one process, one stage after the other; its
queue (`--queue`, `exp run --run-all -j N`) parallelises whole experiments, each in a temporary
copy of the repository, never the stages of one. Like `dvc exp run` in the workspace, a run of
this flow rewrites the workspace's params.yaml (then dvc.lock and the outputs); `dvc exp save`
afterwards records the result as an experiment.
"""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.futures import PrefectFuture, as_completed

FLOW_NAME = "s3t"
DEPLOYMENT_NAME = "full"
# The checkout this file belongs to: the flow always runs the pipeline of its own repository.
REPO = Path(__file__).resolve().parent.parent
PARAMS_FILE = "params.yaml"  # where DVC's Hydra composition writes (ParamsDependency.DEFAULT_PARAMS_FILE)
TAIL_LINES = 40  # lines of a failed stage's output quoted in the error
PROGRESS_EVERY_S = 30.0  # progress-bar redraws (lines ended by a bare CR) are logged at most this often
KILL_GRACE_S = 10.0

# What DVC prints for each outcome of `dvc repro --single-item` (dvc/stage/__init__.py, run.py, cache.py).
_OUTCOMES = (
    ("didn't change, skipping", "unchanged"),
    ("is cached - skipping run", "restored from run cache"),
    ("Running stage", "ran"),
)


class StageFailed(RuntimeError):
    """`dvc repro` of one stage exited non-zero; the message ends with the tail of its output."""


def hydra_overrides(*, scale: str | None = None, preprocessor: str | None = None, backbone: str | None = None,
                    datasets: Sequence[str] | None = None, eval_datasets: Sequence[str] | None = None,
                    fractions: Sequence[int] | None = None, overrides: Sequence[str] = ()) -> list[str]:
    """The flow's named parameters as Hydra overrides (`group=option`, `key=[a,b]`), then `overrides` verbatim.

    `overrides` come last, so an explicit `probe.fractions=...` there wins over `fractions`.
    """
    out = [f"{group}={option}" for group, option in
           (("scale", scale), ("preprocessor", preprocessor), ("backbone", backbone)) if option is not None]
    out += [f"{key}=[{','.join(str(v) for v in values)}]" for key, values in
            (("datasets", datasets), ("eval_datasets", eval_datasets), ("probe.fractions", fractions))
            if values is not None]
    return out + list(overrides)


def compose_params(repo: Path, overrides: Sequence[str]) -> Path:
    """Write `repo`/params.yaml as `dvc exp run -S <overrides>` would; return its path.

    With Hydra enabled in .dvc/config, params.yaml is composed from the config directory (or
    module) and config name given there; without it, the overrides are applied to the existing
    params.yaml (DVC's `apply_overrides`). A bad override raises Hydra's error and leaves
    params.yaml as it was.
    """
    from dvc.repo import Repo
    from dvc.utils.hydra import apply_overrides, compose_and_dump

    with Repo(str(repo)) as dvc_repo:
        hydra = dict(dvc_repo.config.get("hydra", {}))
    path = repo / PARAMS_FILE
    if not hydra.get("enabled", False):
        if overrides:
            apply_overrides(str(path), list(overrides))
        return path
    config_module = hydra.get("config_module")
    config_dir = None if config_module else os.path.join(repo, hydra.get("config_dir", "conf"))
    compose_and_dump(str(path), config_dir, config_module, hydra.get("config_name", "config"),
                     os.path.join(repo, hydra.get("plugins_path", "")), list(overrides))
    return path


def stage_graph(repo: Path, targets: Sequence[str] = ()) -> dict[str, tuple[str, ...]]:
    """DVC's stage graph: every stage `dvc repro <targets>` would check, upstream first, mapped to its upstream stages.

    No targets means dvc.yaml, as for `dvc repro`. A target may be a stage (`pretrain`), a
    generated stage (`probe@corpus-10`) or a whole foreach/matrix group (`probe`). Stages keep
    their dvc.yaml order where the graph allows.
    """
    import networkx as nx
    from dvc.dvcfile import PROJECT_FILE
    from dvc.repo import Repo
    from dvc.stage import PipelineStage
    from dvc.utils import parse_target

    def address(stage: Any) -> str:  # Stage.addressing as seen from `repo` (it is relative to the working directory)
        if isinstance(stage, PipelineStage):
            return stage.name if stage.path_in_repo == PROJECT_FILE else f"{stage.path_in_repo}:{stage.name}"
        return stage.path_in_repo

    def in_repo(target: str) -> str:  # DVC resolves targets against the working directory, `dvc repro` runs in `repo`
        path, name = parse_target(target)
        path = os.path.join(repo, path or PROJECT_FILE)
        return f"{path}:{name}" if name else path

    with Repo(str(repo)) as dvc_repo:
        graph = dvc_repo.index.graph  # an edge runs from a stage to a stage it depends on
        wanted = set()
        for target in targets or (PROJECT_FILE,):
            wanted.update(dvc_repo.stage.collect(in_repo(target), with_deps=True))
        position = {stage: i for i, stage in enumerate(dvc_repo.index.stages)}
        upstream_first = nx.lexicographical_topological_sort(graph.reverse(copy=False), key=position.__getitem__)
        return {address(stage): tuple(address(dep) for dep in graph.successors(stage))
                for stage in upstream_first if stage in wanted}


def repro_command(stage: str, *, force: bool = False) -> list[str]:
    """`dvc repro` of one stage, upstream stages not rechecked, waiting for the repository lock (see the module docstring)."""
    return [sys.executable, "-m", "dvc", "--wait-for-lock", "repro", "--single-item", *(["--force"] if force else []), stage]


def stage_environment(repo: Path) -> dict[str, str]:
    """The environment of a `dvc repro` process and so of the stage command it runs.

    Stage commands call `python`: this interpreter's bin/ goes first on PATH. `repo` goes first
    on PYTHONPATH so that stages import this checkout's `s3t`, not another editable install.
    """
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join(p for p in (str(Path(sys.executable).parent), env.get("PATH", "")) if p)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(repo), env.get("PYTHONPATH", "")) if p)
    env["PYTHONUNBUFFERED"] = "1"  # stage logs reach Prefect as they are written
    return env


def output_lines(stream: io.RawIOBase | io.BufferedIOBase) -> Iterator[tuple[str, bool]]:
    """(line, is_progress) for each line of a process's output; a progress line is one ended by a bare CR (a tqdm redraw)."""
    for line in io.TextIOWrapper(stream, encoding="utf-8", errors="replace", newline=""):
        progress = line.endswith("\r")
        line = line.rstrip()
        if line:
            yield line, progress


# `dvc repro` processes now running in this process, so that a stopped flow run stops them too.
_children: set[subprocess.Popen] = set()
_children_lock = threading.Lock()
_stopping = threading.Event()


def _kill_group(proc: subprocess.Popen) -> None:
    """SIGTERM, then SIGKILL, to the process group of `dvc repro` and the stage command it started."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(KILL_GRACE_S)
            return
        except subprocess.TimeoutExpired:
            continue


def stop_stages() -> None:
    """Stop every running `dvc repro` of this process and refuse new ones (a cancelled or terminated flow run)."""
    _stopping.set()
    with _children_lock:
        running = list(_children)
    for proc in running:
        _kill_group(proc)


def run_repro(repo: Path, stage: str, log: Any, *, force: bool = False) -> str:
    """Run `dvc repro` of one stage in `repo`, logging its output to `log`; return what DVC did.

    Returns "ran", "unchanged", "restored from run cache" or "checked". Raises StageFailed,
    whose message quotes the last TAIL_LINES lines of output, when DVC exits non-zero.
    """
    if _stopping.is_set():
        raise StageFailed(f"stage {stage!r} not started: the flow run is stopping")
    # Its own process group, so that stopping it also stops the stage command DVC started.
    proc = subprocess.Popen(repro_command(stage, force=force), cwd=repo, env=stage_environment(repo),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    with _children_lock:
        _children.add(proc)
    tail: deque[str] = deque(maxlen=TAIL_LINES)
    outcome = "checked"  # a stage without a command (a .dvc data source) prints none of _OUTCOMES
    last_progress = float("-inf")
    try:
        log.info("$ %s", " ".join(proc.args[2:]))
        previous_was_progress = False
        for line, progress in output_lines(proc.stdout):
            if progress and previous_was_progress:
                tail[-1] = line  # one entry per progress bar, its latest state
            else:
                tail.append(line)
            previous_was_progress = progress
            if outcome == "checked":
                outcome = next((name for marker, name in _OUTCOMES if marker in line), outcome)
            if progress:
                now = time.monotonic()
                if now - last_progress < PROGRESS_EVERY_S:
                    continue
                last_progress = now
            log.info("%s", line)
        returncode = proc.wait()
    finally:
        with _children_lock:
            _children.discard(proc)
        if proc.poll() is None:
            _kill_group(proc)
    if returncode != 0:
        raise StageFailed(f"stage {stage!r} failed: `dvc repro` exited with status {returncode}. "
                          f"Last {len(tail)} lines of its output:\n" + "\n".join(tail))
    return outcome


def _worth_retrying(task: Any, task_run: Any, state: Any) -> bool:
    """Retry a failed stage unless the flow run is being stopped."""
    return not _stopping.is_set()


@task(name="compose-params", cache_policy=NO_CACHE)
def compose_params_task(repo: str, overrides: list[str]) -> str:
    """Compose params.yaml (see compose_params) and log the overrides; return its text."""
    get_run_logger().info("composing %s with overrides %s", PARAMS_FILE, overrides or "(none)")
    return compose_params(Path(repo), overrides).read_text(encoding="utf-8")


# DVC is the cache: Prefect must never skip a stage because it ran before with the same inputs.
@task(name="dvc-repro", task_run_name="{stage}", retries=2, retry_delay_seconds=10, cache_policy=NO_CACHE,
      retry_condition_fn=_worth_retrying)
def repro_stage(repo: str, stage: str, force: bool = False) -> str:
    """One DVC stage through `dvc repro --single-item` (see run_repro)."""
    return run_repro(Path(repo), stage, get_run_logger(), force=force)


def run_graph(graph: dict[str, tuple[str, ...]], submit: Callable[[str, list[PrefectFuture]], PrefectFuture],
              max_parallel: int, log: Any) -> dict[str, str]:
    """Submit each stage once all its upstream stages completed, at most `max_parallel` at a time.

    `submit(stage, upstream_futures)` starts one stage. After a failure nothing new starts; the
    stages already running finish (and DVC records them), then the first failure is re-raised.
    Returns each stage's result, in completion order.
    """
    waiting = dict(graph)
    futures: dict[str, PrefectFuture] = {}
    running: dict[PrefectFuture, str] = {}
    results: dict[str, str] = {}
    failure: PrefectFuture | None = None
    try:
        while waiting or running:
            if failure is None:
                for stage, upstream in list(waiting.items()):
                    if len(running) >= max_parallel:
                        break
                    if all(dep in results for dep in upstream):
                        futures[stage] = submit(stage, [futures[dep] for dep in upstream])
                        running[futures[stage]] = stage
                        del waiting[stage]
            if not running:
                break
            done = next(as_completed(list(running)))
            done.wait()  # sets the final state; `state` alone may still read a stale one from the API
            stage = running.pop(done)
            if done.state.is_completed():
                results[stage] = done.result()
            elif failure is None:
                failure = done
                log.error("stage %s ended %s; starting no further stage", stage, done.state.name)
    except BaseException:
        stop_stages()
        raise
    if failure is not None:
        if waiting:
            log.error("not run because of the failure: %s", ", ".join(waiting))
        failure.result()  # re-raises the stage's own error
    return results


@flow(name=FLOW_NAME, description="The S3T DVC pipeline, stage by stage through `dvc repro`, independent stages in parallel.")
def s3t(overrides: list[str] | None = None, scale: str | None = None, preprocessor: str | None = None,
        backbone: str | None = None, datasets: list[str] | None = None, eval_datasets: list[str] | None = None,
        fractions: list[int] | None = None, targets: list[str] | None = None, max_parallel: int = 4,
        retries: int = 2, retry_delay_s: float = 10.0, force: bool = False) -> dict[str, str]:
    """Reproduce the pipeline (or `targets` and their upstream stages) with these params; return what DVC did per stage.

    Args:
        overrides: Hydra overrides, as for `dvc exp run -S` (`pretrain.epochs=2`, `corpus.genres=[jazz,rock]`).
        scale, preprocessor, backbone: options of the conf/ groups (`scale=paper`, ...).
        datasets, eval_datasets: the `datasets` / `eval_datasets` lists.
        fractions: `probe.fractions`, percent of training labels per probe.
        targets: stages or stage groups to reproduce with their upstream stages (default: all of dvc.yaml).
        max_parallel: most stages running at once.
        retries, retry_delay_s: how often a failed stage is rerun, and after how many seconds.
        force: rerun stages even when DVC finds them unchanged (`dvc repro --force`).
    """
    if max_parallel < 1:
        raise ValueError(f"max_parallel must be at least 1, got {max_parallel}")
    if retries < 0 or retry_delay_s < 0:
        raise ValueError(f"retries and retry_delay_s must be non-negative, got {retries} and {retry_delay_s}")
    log = get_run_logger()
    hydra = hydra_overrides(scale=scale, preprocessor=preprocessor, backbone=backbone, datasets=datasets,
                            eval_datasets=eval_datasets, fractions=fractions, overrides=overrides or ())
    compose_params_task(str(REPO), hydra)
    graph = stage_graph(REPO, targets or ())
    log.info("%d stages from DVC: %s", len(graph), ", ".join(graph))
    stage_task = repro_stage.with_options(retries=retries, retry_delay_seconds=retry_delay_s)
    results = run_graph(
        graph, lambda stage, upstream: stage_task.submit(str(REPO), stage, force, wait_for=upstream), max_parallel, log,
    )
    log.info("done: %s", ", ".join(f"{stage} {outcome}" for stage, outcome in results.items()))
    return results
