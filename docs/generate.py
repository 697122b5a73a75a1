"""Write the generated parts of the documentation from the pipeline's outputs: README.md's results
(between its `<!-- BEGIN generated results -->` and `<!-- END generated results -->` lines, from
metrics/ and params.yaml), docs/research.md (from the studies' committed exports,
docs/studies/<name>.json; see docs/study.py, and the data study's curve, docs/studies/data_curve.csv,
for `dvc plots show`) and CREDITS.md (from the shipped Debian pool index).

    python docs/generate.py           # rewrite all three
    python docs/generate.py --check   # exit 1 when one differs from what the files give (make test checks it)
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import yaml

from s3t.report import evaluation_tables, markdown_table, run_tables, verdicts
from s3t.study import Study, default_columns, study_table

ROOT = Path(__file__).resolve().parent.parent
BEGIN, END = "<!-- BEGIN generated results -->", "<!-- END generated results -->"


def results_block(root: Path = ROOT) -> str:
    """README's results: this run's tables with intervals, from metrics/ (the datasets params.yaml names)."""
    params = yaml.safe_load((root / "params.yaml").read_text(encoding="utf-8"))
    metrics = root / "metrics"
    results = {d: {p: json.loads((metrics / d / f"probe_{p}.json").read_text()) for p in params["probe"]["fractions"]
                   if (metrics / d / f"probe_{p}.json").is_file()} for d in params["eval_datasets"]}
    evaluations = {f"{d}/cv.json": json.loads((metrics / d / "cv.json").read_text())
                   for d in [*params.get("cv_datasets", []), *params.get("transfer_datasets", [])]
                   if (metrics / d / "cv.json").is_file()}
    tables = run_tables({d: r for d, r in results.items() if r}, backbone=params["backbone"]["name"],
                        preprocessor=params["preprocessor"]["name"]) + evaluation_tables(evaluations)
    out = [BEGIN, "<!-- python docs/generate.py writes this block from metrics/*.json; edit those, not this -->", "",
           "What the paired intervals say (top-1, S3T minus each baseline, in points):", ""]
    out += [f"- {line}" for line in verdicts({d: r for d, r in results.items() if r}, evaluations)] + [""]
    for table in tables:
        out += [f"**{table.title}** (`metrics/{_files(table)}`)", "",
                markdown_table(table.header, [[c.text for c in row] for row in table.rows]), ""]
    return "\n".join(out + [END])


def _files(table) -> str:
    sources = sorted({c.source[0] for row in table.rows for c in row if c.source})
    return ", ".join(sources) if len(sources) < 3 else f"{sources[0].split('/')[0]}/*.json"


RESEARCH_INTRO = """# Research record (generated)

Written by `python docs/generate.py` from the committed exports in `docs/studies/`; do not edit.
Each study is a set of settings, each pre-trained at several seeds as a DVC experiment
(`python docs/study.py run <name>`, which runs `dvc exp run -n <study>--<setting>--seed<N> -S ...` for
every setting and seed and exports what `dvc exp show --json` holds of them to
`docs/studies/<name>.json`). Scores are read on the folds (cross-validation by track over the
soundtracks' train + valid clips, `metrics/soundtracks/cv.json`) and on the transfer task (packages
pre-training never heard, `metrics/transfer/cv.json`), never on a test split. Each cell: the mean
over seeds in %, in brackets the mean of the runs' 95 % bootstrap bounds (the uncertainty of one
run over the scored tracks), in parentheses the range over seeds (what pre-training's randomness
moves). A setting moves a score when its mean leaves the default's bracket.
"""


def research_page(root: Path = ROOT) -> str:
    out = [RESEARCH_INTRO]
    for path in sorted((root / "docs" / "studies").glob("*.yaml")):
        study = Study.from_dict(path.stem, yaml.safe_load(path.read_text(encoding="utf-8")))
        out += [f"## {study.title}", "", f"`python docs/study.py run {study.name}` (settings and seeds: "
                f"`docs/studies/{path.name}`); export: `docs/studies/{study.name}.json`.", ""]
        export = path.with_suffix(".json")
        if not export.is_file():
            out += ["Not run: no export yet.", ""]
            continue
        header, rows = study_table(json.loads(export.read_text()), default_columns(), list(study.settings))
        settings = "\n".join(f"- {name}: {' '.join(f'`{o}`' for o in overrides) or 'the pipeline default'}"
                             for name, overrides in study.settings.items())
        out += [markdown_table(header, rows), "", settings, ""]
    return "\n".join(out)


CREDITS_INTRO = """# Credits

The music this project fetches from Debian, per package and per track with the licence each package's
copyright file gives it; written by `python docs/generate.py` from the shipped pool index
(`s3t/datasets/splits/debian_pool_index.csv`), do not edit. Every run also writes the credits of the
music it used beside it (`data/raw/<dataset>/CREDITS.md`).
"""


def credits_page() -> str:
    from s3t.datasets.debian_pool import pool_credits, read_pool_index

    index = ROOT / "s3t" / "datasets" / "splits" / "debian_pool_index.csv"
    return CREDITS_INTRO + "\n" + pool_credits(read_pool_index(index))


CURVE_COLUMNS = ("setting", "seed", "pool_hours", "samples", "valid_s3t", "valid_random_init", "valid_handcrafted",
                 "folds_s3t_minus_random_init", "folds_s3t_minus_handcrafted",
                 "transfer_s3t_minus_random_init", "transfer_s3t_minus_handcrafted")


def data_curve(root: Path = ROOT) -> str | None:
    """docs/studies/data_curve.csv (what `dvc plots show` draws for the data study): one row per run of
    docs/studies/data.json, with the pool's hours and the samples pre-training saw (epochs x pieces of
    that pool) beside the scores in %; None before the study has an export."""
    import csv
    import io

    from s3t.datasets.pool_task import pool_task_entries
    from s3t.datasets.soundtracks import clip_plan

    export = root / "docs" / "studies" / "data.json"
    if not export.is_file():
        return None
    params = yaml.safe_load((root / "params.yaml").read_text(encoding="utf-8"))
    pools: dict[object, tuple[float, int]] = {}
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CURVE_COLUMNS)
    for run in json.loads(export.read_text(encoding="utf-8")):
        hours = run["params"].get("soundtracks.pool_hours", params["soundtracks"]["pool_hours"])
        if hours not in pools:
            entries = pool_task_entries(params["transfer"]["packages"], min_tracks=params["soundtracks"]["min_tracks"],
                                        pool_hours=hours)
            pieces = [c for c in clip_plan(entries) if c.split == "unlabeled"]
            pools[hours] = (sum(c.end_s - c.start_s for c in pieces) / 3600, len(pieces))
        epochs = run["params"].get("pretrain.epochs", params["pretrain"]["epochs"])
        metrics = run["metrics"]

        def value(file: str, *keys: str) -> str:
            v = metrics.get(file)
            for k in keys:
                v = v.get(k) if isinstance(v, dict) else None
            return "" if v is None else f"{100 * v:.2f}"

        probe, cv, tr = "metrics/soundtracks/probe_100.json", "metrics/soundtracks/cv.json", "metrics/transfer/cv.json"
        writer.writerow([run["setting"], run["seed"], f"{pools[hours][0]:.2f}", epochs * pools[hours][1],
                         value(probe, "s3t", "valid", "top1"), value(probe, "random_init", "valid", "top1"),
                         value(probe, "handcrafted", "valid", "top1"),
                         value(cv, "s3t_minus_random_init", "top1"), value(cv, "s3t_minus_handcrafted", "top1"),
                         value(tr, "s3t_minus_random_init", "top1"), value(tr, "s3t_minus_handcrafted", "top1")])
    return out.getvalue()


def readme_text(root: Path = ROOT) -> str:
    text = (root / "README.md").read_text(encoding="utf-8")
    if BEGIN not in text or END not in text:
        raise SystemExit(f"README.md has no {BEGIN} ... {END} block to write")
    head, rest = text.split(BEGIN, 1)
    return head + results_block(root) + rest.split(END, 1)[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only say whether the files are up to date")
    args = parser.parse_args()
    wanted = {ROOT / "README.md": readme_text(), ROOT / "docs" / "research.md": research_page(),
              ROOT / "CREDITS.md": credits_page()}
    curve = data_curve()
    if curve is not None:
        wanted[ROOT / "docs" / "studies" / "data_curve.csv"] = curve
    stale = [p for p, text in wanted.items() if not p.is_file() or p.read_text(encoding="utf-8") != text]
    if args.check:
        if stale:
            sys.exit(f"{', '.join(str(p.relative_to(ROOT)) for p in stale)} differ from what metrics/, docs/studies/ "
                     "and the pool index give; run `python docs/generate.py`")
        return
    for path in stale:
        path.write_text(wanted[path], encoding="utf-8")
        print(f"wrote {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
