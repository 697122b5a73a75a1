"""flows/: the Prefect flow runs DVC stages through `dvc repro`, in parallel where DVC allows, and is served as `s3t/full`.

The unit tests use tiny throw-away DVC repositories; the end-to-end test starts a real Prefect
server on loopback, serves the deployment from a copy of this repository and runs the whole
pipeline on a tiny corpus.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

from flows import pipeline

# DVC 3.67's own use of pygtrie; nothing this code can change.
pytestmark = pytest.mark.filterwarnings("ignore:_NoneStep.value:DeprecationWarning")

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
BIN = str(Path(sys.executable).parent)


@pytest.fixture(autouse=True)
def _quiet_dvc(monkeypatch):
    monkeypatch.setenv("DVC_NO_ANALYTICS", "1")


def dvc(repo: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([PYTHON, "-m", "dvc", *args], cwd=repo, env=pipeline.stage_environment(repo),
                          capture_output=True, text=True, check=True)


def make_dvc_repo(root: Path, stages: dict) -> Path:
    """A git + DVC repository at `root` whose dvc.yaml holds `stages`."""
    root.mkdir(parents=True, exist_ok=True)
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    dvc(root, "init", "-q")
    (root / "dvc.yaml").write_text(yaml.safe_dump({"stages": stages}, sort_keys=False))
    return root


class ListLog:
    """Collects what a stage logs, as the Prefect run logger would receive it."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def info(self, msg: str, *args) -> None:
        self.lines.append(msg % args)


# A stage that records when it ran: `python -c` writing "<start> <end>" after sleeping.
def timed_cmd(out: str, seconds: float) -> str:
    return (f"python -c \"import time; t = time.time(); time.sleep({seconds}); "
            f"open('{out}', 'w').write(f'{{t}} {{time.time()}}')\"")


def test_hydra_overrides_render_named_parameters_then_raw_overrides():
    assert pipeline.hydra_overrides(scale="paper", datasets=["gtzan", "mtat"], fractions=[1, 10],
                                    overrides=["probe.fractions=[5]", "seed=3"]) == [
        "scale=paper", "datasets=[gtzan,mtat]", "probe.fractions=[1,10]", "probe.fractions=[5]", "seed=3"]
    assert pipeline.hydra_overrides() == []


def test_compose_params_is_dvcs_hydra_composition_of_the_project_conf(tmp_path):
    repo = make_dvc_repo(tmp_path / "repo", {})
    shutil.copytree(ROOT / "conf", repo / "conf")
    shutil.copy(ROOT / ".dvc" / "config", repo / ".dvc" / "config")  # [hydra] enabled = true

    path = pipeline.compose_params(repo, pipeline.hydra_overrides(scale="paper", fractions=[1, 10],
                                                                  overrides=["pretrain.epochs=3"]))
    params = yaml.safe_load(path.read_text())
    assert params["datasets"] == ["unlabeled", "gtzan", "fma_small", "mtat"]  # from conf/scale/paper.yaml
    assert params["backbone"]["name"] == "swin_t"  # the scale's group override
    assert params["probe"]["fractions"] == [1, 10]
    assert params["pretrain"]["epochs"] == 3

    before = path.read_text()
    with pytest.raises(Exception, match="no_such_key"):
        pipeline.compose_params(repo, ["no_such_key.x=1"])
    assert path.read_text() == before


def test_stage_graph_is_dvcs_graph_upstream_first(tmp_path):
    repo = make_dvc_repo(tmp_path / "repo", {
        "make": {"cmd": "python -c \"open('a.txt', 'w').write('a')\"", "outs": ["a.txt"]},
        "copy": {"foreach": ["x", "y"], "do": {
            "cmd": "python -c \"open('${item}.txt', 'w').write(open('a.txt').read())\"",
            "deps": ["a.txt"], "outs": ["${item}.txt"]}},
        "join": {"cmd": "python -c \"open('j.txt', 'w').write('j')\"", "deps": ["x.txt", "y.txt"], "outs": ["j.txt"]},
        "alone": {"cmd": "python -c \"open('z.txt', 'w').write('z')\"", "outs": ["z.txt"]},
    })
    graph = pipeline.stage_graph(repo)
    assert list(graph) == ["make", "copy@x", "copy@y", "join", "alone"]
    assert graph["copy@x"] == ("make",)
    assert set(graph["join"]) == {"copy@x", "copy@y"}
    # A target brings its upstream stages and nothing else; a foreach group name means all its items.
    assert list(pipeline.stage_graph(repo, ["copy@y"])) == ["make", "copy@y"]
    assert list(pipeline.stage_graph(repo, ["copy"])) == ["make", "copy@x", "copy@y"]


def test_run_repro_runs_then_skips_and_records_dvc_lock(tmp_path):
    repo = make_dvc_repo(tmp_path / "repo", {
        "make": {"cmd": "python -c \"print('hello from the stage'); open('a.txt', 'w').write('a')\"", "outs": ["a.txt"]},
    })
    log = ListLog()
    assert pipeline.run_repro(repo, "make", log) == "ran"
    assert "hello from the stage" in log.lines
    assert "make" in yaml.safe_load((repo / "dvc.lock").read_text())["stages"]
    assert "up to date" in dvc(repo, "status").stdout
    assert pipeline.run_repro(repo, "make", ListLog()) == "unchanged"
    assert pipeline.run_repro(repo, "make", ListLog(), force=True) == "ran"


def test_run_repro_failure_carries_the_stages_own_error(tmp_path):
    repo = make_dvc_repo(tmp_path / "repo", {
        "bad": {"cmd": "python -c \"import sys; print('loading'); sys.exit('clips_per_genre must be positive')\"",
                "outs": ["never.txt"]},
    })
    log = ListLog()
    with pytest.raises(pipeline.StageFailed) as err:
        pipeline.run_repro(repo, "bad", log)
    message = str(err.value)
    assert "stage 'bad' failed" in message and "exited with status" in message
    assert "clips_per_genre must be positive" in message and "loading" in message
    assert "clips_per_genre must be positive" in log.lines


def test_concurrent_repro_of_independent_stages_overlaps_and_both_land_in_dvc_lock(tmp_path):
    """DVC releases the repository lock while a stage command runs, so two `dvc repro` of disjoint stages overlap."""
    repo = make_dvc_repo(tmp_path / "repo", {
        "left": {"cmd": timed_cmd("left.txt", 3), "outs": ["left.txt"]},
        "right": {"cmd": timed_cmd("right.txt", 3), "outs": ["right.txt"]},
    })
    results, errors = {}, []

    def run(stage: str) -> None:
        try:
            results[stage] = pipeline.run_repro(repo, stage, ListLog())
        except pipeline.StageFailed as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(stage,)) for stage in ("left", "right")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors and results == {"left": "ran", "right": "ran"}
    (l0, l1), (r0, r1) = ([float(v) for v in (repo / f).read_text().split()] for f in ("left.txt", "right.txt"))
    assert l0 < r1 and r0 < l1, "the two stage commands did not run at the same time"
    assert set(yaml.safe_load((repo / "dvc.lock").read_text())["stages"]) == {"left", "right"}
    assert "up to date" in dvc(repo, "status").stdout


def test_stop_stages_kills_the_stage_command_not_only_dvc(tmp_path):
    """A terminated flow run (cancelled in the UI) must not leave a stage command training on."""
    import psutil

    repo = make_dvc_repo(tmp_path / "repo", {
        "slow": {"cmd": "python -c \"import os, time; open('pid', 'w').write(str(os.getpid())); time.sleep(120)\"",
                 "outs": ["never.txt"]},
    })
    errors = []

    def run() -> None:
        try:
            pipeline.run_repro(repo, "slow", ListLog())
        except pipeline.StageFailed as exc:
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    try:
        deadline = time.monotonic() + 60
        while not (repo / "pid").is_file() or not (repo / "pid").read_text():
            assert time.monotonic() < deadline, "the stage command never started"
            time.sleep(0.2)
        stage_pid = int((repo / "pid").read_text())
        pipeline.stop_stages()
        thread.join(30)
        assert not thread.is_alive() and len(errors) == 1
        assert not psutil.pid_exists(stage_pid) or psutil.Process(stage_pid).status() == psutil.STATUS_ZOMBIE
        with pytest.raises(pipeline.StageFailed, match="stopping"):
            pipeline.run_repro(repo, "slow", ListLog())
    finally:
        pipeline._stopping.clear()  # the flag is meant to last for the rest of a flow-run process, not a test session


def test_output_lines_flags_progress_redraws():
    raw = io.BytesIO(b"Running stage 'x':\n 10%|#\r 50%|#####\r100%|##########\nfinal loss 0.1\r\n\n")
    assert list(pipeline.output_lines(raw)) == [
        ("Running stage 'x':", False), (" 10%|#", True), (" 50%|#####", True), ("100%|##########", False),
        ("final loss 0.1", False)]


# ---------------------------------------------------------------- end to end, real Prefect server

# The whole pipeline in about a minute: 2 genres x 4 clips of 3 s, one step of pre-training.
TINY = [
    "data=corpus", "corpus.genres=[blues,metal]", "corpus.clips_per_genre=4", "corpus.seconds=3.0",
    "pretrain.epochs=1", "pretrain.batch_size=4", "pretrain.K=8", "pretrain.warmup_epochs=0",
    "supervised.epochs=1", "supervised.batch_size=4", "supervised.warmup_epochs=0",
    "probe.epochs=2", "probe.warmup_epochs=0", "validate.augment_draws=200", "corpus.workers=1", "featurize.workers=1",
    "evaluation.folds=3", "evaluation.resamples=100",
]
# Pipeline products and local state that a fresh copy must not inherit.
NOT_COPIED = {".git", ".venv", "data", "models", "work", "metrics", "reports", "dvc.lock", ".pytest_cache",
              "s3t.egg-info"}
"""Top-level entries left out (conf/data/ is a config group, not pipeline data)."""


def copy_repo(dst: Path) -> Path:
    def ignore(folder: str, names: list[str]) -> set[str]:
        skip = {n for n in names if n == "__pycache__" or (Path(folder) == ROOT and n in NOT_COPIED)}
        if Path(folder) == ROOT / ".dvc":
            skip |= {"cache", "tmp"}
        return skip

    shutil.copytree(ROOT, dst, ignore=ignore)
    subprocess.run(["git", "init", "-q"], cwd=dst, check=True)  # DVC needs a git repository, not a commit
    return dst


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def api(base: str, path: str, body: dict | None = None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(base + path, data=data, headers={"Content-Type": "application/json"},
                                     method="GET" if body is None else "POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def wait_for(what: str, check, timeout: float, procs: dict[str, tuple[subprocess.Popen, Path]]):
    """Poll `check()` until it returns something truthy; fail early, with its log, if a process died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for name, (proc, log) in procs.items():
            if proc.poll() is not None:
                pytest.fail(f"{name} exited with {proc.returncode} while waiting for {what}:\n{tail(log)}")
        try:
            value = check()
        except (urllib.error.URLError, ConnectionError, OSError):
            value = None
        if value:
            return value
        time.sleep(1)
    pytest.fail(f"timed out after {timeout} s waiting for {what}:\n" + "\n".join(tail(log) for _, log in procs.values()))


def tail(path: Path, lines: int = 60) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""


def start(cmd: list[str], cwd: Path, env: dict, log: Path) -> subprocess.Popen:
    with log.open("wb") as out:
        return subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def stop(proc: subprocess.Popen) -> None:
    """Terminate `proc`, then kill whatever it started that is still alive (flow runs, dvc, stage commands)."""
    import psutil

    try:
        family = psutil.Process(proc.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        family = []
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    _, alive = psutil.wait_procs(family, timeout=10)
    for child in alive:
        child.kill()


@pytest.mark.timeout(900)  # a hung server must not hang the suite; `finally` still stops every process
def test_served_deployment_runs_the_whole_pipeline_through_dvc(tmp_path):
    repo = copy_repo(tmp_path / "repo")
    home = tmp_path / "prefect"
    home.mkdir()
    port = free_port()
    base = f"http://127.0.0.1:{port}/api"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update({
        "PATH": os.pathsep.join([BIN, env.get("PATH", "")]),
        "PREFECT_HOME": str(home),
        "PREFECT_API_URL": base,
        "PREFECT_SERVER_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{home / 'prefect.db'}",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
        "PREFECT_SERVER_UI_ENABLED": "false",
        "PREFECT_RUNNER_POLL_FREQUENCY": "1",
        "DVC_NO_ANALYTICS": "1",
    })
    procs: dict[str, tuple[subprocess.Popen, Path]] = {}
    try:
        server_log = tmp_path / "server.log"
        procs["prefect server"] = (start([PYTHON, "-m", "prefect", "server", "start", "--host", "127.0.0.1",
                                          "--port", str(port)], repo, env, server_log), server_log)
        wait_for("the Prefect API", lambda: api(base, "/health") is True, 120, procs)

        serve_log = tmp_path / "serve.log"
        procs["flows/serve.py"] = (start([PYTHON, "flows/serve.py"], repo, env, serve_log), serve_log)
        deployment = wait_for("deployment s3t/full", lambda: api(base, "/deployments/name/s3t/full"), 120, procs)
        assert deployment["name"] == "full"

        def deployment_run(*params: str) -> str:
            """`prefect deployment run s3t/full -p ...` as the README gives it; the flow run's id."""
            trigger = subprocess.run([PYTHON, "-m", "prefect", "deployment", "run", "s3t/full",
                                      *(arg for p in params for arg in ("-p", p))],
                                     cwd=repo, env=env, capture_output=True, text=True, timeout=120)
            assert trigger.returncode == 0, trigger.stdout + trigger.stderr
            return re.search(r"UUID: ([0-9a-f-]{36})", trigger.stdout).group(1)

        def finished(run_id: str) -> dict:
            def check():
                run = api(base, f"/flow_runs/{run_id}")
                return run if run["state"]["type"] in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED") else None
            return wait_for("the flow run", check, 600, procs)

        # Three slots: cv@corpus becomes ready beside supervised@corpus and may still run when the two probes are.
        run_id = deployment_run(f"overrides={json.dumps(TINY)}", "fractions=[100, 50]", "max_parallel=3",
                                "retries=1", "retry_delay_s=1")
        run = finished(run_id)
        assert run["state"]["type"] == "COMPLETED", f"{run['state']}\n{tail(serve_log, 120)}"
        assert run["parameters"]["overrides"] == TINY

        # DVC did the work and knows it: outputs present, dvc.lock current, params from the flow's overrides.
        for percent in (100, 50):
            metrics = json.loads((repo / "metrics" / "corpus" / f"probe_{percent}.json").read_text())
            assert metrics["percent"] == percent and {"s3t", "random_init", "supervised"} <= set(metrics)
        assert (repo / "reports" / "tables.md").is_file()
        status = dvc(repo, "status")
        assert "Data and pipelines are up to date." in status.stdout, status.stdout
        lock = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]
        stages = dvc(repo, "stage", "list", "--name-only").stdout.split()
        assert set(lock) == set(stages)
        assert lock["download@corpus"]["params"]["params.yaml"]["corpus"]["clips_per_genre"] == 4

        # One Prefect task run per DVC stage, all completed; stages that were ready together ran together.
        def task_runs():
            runs = api(base, "/task_runs/filter", {"flow_runs": {"id": {"any_": [run_id]}}})
            by_name = {r["name"]: r for r in runs if r["state"] and r["state"]["type"] == "COMPLETED"}
            return by_name if set(stages) <= set(by_name) else None

        by_name = wait_for("the task runs", task_runs, 60, procs)

        def overlap(a: str, b: str) -> bool:
            return by_name[a]["start_time"] < by_name[b]["end_time"] and by_name[b]["start_time"] < by_name[a]["end_time"]

        assert overlap("probe@corpus-100", "probe@corpus-50")
        assert overlap("embed@corpus", "supervised@corpus")
        assert by_name["pretrain"]["end_time"] <= by_name["embed@corpus"]["start_time"]

        # The stages' own output reached the Prefect run logs.
        probe_logs = {"logs": {"task_run_id": {"any_": [by_name["probe@corpus-100"]["id"]]}}, "limit": 200}
        assert wait_for("the stage's log lines", lambda: [
            entry for entry in api(base, "/logs/filter", probe_logs) if "probe@corpus-100: s3t:" in entry["message"]], 60, procs)

        # A failing stage fails the flow run with the stage's own error; stages downstream of it never start.
        bad_id = deployment_run(f"overrides={json.dumps(TINY + ['corpus.clips_per_genre=0'])}",
                                'targets=["featurize@corpus"]', "retries=0")
        bad = finished(bad_id)
        assert bad["state"]["type"] == "FAILED", bad["state"]
        assert "stage 'download@corpus' failed" in bad["state"]["message"]
        assert "clips_per_genre must be a positive integer" in bad["state"]["message"]
        names = {r["name"] for r in api(base, "/task_runs/filter", {"flow_runs": {"id": {"any_": [bad_id]}}})}
        assert "featurize@corpus" not in names
    finally:
        for proc, _ in reversed(list(procs.values())):
            stop(proc)
