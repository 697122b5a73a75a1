import json

import numpy as np
import pandas as pd
import pytest

from s3t.export import (EmbeddingTable, ExportError, check_own_files, companion, csv_cell, from_csv_cell, output_format,
                        path_text, read_part, read_table, write_part, write_table)


def _table(n=5, d=7):
    rng = np.random.default_rng(0)
    return EmbeddingTable(rng.standard_normal((n, d)).astype(np.float32), [f"a/{i}.wav" for i in range(n)],
                          [float(i) for i in range(n)], [i + 2.5 for i in range(n)], {"dim": d, "window_s": 2.5})


@pytest.mark.parametrize("suffix", [".npy", ".parquet"])
def test_tables_are_read_back_by_numpy_and_pandas_and_by_read_table(tmp_path, suffix):
    table = _table()
    out = tmp_path / f"emb{suffix}"
    written = write_table(out, table, [("a/bad.mp3", "zero bytes")])
    assert companion(out, "settings") in written and companion(out, "rejected") in written
    if suffix == ".npy":
        matrix, index = np.load(out), pd.read_csv(companion(out, "index"))
        assert list(index.columns) == ["path", "start_s", "end_s"]
    else:
        frame = pd.read_parquet(out)
        matrix, index = np.stack(frame["embedding"].to_numpy()), frame
    assert matrix.shape == (5, 7) and matrix.dtype == np.float32 and np.array_equal(matrix, table.embeddings)
    assert index["path"].tolist() == table.paths and index["end_s"].tolist() == table.end_s
    assert pd.read_csv(companion(out, "rejected")).values.tolist() == [["a/bad.mp3", "zero bytes"]]
    descriptor = json.loads(companion(out, "settings").read_text())
    assert {k: v for k, v in descriptor.items() if k != "sha256"} == table.settings and set(descriptor["sha256"]) >= {"table", "rejected"}
    back = read_table(out)
    assert np.array_equal(back.embeddings, table.embeddings) and back.paths == table.paths and back.settings == table.settings
    assert not list(tmp_path.glob(".*.tmp"))  # temporary files renamed or removed


def test_parts_round_trip_and_tables_concatenate_and_select(tmp_path):
    table = _table()
    write_part(tmp_path / "000000.npz", table, {"a/0.wav": [10, 123456789]})
    part, stamps = read_part(tmp_path / "000000.npz", table.settings)
    assert stamps == {"a/0.wav": [10, 123456789]}
    assert np.array_equal(part.embeddings, table.embeddings) and part.paths == table.paths and part.start_s == table.start_s
    both = EmbeddingTable.concat([table, part.select(np.array([True, False, False, False, True]))], 7, {})
    assert both.embeddings.shape == (7, 7) and both.paths[5:] == ["a/0.wav", "a/4.wav"]
    assert EmbeddingTable.concat([], 7, {}).embeddings.shape == (0, 7)


def test_unknown_suffix_and_foreign_files_say_what_to_change(tmp_path):
    with pytest.raises(ExportError, match=r"\.npy .* or \.parquet"):
        output_format(tmp_path / "emb.pt")
    np.save(tmp_path / "other.npy", np.zeros((2, 3)))
    with pytest.raises(ExportError, match="not written by `s3t embed`"):
        read_table(tmp_path / "other.npy")
    with pytest.raises(ValueError, match="3 embeddings but 2 paths"):
        EmbeddingTable(np.zeros((3, 2), np.float32), ["a", "b"], [0.0, 0.0], [1.0, 1.0])


def test_npy_and_parquet_tables_in_one_folder_share_no_companion(tmp_path):
    npy, parquet = tmp_path / "emb.npy", tmp_path / "emb.parquet"
    for what in ("settings", "rejected", "parts"):
        assert companion(npy, what) != companion(parquet, what)
    assert companion(npy, "index") == tmp_path / "emb.csv"


def test_csv_cells_that_a_spreadsheet_would_compute_are_escaped_and_read_back():
    for text in ["=1+1.wav", "+x", "-2", "@SUM(A1)", "'quoted", "\tx", "plain.wav", ""]:
        assert from_csv_cell(csv_cell(text)) == text
    assert csv_cell("=cmd|' /C calc'!A0") == "'=cmd|' /C calc'!A0" and csv_cell("plain.wav") == "plain.wav"
    assert path_text("caf\udce9.wav") == "caf\\xe9.wav" and path_text("café.wav") == "café.wav"


def test_a_table_published_half_or_edited_is_refused_with_the_files_to_delete(tmp_path):
    out = tmp_path / "emb.npy"
    write_table(out, _table(), [])
    other = _table(n=3)
    # A crash between renames: the new matrix is in place, the old index and descriptor are not replaced yet.
    np.save(out, other.embeddings)
    with pytest.raises(ExportError, match="do\\(es\\) not match the descriptor.*delete .*emb.npy.*emb.csv"):
        read_table(out)


def test_own_files_are_recognised_and_anything_else_is_refused(tmp_path):
    out = tmp_path / "emb.npy"
    check_own_files(out)  # nothing there
    write_table(out, _table(), [])
    check_own_files(out)  # the tool's own table may be replaced
    (tmp_path / "emb.csv").write_text("title,artist\nx,y\n")
    with pytest.raises(ExportError, match="emb.csv exists and is not the index file"):
        check_own_files(out)
    (tmp_path / "emb.csv").unlink()
    companion(out, "settings").unlink()
    with pytest.raises(ExportError, match="has no emb.npy.json beside it"):
        check_own_files(out)
