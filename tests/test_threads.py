"""s3t.threads: the OpenMP spin count is set before torch loads, and never over the user's own setting."""

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _run(code: str, **env: str) -> str:
    environ = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    environ.update(env)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=environ, cwd=ROOT,
                         timeout=120, check=True)
    return out.stdout.strip()


# torch is not imported after the call: what libgomp then reads is the environment printed here.
SHOW = ("import os; from s3t.threads import sleep_at_barriers, openmp_wait_policy; r = sleep_at_barriers(); "
        "print(r, openmp_wait_policy())")


def test_a_short_spin_is_set_before_torch_loads():
    assert _run(SHOW) == "True spin 4000"


def test_too_late_once_torch_is_loaded_but_children_get_it():
    code = "import os, torch; from s3t.threads import sleep_at_barriers; print(sleep_at_barriers(), os.environ['GOMP_SPINCOUNT'])"
    assert _run(code) == "False 4000"


@pytest.mark.parametrize("env, expected", [({"OMP_WAIT_POLICY": "ACTIVE"}, "False ACTIVE"),
                                           ({"OMP_WAIT_POLICY": "passive"}, "False PASSIVE"),
                                           ({"GOMP_SPINCOUNT": "300000"}, "False spin 300000")])
def test_the_user_s_own_setting_wins(env, expected):
    assert _run(SHOW, **env) == expected


def test_the_command_line_and_the_stages_set_it_before_torch():
    code = ("import sys; sys.path.insert(0, 'stages'); import {module}, os; "
            "print(os.environ.get('GOMP_SPINCOUNT'))")
    assert _run(code.format(module="s3t.cli")) == "4000"
    assert _run(code.format(module="_common")) == "4000"


def _first_import_of(path: Path, names: tuple[str, ...]) -> str | None:
    for node in ast.parse(path.read_text()).body:
        modules = ([a.name for a in node.names] if isinstance(node, ast.Import)
                   else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
        for module in modules:
            if module.split(".")[0] in names:
                return module.split(".")[0]
    return None


@pytest.mark.parametrize("stage", sorted(p.name for p in (ROOT / "stages").glob("*.py") if p.name != "_common.py"))
def test_every_stage_imports_common_before_torch(stage):
    # A stage that imports torch (or s3t, which does) first would load libgomp with its long spin.
    first = _first_import_of(ROOT / "stages" / stage, ("_common", "torch", "s3t"))
    assert first in ("_common", None), f"stages/{stage} imports {first} before _common"


def test_importing_the_library_sets_nothing():
    code = "import os, s3t.threads, s3t.train; print(os.environ.get('OMP_WAIT_POLICY'), os.environ.get('GOMP_SPINCOUNT'))"
    assert _run(code) == "None None"
