"""Run a study as DVC experiments and export it: `python docs/study.py run NAME` (or `make study STUDY=NAME`).

    python docs/study.py run recipe      # dvc exp run each setting x seed of docs/studies/recipe.yaml, then export
    python docs/study.py export recipe   # only export: `dvc exp show --json` -> docs/studies/recipe.json, docs/research.md
    python docs/study.py list recipe     # print the `dvc exp run` commands, run nothing
    python docs/study.py export data --partial   # export the runs there are; the others show as not run

Each run is `dvc exp run -n <study>--<setting>--seed<N> -S <override> ... -S seed=<N>` in this
workspace, one after the other; settings already run (an experiment of that name exists) are
skipped, so an interrupted study resumes. Why not `dvc exp run --queue` and `dvc queue start`:
queued experiments run in a temporary copy of the repository, which holds the cached outputs
only; the pipeline's downloaded music and its features are uncached (persistent) outputs, so every
queued experiment would fetch and featurize all the music again. In the workspace, only the stages
a setting changes run. At the end the committed outputs are restored (params.yaml, dvc.lock,
metrics/ and reports/ from HEAD's blobs, then `dvc checkout`).

The export (docs/studies/<name>.json) is committed: experiment refs live in the local .git only
(`dvc exp push` needs a Git remote), so the export is what a fresh clone re-makes the table from.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
from pathlib import Path

import yaml

from generate import ROOT, research_page  # docs/ is this script's folder

from s3t.study import Study, StudyError, export, read_exp_show

DVC = [sys.executable, "-m", "dvc"]


def load(name: str) -> Study:
    path = ROOT / "docs" / "studies" / f"{name}.yaml"
    if not path.is_file():
        sys.exit(f"no study {name}: {path} does not exist (studies: "
                 f"{', '.join(p.stem for p in sorted(path.parent.glob('*.yaml')))})")
    try:
        return Study.from_dict(name, yaml.safe_load(path.read_text(encoding="utf-8")))
    except StudyError as err:
        sys.exit(str(err))


def exp_show() -> list:
    # The last commits' experiments too: a study interrupted by a commit resumes on the new one.
    done = subprocess.run([*DVC, "exp", "show", "--json", "-n", "10"], cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"dvc exp show failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout)


def command(name: str, overrides: list[str]) -> list[str]:
    return [*DVC, "exp", "run", "-n", name, *(arg for o in overrides for arg in ("-S", o))]


def run(study: Study) -> None:
    have = {e.name for e in read_exp_show(exp_show())}
    for name, overrides in study.runs():
        if name in have:
            print(f"{name}: done before, skipped", flush=True)
            continue
        print(f"$ {shlex.join(command(name, overrides))}", flush=True)
        if subprocess.run(command(name, overrides), cwd=ROOT).returncode != 0:
            sys.exit(f"{name} failed; fix it and run the study again (finished runs are kept)")
    restore_committed()


def restore_committed(paths: tuple[str, ...] = ("params.yaml", "dvc.lock", "metrics", "reports")) -> None:
    """Put back the committed params, lock, metrics and reports after the experiments, then DVC's outputs.

    Each file is written from HEAD's blob: after `dvc exp run`, git's index can hold the stat data
    of the experiment's files, so `git checkout -- PATH` (even `git checkout HEAD -- PATH`) may see
    nothing to do and leave the experiment's metrics in place.
    """
    listed = subprocess.run(["git", "ls-files", "-z", "--", *paths], cwd=ROOT, capture_output=True, check=True)
    for name in filter(None, listed.stdout.decode().split("\0")):
        committed = subprocess.run(["git", "show", f"HEAD:{name}"], cwd=ROOT, capture_output=True, check=True).stdout
        path = ROOT / name
        if not path.is_file() or path.read_bytes() != committed:
            path.write_bytes(committed)
    subprocess.run([*DVC, "checkout", "--quiet"], cwd=ROOT, check=False)


def write_export(study: Study, partial: bool = False) -> None:
    try:
        runs = export(read_exp_show(exp_show()), study, partial=partial)
    except StudyError as err:
        sys.exit(str(err))
    out = ROOT / "docs" / "studies" / f"{study.name}.json"
    out.write_text(json.dumps(runs, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    (ROOT / "docs" / "research.md").write_text(research_page(), encoding="utf-8")
    print(f"wrote {out.relative_to(ROOT)} ({len(runs)} experiments) and docs/research.md")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=("run", "export", "list"))
    parser.add_argument("study", help="a study of docs/studies/ (its file name without .yaml)")
    parser.add_argument("--partial", action="store_true",
                        help="export: leave out runs not made yet (the table shows them as not run)")
    args = parser.parse_args()
    study = load(args.study)
    if args.action == "list":
        for name, overrides in study.runs():
            print(shlex.join(["dvc", "exp", "run", "-n", name, *(a for o in overrides for a in ("-S", o))]))
        return
    if args.action == "run":
        run(study)
    write_export(study, args.partial)


if __name__ == "__main__":
    main()
