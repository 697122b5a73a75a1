"""The paper's Tables 1-4 next to this run's numbers (paper 3.3).

Paper numbers are quoted from the S3T paper (Tables 1-4); its Supervised and CLMR rows are
themselves quoted there from other papers, and CLMR's FMA figures are marked there as
reproduced from the released 10,000-epoch model. Every cell of ours says which dataset,
backbone, pre-processor and label fraction it came from; a cell this run did not produce
says "not run". Percentages with one decimal, like the paper.
"""

from __future__ import annotations

from typing import Any, Mapping, NamedTuple, Sequence

from s3t.bootstrap import format_interval

# (dataset, metric) -> paper value, per row. Paper Table 1.
PAPER_TABLE1 = {
    "Random-Init": {("mtat", "pr_auc"): 18.0, ("mtat", "roc_auc"): 73.5, ("fma_small", "top1"): 26.0, ("gtzan", "top1"): 27.6},
    "Supervised": {("mtat", "pr_auc"): 38.3, ("mtat", "roc_auc"): 90.6, ("fma_small", "top1"): 42.7, ("gtzan", "top1"): 79.0},
    "CLMR (quoted)": {("mtat", "pr_auc"): 36.1, ("mtat", "roc_auc"): 89.4, ("fma_small", "top1"): 48.4, ("gtzan", "top1"): 68.6},
    "S3T": {("mtat", "pr_auc"): 40.9, ("mtat", "roc_auc"): 89.9, ("fma_small", "top1"): 56.4, ("gtzan", "top1"): 81.1},
}
# Paper Table 2: label efficiency; rows are (method, percent of labels).
PAPER_TABLE2 = {
    ("CLMR (quoted)", 100): {("mtat", "pr_auc"): 36.1, ("mtat", "roc_auc"): 89.4, ("fma_small", "top1"): 48.4, ("fma_small", "top5"): 90.6},
    ("Supervised", 100): {("mtat", "pr_auc"): 38.3, ("mtat", "roc_auc"): 90.6, ("fma_small", "top1"): 42.7},
    ("S3T", 1): {("mtat", "pr_auc"): 27.2, ("mtat", "roc_auc"): 77.4, ("fma_small", "top1"): 39.0, ("fma_small", "top5"): 84.8},
    ("S3T", 10): {("mtat", "pr_auc"): 37.2, ("mtat", "roc_auc"): 87.8, ("fma_small", "top1"): 50.6, ("fma_small", "top5"): 91.9},
    ("S3T", 100): {("mtat", "pr_auc"): 40.9, ("mtat", "roc_auc"): 89.9, ("fma_small", "top1"): 56.4, ("fma_small", "top5"): 95.3},
}
# Paper Table 3 (backbones, GTZAN) and Table 4 (pre-processors, GTZAN): name -> (top1, top5).
PAPER_TABLE3 = {"resnet50": ("ResNet50", 73.6, 93.4), "cnn_bigru": ("MSNet-BiGRU (ours: CNN-BiGRU)", 64.5, 91.9), "swin_t": ("Swin-T", 81.1, 97.2)}
PAPER_TABLE4 = {"frequency_tiling": ("Frequency Tiling", 78.3, 96.6), "time_folding": ("Time Folding", 81.1, 97.2)}

METHOD_KEYS = {"Random-Init": "random_init", "Supervised": "supervised", "S3T": "s3t", "Hand-crafted (log-CQT stats)": "handcrafted"}
NOT_RUN = "not run"
NOT_IN_PAPER = "not in paper"

Results = Mapping[str, Mapping[int, Mapping]]
"""dataset -> percent of labels -> the probe stage's metrics JSON."""


class Cell(NamedTuple):
    """One table cell: its text, and for this run's numbers the raw value and where it comes from
    ("<dataset>/probe_<percent>.json", then the keys into that JSON), so a page can be checked against it."""

    text: str
    value: float | None = None
    source: tuple | None = None


class Table(NamedTuple):
    """A titled table: header texts and rows of cells."""

    title: str
    header: list[str]
    rows: list[list[Cell]]


def _pct(value: float | None) -> str:
    return NOT_RUN if value is None else f"{100 * value:.1f}"


def _value(data: Any, source: str, *keys: str, signed: bool = False) -> Cell:
    """The value at data[keys...] in %, with its interval ("59.6 [46, 72]") where the same dict holds
    ``<key>_low`` / ``<key>_high``; "not run" where absent. ``source`` names the metrics file."""
    parent, value = None, data
    for key in keys:
        parent, value = value, value.get(key, {}) if isinstance(value, Mapping) else {}
    if isinstance(value, Mapping):
        return Cell(NOT_RUN)
    low, high = (parent.get(f"{keys[-1]}_{end}") for end in ("low", "high"))
    if low is None or high is None:
        low = high = float("nan")
    return Cell(format_interval(float(value), float(low), float(high), signed=signed), float(value), (source, *keys))


def _metric(results: Results, dataset: str, percent: int, method: str | None, *keys: str) -> Cell:
    """This run's value at results[dataset][percent][method][keys...] in %, with its interval, or "not run"."""
    if method is None:
        return Cell(NOT_RUN)
    return _value(results.get(dataset, {}).get(percent, {}), f"{dataset}/probe_{percent}.json", method, *keys)


def _ours(results: Results, dataset: str, percent: int, method: str | None, metric: str, settings: str) -> Cell:
    cell = _metric(results, dataset, percent, method, metric)
    if cell.value is None:
        return cell
    return cell._replace(text=f"{cell.text} ({dataset}, {settings}, {percent}% labels)")


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A Markdown table of texts."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def _table(header: list[str], rows: list[list[Cell]]) -> str:
    return markdown_table(header, [[cell.text for cell in row] for row in rows])


INTRO = ("Paper values are from the S3T paper (its Supervised and CLMR rows quote other papers); ours are from "
         "`metrics/<dataset>/probe_<percent>.json` of this run, each labelled (dataset, backbone, pre-processor, "
         "label fraction). Metrics in %. A cell this run did not produce says \"not run\".")


def paper_tables(results: Results, *, backbone: str, preprocessor: str) -> list[Table]:
    """The paper's Tables 1-4 with this run's cells beside the paper's values."""
    settings = f"{backbone}, {preprocessor}"
    tables = []
    columns = [("mtat", "pr_auc", "MTAT PR-AUC"), ("mtat", "roc_auc", "MTAT ROC-AUC"),
               ("fma_small", "top1", "FMA top-1"), ("gtzan", "top1", "GTZAN top-1")]
    header = ["Method"] + [f"{name} ({who})" for _, _, name in columns for who in ("paper", "ours")]
    rows = []
    for method, paper in PAPER_TABLE1.items():
        key = METHOD_KEYS.get(method)
        rows.append([Cell(method)] + [cell for d, m, _ in columns
                                      for cell in (Cell(_pct(paper.get((d, m)) / 100)), _ours(results, d, 100, key, m, settings))])
    rows.append([Cell("Hand-crafted (log-CQT stats; not in the paper)")] + [
        cell for d, m, _ in columns for cell in (Cell(NOT_IN_PAPER), _ours(results, d, 100, "handcrafted", m, settings))])
    tables.append(Table("Table 1: linear evaluation, 100% labels", header, rows))

    columns2 = [("mtat", "pr_auc", "MTAT PR-AUC"), ("mtat", "roc_auc", "MTAT ROC-AUC"),
                ("fma_small", "top1", "FMA top-1"), ("fma_small", "top5", "FMA top-5")]
    rows = []
    for (method, percent), paper in PAPER_TABLE2.items():
        key = METHOD_KEYS.get(method)
        cells = []
        for d, m, _ in columns2:
            p = paper.get((d, m))
            cells += [Cell(_pct(None if p is None else p / 100)), _ours(results, d, percent, key, m, settings)]
        rows.append([Cell(f"{method} {percent}%")] + cells)
    header2 = ["Setting"] + [f"{n} ({who})" for _, _, n in columns2 for who in ("paper", "ours")]
    tables.append(Table("Table 2: label efficiency", header2, rows))

    for title, paper_rows, ours_key in (("Table 3: backbones on GTZAN", PAPER_TABLE3, backbone),
                                         ("Table 4: pre-processors on GTZAN", PAPER_TABLE4, preprocessor)):
        rows = []
        for key, (name, top1, top5) in paper_rows.items():
            match = "s3t" if key == ours_key else None
            rows.append([Cell(name), Cell(f"{top1:.1f}"), _ours(results, "gtzan", 100, match, "top1", settings),
                         Cell(f"{top5:.1f}"), _ours(results, "gtzan", 100, match, "top5", settings)])
        header3 = ["Row", "Top-1 (paper)", "Top-1 (ours)", "Top-5 (paper)", "Top-5 (ours)"]
        tables.append(Table(title, header3, rows))
    return tables


METHOD_NAMES = {key: name for name, key in METHOD_KEYS.items()}
DIFFERENCE_NAMES = {"s3t_minus_random_init": "S3T minus Random-Init", "s3t_minus_handcrafted": "S3T minus hand-crafted"}


def run_tables(results: Results, *, backbone: str, preprocessor: str) -> list[Table]:
    """This run's own table for every dataset the paper has no table for, with the hand-crafted row
    and the paired differences a target reads; every test score with its 95 % interval."""
    settings = f"{backbone}, {preprocessor}"
    tables = []
    for dataset in sorted(d for d in results if d not in ("gtzan", "fma_small", "mtat")):
        top = results[dataset][max(results[dataset])]
        single = "top1" in top.get("s3t", {})
        names = (("top1", "top5") if "top5" in top.get("s3t", {}) else ("top1",)) if single else ("roc_auc", "pr_auc")
        rows = []
        for percent in sorted(results[dataset], reverse=True):
            source = results[dataset][percent]
            for method, key in METHOD_KEYS.items():
                rows.append([Cell(f"{method} {percent}%")] + [_metric(results, dataset, percent, key, n) for n in names]
                            + [_metric(results, dataset, percent, key, "knn", "test", names[0])])
            for key, name in DIFFERENCE_NAMES.items():
                if key in source:
                    file = f"{dataset}/probe_{percent}.json"
                    rows.append([Cell(f"{name} {percent}%")] + [_value(source, file, key, n, signed=True) for n in names]
                                + [_value(source, file, f"knn_{key}", names[0], signed=True)])
        labels = {"top1": "top-1", "top5": "top-5", "roc_auc": "ROC-AUC", "pr_auc": "PR-AUC"}
        header = ["Setting"] + [labels[n] for n in names] + [f"k-NN {labels[names[0]]}"]
        n_test = top.get("s3t", {}).get("n_test")
        tracks = top.get("s3t", {}).get("n_test_groups")
        split = f"; test split: {n_test} clips of {tracks} tracks" if n_test and tracks else ""
        tables.append(Table(f"This run on `{dataset}` (not in the paper; {settings}{split}; 95 % intervals)", header, rows))
    return tables


Evaluations = Mapping[str, Mapping]
"""metrics file name ("<dataset>/cv.json") -> its JSON (cross-validation or transfer, s3t.evaluation)."""


def evaluation_tables(evaluations: Evaluations) -> list[Table]:
    """One table per metrics file in the layout of :func:`s3t.evaluation.cross_validated_rows`
    (cross-validation, transfer, or a test split scored by `s3t probe --baselines`): each method's
    score (linear and k-NN) with its 95 % interval, then the paired differences."""
    tables = []
    for file, data in sorted(evaluations.items()):
        single = "top1" in data.get("s3t", {})
        names = ("top1",) if single else ("roc_auc", "pr_auc")
        rows = []
        for key, name in METHOD_NAMES.items():
            if key in data:
                rows.append([Cell(name)] + [_value(data, file, key, n) for n in names]
                            + [_value(data, file, key, "knn", names[0])])
        for key, name in DIFFERENCE_NAMES.items():
            if key in data:
                rows.append([Cell(name)] + [_value(data, file, key, n, signed=True) for n in names]
                            + [_value(data, file, f"knn_{key}", names[0], signed=True)])
        if "packages" in data:
            what = f"transfer to packages pre-training never heard ({', '.join(data['packages'])})"
        elif data.get("folds"):
            what = f"cross-validated over {data.get('scope', 'train + valid')}"
        else:
            what = "test split"
        folds = f" in {data['folds']} folds by track" if data.get("folds") else ""
        title = f"`{data.get('dataset', file)}`: {what}; {data.get('n')} clips of {data.get('n_groups')} tracks{folds}; 95 % intervals"
        labels = {"top1": "top-1", "roc_auc": "ROC-AUC", "pr_auc": "PR-AUC"}
        tables.append(Table(title, ["Row", *(labels[n] for n in names), f"k-NN {labels[names[0]]}"], rows))
    return tables


def verdicts(results: Results, evaluations: Evaluations) -> list[str]:
    """One sentence per paired difference a target reads (the test split at the most labels, the folds, the
    transfer task): its value and interval, and whether the interval excludes 0 (S3T above or below the
    baseline) or holds it (not told apart at this size)."""
    where = []
    for dataset, by_percent in sorted(results.items()):
        top = max(by_percent)
        where.append((f"{dataset} test split, {top} % labels", f"{dataset}/probe_{top}.json", by_percent[top]))
    for file, data in sorted(evaluations.items()):
        name = f"transfer task ({file})" if "packages" in data else f"{data.get('dataset', file)} folds"
        where.append((name, file, data))
    out = []
    for label, file, data in where:
        for key, name in DIFFERENCE_NAMES.items():
            row = data.get(key, {})
            if "top1_low" not in row:
                continue
            low, high = row["top1_low"], row["top1_high"]
            side = ("S3T above, the interval excludes 0" if low > 0 else "S3T below, the interval excludes 0" if high < 0
                    else "not told apart: the interval holds 0")
            cell = _value(data, file, key, "top1", signed=True).text
            out.append(f"{name}, {label}: {cell} points; {side}.")
    return out


def render_tables(results: Results, *, backbone: str, preprocessor: str, evaluations: Evaluations | None = None) -> str:
    """Markdown with the paper's Tables 1-4, the paper's value beside this run's in every cell group,
    this run's own tables and the cross-validated ones (``evaluations``)."""
    out = ["# S3T: paper tables next to this run", "",
           "Paper values are from the S3T paper (its Supervised and CLMR rows quote other papers); ours are from",
           "`metrics/<dataset>/probe_<percent>.json` and `metrics/<dataset>/cv.json` of this run, each labelled (dataset,",
           "backbone, pre-processor, label fraction). Metrics in %, with the 95 % interval of a bootstrap over whole tracks",
           "in brackets. A cell this run did not produce says \"not run\".", ""]
    for table in paper_tables(results, backbone=backbone, preprocessor=preprocessor) + run_tables(
            results, backbone=backbone, preprocessor=preprocessor) + evaluation_tables(evaluations or {}):
        out += [f"## {table.title}", "", _table(table.header, table.rows), ""]
    return "\n".join(out)


def pca_2d(x: "torch.Tensor") -> "torch.Tensor":
    """Project (N, D) embeddings onto their first two principal components: (N, 2)."""
    import torch

    centred = x - x.mean(0, keepdim=True)
    _, _, v = torch.linalg.svd(centred, full_matrices=False)
    return centred @ v[:2].T
