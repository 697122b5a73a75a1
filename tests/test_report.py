import torch

from s3t.report import NOT_RUN, pca_2d, render_tables


def _result(top1, top5=0.9):
    return {m: {"top1": top1 + d, "top5": top5} for m, d in (("s3t", 0.1), ("random_init", -0.2), ("supervised", 0.0))}


def test_tables_put_paper_values_beside_labelled_cells_of_this_run():
    md = render_tables({"gtzan": {100: _result(0.7)}, "corpus": {100: _result(0.5), 10: _result(0.4)}},
                       backbone="swin_t", preprocessor="time_folding")
    table1 = md.split("## Table 2")[0]
    assert "| 81.1 | 80.0 (gtzan, swin_t, time_folding, 100% labels) |" in table1  # S3T GTZAN top-1
    assert "| 27.6 | 50.0 (gtzan, swin_t, time_folding, 100% labels) |" in table1  # Random-Init
    assert "| 68.6 | not run |" in table1  # CLMR is only quoted
    assert "| 40.9 | not run |" in table1  # MTAT was not run
    table3 = md.split("## Table 3")[1].split("## Table 4")[0]
    assert "| 73.6 | not run |" in table3 and "| 81.1 | 80.0 (gtzan" in table3  # only the run's backbone is filled
    for table in md.split("## ")[1:]:  # every row has as many cells as the header
        lines = [line for line in table.splitlines() if line.startswith("|")]
        assert len({line.count("|") for line in lines}) == 1, table
    assert "This run on `corpus`" in md and "S3T 10% | 50.0 | 90.0" in md
    assert md.count(NOT_RUN) > 10


def test_pca_2d_finds_the_direction_of_largest_variance():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(200, 5, generator=g) * torch.tensor([10.0, 1.0, 0.1, 0.1, 0.1])
    xy = pca_2d(x)
    assert xy.shape == (200, 2)
    assert torch.corrcoef(torch.stack([xy[:, 0], x[:, 0]]))[0, 1].abs() > 0.99


def test_verdicts_say_whether_each_paired_interval_excludes_zero():
    from s3t.report import verdicts

    results = {"soundtracks": {100: {"s3t_minus_random_init": {"top1": 0.05, "top1_low": 0.01, "top1_high": 0.1},
                                     "s3t_minus_handcrafted": {"top1": 0.02, "top1_low": -0.05, "top1_high": 0.1}},
                               10: {"s3t_minus_random_init": {"top1": 0.5, "top1_low": 0.4, "top1_high": 0.6}}}}
    evaluations = {"transfer/cv.json": {"dataset": "transfer", "packages": ["a", "b"],
                                        "s3t_minus_handcrafted": {"top1": -0.1, "top1_low": -0.2, "top1_high": -0.01}}}
    lines = verdicts(results, evaluations)
    assert lines == [
        "S3T minus Random-Init, soundtracks test split, 100 % labels: +5.0 [1, 10] points; S3T above, the interval excludes 0.",
        "S3T minus hand-crafted, soundtracks test split, 100 % labels: +2.0 [-5, 10] points; not told apart: the interval holds 0.",
        "S3T minus hand-crafted, transfer task (transfer/cv.json): -10.0 [-20, -1] points; S3T below, the interval excludes 0.",
    ]
