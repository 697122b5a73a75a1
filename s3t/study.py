"""Studies: a set of settings, each pre-trained at several seeds as DVC experiments, as one table.

A study is a YAML file (``docs/studies/<name>.yaml``)::

    title: Pre-training temperature
    seeds: [0, 1]
    settings:
      default: []                  # name -> Hydra overrides of `dvc exp run -S`
      T 0.5: [pretrain.T=0.5]

Each setting and seed is one experiment, named ``<study>--<setting>--seed<N>`` (:func:`experiment_name`).
:func:`read_exp_show` reads what `dvc exp show --json` prints into :class:`Experiment` records,
:func:`export` keeps a study's own (the committed ``docs/studies/<name>.json``, so the table can be
re-made from a fresh clone, where DVC's experiment refs do not travel), and :func:`study_table`
turns them into rows: per setting, the mean over seeds of each score, the mean of the runs' 95 %
bootstrap bounds (the data's uncertainty of one run, :mod:`s3t.evaluation`) and the range over
seeds (pre-training's). Scores are read on the folds and on the transfer task, never on a test
split: settings are chosen there.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from statistics import mean
from typing import Any

from s3t.bootstrap import format_interval

_NAME = re.compile(r"^(?P<study>[A-Za-z0-9_.-]+)--(?P<setting>[A-Za-z0-9_.-]+)--seed(?P<seed>\d+)$")


class StudyError(ValueError):
    """A study file or an experiment export that cannot be read; the message says what to change."""


@dataclass(frozen=True)
class Study:
    """A study's definition: its title, seeds and settings (name -> Hydra overrides)."""

    name: str
    title: str
    seeds: tuple[int, ...]
    settings: dict[str, tuple[str, ...]]

    @classmethod
    def from_dict(cls, name: str, data: Mapping[str, Any]) -> "Study":
        try:
            seeds = tuple(int(s) for s in data["seeds"])
            settings = {str(k): tuple(str(o) for o in (v or ())) for k, v in data["settings"].items()}
            title = str(data["title"])
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            raise StudyError(f"study {name}: needs title, seeds (a list of integers) and settings "
                             f"(name -> list of overrides) ({type(err).__name__}: {err})") from None
        if not seeds or not settings:
            raise StudyError(f"study {name}: needs at least one seed and one setting")
        for setting, overrides in settings.items():
            if not re.fullmatch(r"[A-Za-z0-9_.-]+", setting.replace(" ", "_")):
                raise StudyError(f"study {name}: setting name {setting!r} may hold letters, digits, spaces, _ . - only")
            if any(o.split("=", 1)[0] == "seed" for o in overrides):
                raise StudyError(f"study {name}: setting {setting!r} sets the seed; list seeds under `seeds`")
        return cls(name, title, seeds, settings)

    def runs(self) -> list[tuple[str, list[str]]]:
        """(experiment name, its `-S` overrides) of every setting and seed, settings in file order."""
        return [(experiment_name(self.name, setting, seed), [*overrides, f"seed={seed}"])
                for setting, overrides in self.settings.items() for seed in self.seeds]


def experiment_name(study: str, setting: str, seed: int) -> str:
    """``<study>--<setting>--seed<N>``, spaces in the setting as ``_`` (a git ref name)."""
    return f"{study}--{setting.replace(' ', '_')}--seed{seed}"


@dataclass(frozen=True)
class Experiment:
    """One experiment's name, params (flat, "pretrain.T" -> value) and metrics (file -> its JSON)."""

    name: str
    params: dict[str, Any]
    metrics: dict[str, Any]


def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"a": {"b": 1}} -> {"a.b": 1}."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = value
    return out


def read_exp_show(rows: Sequence[Mapping[str, Any]]) -> list[Experiment]:
    """The named experiments of `dvc exp show --json` output (commits' experiments; the workspace
    and the commits themselves are left out), with their params.yaml and metrics."""
    if not isinstance(rows, Sequence):
        raise StudyError("`dvc exp show --json` prints a list of commits; this is not one")
    out = []
    for commit in rows:
        for group in (commit.get("experiments") or []) if isinstance(commit, Mapping) else []:
            for rev in group.get("revs") or []:
                data, name = rev.get("data"), rev.get("name")
                if not data or not name:
                    continue  # a failed or unnamed experiment: nothing to read
                params = (data.get("params") or {}).get("params.yaml", {}).get("data") or {}
                metrics = {file: entry.get("data") for file, entry in (data.get("metrics") or {}).items()
                           if entry.get("data") is not None}
                out.append(Experiment(name, flatten(params), metrics))
    return out


def export(experiments: Sequence[Experiment], study: Study, *, partial: bool = False) -> list[dict]:
    """The study's experiments as plain data for its committed JSON: name, setting, seed, the params
    it overrides, and its metrics. Every run of the study must be there, unless ``partial`` (a study
    stopped part-way: the runs not there are left out, and :func:`study_table` shows them as not run).

    Raises:
        StudyError: a run of the study is missing (say which, so it can be run again).
    """
    by_name = {e.name: e for e in experiments}
    missing = [name for name, _ in study.runs() if name not in by_name]
    if missing and not partial:
        raise StudyError(f"study {study.name}: no experiment {', '.join(missing)} in `dvc exp show`; run it "
                         "(docs/study.py run) or remove its setting or seed")
    out = []
    for setting, overrides in study.settings.items():
        for seed in study.seeds:
            e = by_name.get(experiment_name(study.name, setting, seed))
            if e is None:
                continue
            keys = [o.split("=", 1)[0].lstrip("+~") for o in overrides] + ["seed"]
            out.append({"name": e.name, "setting": setting, "seed": seed,
                        "params": {k: e.params.get(k) for k in keys}, "metrics": e.metrics})
    return out


@dataclass(frozen=True)
class Column:
    """A study table's column: the value at metrics[file][keys...] (with `<last>_low/_high` beside it)."""

    title: str
    file: str
    keys: tuple[str, ...]
    signed: bool = False


def default_columns(dataset: str = "soundtracks", transfer: str = "transfer") -> list[Column]:
    """The task's validation top-1 of S3T, Random-Init and the hand-crafted statistics (the probes at
    100 % labels, no interval), and the folds' and the transfer task's S3T top-1 with the differences
    the targets read."""
    cv, tr, probe = f"metrics/{dataset}/cv.json", f"metrics/{transfer}/cv.json", f"metrics/{dataset}/probe_100.json"
    return [
        Column("valid: S3T", probe, ("s3t", "valid", "top1")),
        Column("valid: Random-Init", probe, ("random_init", "valid", "top1")),
        Column("valid: hand-crafted", probe, ("handcrafted", "valid", "top1")),
        Column("folds: S3T", cv, ("s3t", "top1")),
        Column("folds: S3T - Random-Init", cv, ("s3t_minus_random_init", "top1"), True),
        Column("folds: S3T - hand-crafted", cv, ("s3t_minus_handcrafted", "top1"), True),
        Column("transfer: S3T", tr, ("s3t", "top1")),
        Column("transfer: S3T - Random-Init", tr, ("s3t_minus_random_init", "top1"), True),
        Column("transfer: S3T - hand-crafted", tr, ("s3t_minus_handcrafted", "top1"), True),
    ]


def _lookup(metrics: Mapping[str, Any], column: Column) -> tuple[float, float, float] | None:
    value: Any = metrics.get(column.file)
    parent = None
    for key in column.keys:
        if not isinstance(value, Mapping) or key not in value:
            return None
        parent, value = value, value[key]
    last = column.keys[-1]
    return float(value), float(parent.get(f"{last}_low", "nan")), float(parent.get(f"{last}_high", "nan"))


def study_table(runs: Sequence[Mapping[str, Any]], columns: Sequence[Column],
                settings_order: Sequence[str] = ()) -> tuple[list[str], list[list[str]]]:
    """(header, rows) of a study: one row per setting (those of ``settings_order`` first, in that
    order, then the others of ``runs``), each cell the mean over seeds "51.1 [44, 58]" (the mean of
    the runs' 95 % bounds) and the range over seeds in parentheses where there are several; "not
    run" where no run has the value (a whole row of them for a setting without runs). ``runs``:
    what :func:`export` gives."""
    settings: dict[str, list[Mapping[str, Any]]] = {name: [] for name in settings_order}
    for run in runs:
        settings.setdefault(run["setting"], []).append(run)
    header = ["setting", "seeds", *(c.title for c in columns)]
    rows = []
    for setting, group in settings.items():
        row = [setting, ", ".join(str(r["seed"]) for r in group) or "none"]
        for column in columns:
            found = [v for v in (_lookup(r["metrics"], column) for r in group) if v is not None]
            if not found:
                row.append("not run")
                continue
            if all(math.isnan(v[1]) for v in found):  # a value without an interval (validation top-1)
                cell = f"{100 * mean(v[0] for v in found):{'+' if column.signed else ''}.1f}"
            else:
                cell = format_interval(mean(v[0] for v in found), mean(v[1] for v in found), mean(v[2] for v in found),
                                       signed=column.signed)
            if len(found) > 1:
                low, high = min(v[0] for v in found), max(v[0] for v in found)
                cell += f" ({100 * low:.1f} to {100 * high:.1f})"
            row.append(cell)
        rows.append(row)
    return header, rows
