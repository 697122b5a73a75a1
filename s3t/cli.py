"""The ``s3t`` command line: pretrain, embed, probe, predict, corpus.

This is where side effects live (files, devices, seeding, progress bars); every
computation is a call into the library. Bad input exits with status 2 and one line
saying what is wrong, never a traceback: bad arguments (``--top -1``), unreadable
manifests, checkpoints of the wrong kind, and audio of which nothing usable remains.

Outputs never destroy inputs or finished work: an output path that names an input, an
existing ``pretrain --out`` without ``--resume``, or a file that is not a checkpoint of the
kind being written is refused before any work starts. Files that cannot be decoded are
skipped and listed: on stderr (embed, probe, predict; predict then exits 1), in the
embeddings file (``rejected``), and for ``pretrain`` in ``<out>.skipped.csv`` (path, reason).
"""

from __future__ import annotations

import argparse
import collections
import csv
import json
import math
import os
import shutil
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any, Sequence

from s3t.threads import sleep_at_barriers

# Before torch loads (s3t.threads): on a busy machine, OpenMP threads that spin while they wait
# for each other made every command about 10x slower.
sleep_at_barriers()

import numpy as np  # noqa: E402
import torch  # noqa: E402
from tqdm.auto import tqdm  # noqa: E402

from s3t.allocator import keep_freed_memory
from s3t.audio import find_audio_files
from s3t.checkpoint import KIND_EMBEDDINGS, KIND_ENCODER, KIND_PROBE, check_replaceable, load_checkpoint, save_checkpoint
from s3t.cqt import CQT
from s3t.embed import EmbeddingSet, WindowEmbeddings, embed_files, embed_windows, load_embeddings, window_bounds
from s3t.evaluation import cross_validated_rows, rows_on_test_split
from s3t.export import (EmbeddingTable, ExportError, check_own_files, companion, csv_cell, file_sha256, output_format,
                        path_text, read_part, read_table, write_json, write_part, write_table)
from s3t.features import Rejected, featurize_files
from s3t.handcrafted import handcrafted_embeddings
from s3t.manifest import is_multilabel, label_vocabulary, read_manifest
from s3t.model import ModelConfig
from s3t.modelcard import model_card
from s3t.report import evaluation_tables, markdown_table
from s3t.probe import PROTOCOLS, LinearProbe, ProbeConfig, load_probe, novelty, probe_splits, protocol_options
from s3t.train import PretrainConfig, load_encoder, pretrain, record_provenance, training_clip_seconds

class CLIError(ValueError):
    """Bad command-line input."""


def _device(name: str | None) -> torch.device:
    """The --device to run on, checked before any work: it must parse and exist on this machine."""
    if not name:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise CLIError(f"--device {name!r} is not a device name; use cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise CLIError(f"--device {name}: no CUDA device here; use --device cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise CLIError(f"--device {name}: this machine has {torch.cuda.device_count()} CUDA device(s), "
                           f"cuda:0 to cuda:{torch.cuda.device_count() - 1}")
    elif device.type == "mps" and not torch.backends.mps.is_available():
        raise CLIError(f"--device {name}: no Apple GPU here; use --device cpu")
    elif device.type not in ("cpu", "cuda", "mps"):
        raise CLIError(f"--device {name}: s3t runs on cpu, cuda or mps")
    return device


def _min_seconds(cfg) -> float:
    """The shortest file worth embedding: one CQT hop (23 ms at the paper's settings); a 1-sample file has no
    sound an encoder could describe."""
    return cfg.hop_length / cfg.sample_rate


def _progress(total: int, desc: str) -> tqdm:
    # disable=None: drawn only when stderr is a terminal, so logs and pipes stay clean.
    return tqdm(total=total, desc=desc, unit="clip", dynamic_ncols=True, file=sys.stderr, disable=None)


def _featurize(paths: Sequence[str], cqt_config, device: torch.device, workers: int, desc: str):
    cqt = CQT.from_config(cqt_config).to(device)
    with _progress(len(paths), desc) as bar:
        return featurize_files(paths, cqt, workers=workers, min_seconds=_min_seconds(cqt_config),
                               on_file=lambda _: bar.update())


def _report_rejected(rejected: list[Rejected]) -> None:
    for r in rejected:
        print(f"s3t: skipped {path_text(r.path)}: {r.reason}", file=sys.stderr)


def _none_readable(rejected: list[Rejected]) -> CLIError:
    """The error for a run left without a single clip; it names the first file and its reason."""
    first = f" ({path_text(rejected[0].path)}: {rejected[0].reason}{', ...' if len(rejected) > 1 else ''})" if rejected else ""
    return CLIError(f"none of the {len(rejected)} audio file(s) could be read{first}; nothing was written")


def _int_at_least(text: str, low: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer >= {low}, got {text!r}") from None
    if value < low:
        raise argparse.ArgumentTypeError(f"must be an integer >= {low}, got {value}")
    return value


def _positive_int(text: str) -> int:
    return _int_at_least(text, 1)


MAX_SEGMENTS = 64
"""Most --segments per clip: each is a forward pass of the encoder, and more than a few dozen only repeat the clip."""


def _segments(text: str) -> int:
    value = _int_at_least(text, 1)
    if value > MAX_SEGMENTS:
        raise argparse.ArgumentTypeError(f"must be at most {MAX_SEGMENTS}, got {value}")
    return value


def _seconds(text: str) -> float:
    """A finite, positive number of seconds no longer than the longest file s3t reads."""
    from s3t.audio import MAX_SECONDS

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number of seconds, got {text!r}") from None
    if not (math.isfinite(value) and 0 < value <= MAX_SECONDS):
        raise argparse.ArgumentTypeError(f"must be a number of seconds > 0 and <= {MAX_SECONDS:g}, got {text!r}")
    return value


def _non_negative_int(text: str) -> int:
    return _int_at_least(text, 0)


class _Parser(argparse.ArgumentParser):
    """argparse with its errors on one line (argparse prints the usage block before them)."""

    def error(self, message: str) -> None:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.abspath(a) == os.path.abspath(b)


def _check_outputs(args: argparse.Namespace, outputs: dict[str, str | None]) -> None:
    """Refuse, before any work, output paths that name an input or a file that must not be replaced.

    ``outputs`` maps each output option to the checkpoint kind it writes, or None for a JSON file.
    """
    inputs = {name: getattr(args, name, None) for name in ("checkpoint", "manifest", "embeddings", "probe")}
    for option, kind in outputs.items():
        out = getattr(args, option, None)
        if out is None:
            continue
        flag = "--" + option.replace("_", "-")
        for name, given in inputs.items():
            if given and _same_file(out, given):
                raise CLIError(f"{flag} {out} is also the --{name} input; write the output to another path")
        _check_writable(out, flag)
        if kind is not None:
            check_replaceable(out, kind)
        elif os.path.lexists(out):
            _check_json_replaceable(out, flag)


def _check_writable(out: str | Path, flag: str) -> None:
    """Refuse before any work an output in a folder this user cannot write (it would fail after all the work)."""
    folder = Path(out).absolute().parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent  # the folder that will be created under
    if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
        raise CLIError(f"{flag} {path_text(str(out))}: cannot write in {path_text(str(folder))} (no permission or not a "
                       f"folder); choose another path")


def _check_json_replaceable(path: str, flag: str) -> None:
    """A metrics file is only ever replaced by another: refuse anything that does not parse as JSON."""
    try:
        json.loads(Path(path).read_bytes()[: 64 << 20])
    except (ValueError, IsADirectoryError):
        raise CLIError(f"{flag} {path} exists and is not a JSON metrics file; refusing to replace it") from None


def _write_skipped(out: str, rejected: list[Rejected]) -> Path:
    """``<out>.skipped.csv``: path,reason of every file left out (header only when none)."""
    path = Path(out).with_name(Path(out).name + ".skipped.csv")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["path", "reason"])
        writer.writerows([csv_cell(path_text(r.path)), csv_cell(r.reason)] for r in rejected)
    os.replace(tmp, path)
    return path


def cmd_pretrain(args: argparse.Namespace) -> None:
    model_fields: dict[str, Any] = {}
    train_fields: dict[str, Any] = {}
    for key in ("backbone", "preprocessor"):
        if getattr(args, key) is not None:
            model_fields[key] = getattr(args, key)
    for key in ("epochs", "batch_size", "K", "m", "lr", "warmup_epochs", "seed"):
        if getattr(args, key) is not None:
            train_fields[key] = getattr(args, key)
    if args.compile:
        train_fields["compile"] = True
    if args.recipe:
        from s3t.recipe import compose_params, configs_from_params

        # The pipeline's model at that scale, built as its pretrain stage builds it; explicit flags still win.
        recipe_model, recipe_train, _ = configs_from_params(compose_params(args.recipe))
        model = replace(recipe_model, **model_fields)
        if args.epochs is not None and args.warmup_epochs is None:
            train_fields["warmup_epochs"] = round(recipe_train.warmup_epochs / recipe_train.epochs * args.epochs)
        config = replace(recipe_train, **train_fields)
    else:
        if args.epochs is not None and args.warmup_epochs is None:
            # The paper warms up 20 of its 400 epochs; keep that share rather than 20 epochs of a short run.
            train_fields["warmup_epochs"] = round(PretrainConfig.warmup_epochs / PretrainConfig.epochs * args.epochs)
        model = ModelConfig(**model_fields)
        config = PretrainConfig(**train_fields)
    if args.time_compression is not None:
        model = replace(model, cqt=replace(model.cqt, time_compression=args.time_compression))

    if os.path.lexists(args.out) and not args.resume:
        raise CLIError(
            f"--out {args.out} exists; pass --resume to continue that run, or give another --out (it is never replaced)"
        )
    check_replaceable(args.out, KIND_ENCODER)
    unreadable: list[tuple[str, str]] = []
    paths = [str(p) for root in args.audio for p in find_audio_files(root, unreadable)]
    if not paths:
        raise CLIError(f"no audio files found under {', '.join(args.audio)}")
    config = _fit_to_folder(config, len(paths), queue_given=args.K is not None)
    device = _device(args.device)
    keep_freed_memory()  # the step's large tensors are reused, not page-faulted in anew (s3t.allocator)
    clips, _, rejected = _featurize(paths, model.cqt, device, args.workers, "featurize")
    rejected = [Rejected(folder, reason) for folder, reason in unreadable] + rejected
    listed = _write_skipped(args.out, rejected)
    print(f"s3t: {len(clips)} clips for pre-training, {len(rejected)} skipped (listed with reasons in {listed})",
          file=sys.stderr)
    if not clips:
        raise _none_readable(rejected)

    steps = config.epochs * (len(clips) // config.batch_size)
    with tqdm(total=steps, desc="pretrain", unit="step", dynamic_ncols=True, file=sys.stderr, disable=None) as bar:
        def on_step(s: dict[str, float]) -> None:
            bar.n = s["step"]
            bar.set_postfix(loss=f"{s['loss']:.3f}", lr=f"{s['lr']:.2e}", samples_s=f"{s['samples_per_s']:.0f}")
            bar.refresh()

        history = pretrain(clips, model, config, args.out, resume=args.resume, device=device, on_step=on_step)
    if history:
        # What the model card needs and the training loop does not know: the data and the software.
        hours = sum(c.shape[-1] for c in clips) / model.cqt.frames_per_second / 3600
        frames = sorted(c.shape[-1] for c in clips)
        record_provenance(args.out, args.out, {"dataset": ", ".join(args.audio), "splits": None, "clips": len(clips),
                                               "hours": hours,
                                               "clip_seconds": frames[len(frames) // 2] / model.cqt.frames_per_second})
        print(f"s3t: wrote {args.out} (epoch {history[-1]['epoch'] + 1}, loss {history[-1]['loss']:.4f})")


def _clip_seconds(checkpoint: str) -> float | None:
    """The clip length an encoder checkpoint was pre-trained on: files longer than it are embedded as the mean of
    windows of it (s3t.embed.embed_files)."""
    return training_clip_seconds(load_checkpoint(checkpoint, kind=KIND_ENCODER))


def _fit_to_folder(config: PretrainConfig, files: int, *, queue_given: bool) -> PretrainConfig:
    """Check, before featurizing, that a folder of ``files`` audio files gives full batches and a queue below its
    number of clips (one clip per file); a queue the user did not give is lowered to fit, saying so.

    The queue must stay below the number of clips or a query's own clip (from an earlier step) sits among its
    negatives; it stays a multiple of the batch (s3t.moco)."""
    if config.batch_size > files:
        fit = 1 << (files.bit_length() - 1)
        raise CLIError(f"{files} audio file(s) give no full batch of {config.batch_size}: pass --batch-size {fit} or "
                       f"less (and --K below {files}), or add music")
    if config.K < files:
        return config
    fit = config.batch_size * max(1, (files - 1) // config.batch_size)
    if queue_given or fit >= files:
        raise CLIError(f"--K {config.K} is not below the folder's {files} clips (a clip would be its own negative): "
                       f"pass --K {fit if fit < files else 'smaller'} with a --batch-size that divides it")
    print(f"s3t: queue K lowered from {config.K} to {fit} to stay below the folder's {files} clips", file=sys.stderr)
    return replace(config, K=fit)


class _ManifestClips:
    """A manifest's readable clips featurized once (with the checkpoint's CQT), ready to be embedded by
    one or more encoders: ``embed(encoder, method)`` gives their :class:`EmbeddingSet`."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.rows = read_manifest(args.manifest, group_column=args.group_column, tagging=True if args.tagging else False)
        self.device = _device(args.device)
        self.encoder = load_encoder(args.checkpoint, random_init=args.random_init, seed=args.seed)
        self.clip_seconds = _clip_seconds(args.checkpoint)
        self.clips, self.kept, self.rejected = _featurize([r.path for r in self.rows], self.encoder.config.cqt,
                                                          self.device, args.workers, "featurize")
        _report_rejected(self.rejected)
        if not self.clips:
            raise _none_readable(self.rejected)
        self.by_path = {r.path: r for r in self.rows}

    @property
    def groups(self) -> list[str]:
        """Each kept clip's group: the group column's value, or the clip itself."""
        return [self.by_path[p].group or p for p in self.kept]

    def labeled(self, x: torch.Tensor, method: str) -> EmbeddingSet:
        return EmbeddingSet(embeddings=x, ids=self.kept, labels=[self.by_path[p].labels for p in self.kept],
                            splits=[self.by_path[p].split for p in self.kept], label_set=label_vocabulary(self.rows),
                            multilabel=is_multilabel(self.rows), method=method)

    def embed(self, encoder, method: str) -> EmbeddingSet:
        with _progress(len(self.clips), f"embed {method}") as bar:
            x = embed_files(encoder, self.clips, self.clip_seconds, batch_size=self.args.batch_size, num_segments=self.args.segments,
                                   device=self.device, on_batch=lambda n: bar.update(n - bar.n))
        return self.labeled(x, method)


def _embed_manifest(args: argparse.Namespace) -> tuple[EmbeddingSet, list[Rejected]]:
    """The manifest's clips embedded by the checkpoint's encoder (or its Random-Init with --random-init),
    and the files that could not be read."""
    clips = _ManifestClips(args)
    return clips.embed(clips.encoder, "random_init" if args.random_init else "s3t"), clips.rejected


FILES_PER_PART = 32
"""Files embedded between two saves of a folder run's progress (OUT.parts/): the most an interruption loses."""

MAX_WINDOWS_PER_FILE = 10_000
"""Most windows of one file (an hour every 0.36 s): a window of one CQT frame over an hour would be 155,000 rows."""

MAX_ROWS = 2_000_000
"""Most rows one `s3t embed --audio` run writes (8 GB of 1,024-d float32): a window of one CQT frame over hours of
music is refused, not written."""


def _stamp(path: str) -> list[int] | None:
    """[size in bytes, modification time in ns] of a source file: what says it is the file embedded before."""
    try:
        info = os.stat(path)
    except OSError:
        return None
    return [info.st_size, info.st_mtime_ns]


def _lock(out: Path):
    """An exclusive lock on a table's run (OUT.parts/.lock): a second run to the same --out stops at once."""
    from filelock import FileLock, Timeout

    parts = companion(out, "parts")
    parts.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(parts / ".lock"), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise CLIError(f"another s3t embed is writing --out {out} now (lock {parts / '.lock'}); wait for it to end "
                       f"or choose another --out") from None
    return lock


def _embed_folder(args: argparse.Namespace) -> None:
    """`s3t embed --audio DIR`: a table of one row per file or window (s3t.export), resumable."""
    if args.group_column:
        raise CLIError("--group-column checks a manifest; it does not apply to --audio")
    output_format(args.out)
    out = Path(args.out)
    # Every path the table will occupy is checked before any work (s3t.export.check_own_files).
    _check_writable(out, "--out")
    check_own_files(out)
    unreadable: list[tuple[str, str]] = []
    paths = [str(p) for p in find_audio_files(args.audio, unreadable)]
    for folder, reason in unreadable:
        print(f"s3t: skipped {path_text(folder)}: {reason}", file=sys.stderr)
    if not paths:
        raise CLIError(f"no audio files found under {args.audio}" + (f" ({len(unreadable)} folder(s) could not be read)"
                                                                      if unreadable else ""))
    encoder = load_encoder(args.checkpoint, random_init=args.random_init, seed=args.seed)
    device = _device(args.device)
    settings = {
        "checkpoint": path_text(str(args.checkpoint)), "checkpoint_sha256": file_sha256(args.checkpoint),
        "random_init": args.random_init, "seed": args.seed if args.random_init else None,
        "window_s": args.window, "hop_s": args.hop if args.hop is not None else args.window,
        "segments": encoder.config.embed_segments if args.segments is None else args.segments,
        "pooling": encoder.config.embed_pooling, "dim": encoder.embedding_dim,
        # Without --window a file longer than the training clip is the mean of windows of this length.
        "file_windows_s": None if args.window is not None else _clip_seconds(args.checkpoint),
    }
    # Check window and hop before any work (a one-frame clip exercises every check).
    window_bounds(1, encoder.config.cqt.frames_per_second, args.window, args.hop)
    lock = _lock(out)
    try:
        _embed_folder_locked(args, out, paths, unreadable, encoder, device, settings)
    finally:
        lock.release()


def _embed_folder_locked(args, out: Path, paths: list[str], unreadable: list[tuple[str, str]], encoder, device,
                         settings: dict[str, Any]) -> None:
    texts = {p: path_text(p) for p in paths}
    listed = {texts[p]: i for i, p in enumerate(paths)}
    stamps = {texts[p]: _stamp(p) for p in paths}
    tables: list[EmbeddingTable] = []
    sources: dict[str, list[int]] = {}

    def keep_current(table: EmbeddingTable, made_from: dict[str, list[int]]) -> EmbeddingTable:
        # Rows of files no longer in the folder, or replaced since (another size or time), are dropped:
        # the table is the folder as it is now.
        keep = [p in listed and made_from.get(p) == stamps[p] for p in table.paths]
        sources.update({p: stamps[p] for p, k in zip(table.paths, keep) if k})
        return table.select(np.array(keep, dtype=bool))

    def check(found: dict, where: Path) -> None:
        # The checkpoint is compared by content (sha256), so another path to the same file is fine.
        differ = sorted(k for k in settings if k != "checkpoint" and found.get(k) != settings[k])
        if differ:
            raise CLIError(
                f"{where} was made with other settings ({', '.join(differ)}); write to another --out or delete it"
            )

    if out.exists():
        previous = read_table(out)
        check(previous.settings, out)
        tables.append(keep_current(previous, previous.settings.get("sources") or {}))
    parts = companion(out, "parts")
    if (parts / "settings.json").is_file():
        check(json.loads((parts / "settings.json").read_text(encoding="utf-8")), parts)
        for f in sorted(parts.glob("*.npz")):
            try:
                part, made_from = read_part(f, settings)
            except ExportError as err:  # its files are simply embedded again
                print(f"s3t: {err}; removed", file=sys.stderr)
                f.unlink()
                continue
            tables.append(keep_current(part, made_from))
    else:
        write_json(parts / "settings.json", settings)
    done = {p for t in tables for p in t.paths}
    todo = [p for p in paths if texts[p] not in done]
    print(f"s3t: {len(paths)} audio files under {path_text(args.audio)}: {len(done)} already embedded in "
          f"{path_text(str(out))}, {len(todo)} to embed", file=sys.stderr)

    cqt = CQT.from_config(encoder.config.cqt).to(device)
    rejected: list[Rejected] = [Rejected(folder, reason) for folder, reason in unreadable]
    rows = sum(len(t.paths) for t in tables)
    first_part = len(list(parts.glob("*.npz")))
    # disable=None: the bar is drawn only when stderr is a terminal, so logs and pipes stay clean.
    with tqdm(total=len(todo), desc="embed", unit="file", dynamic_ncols=True, file=sys.stderr, disable=None) as bar:
        for k, start in enumerate(range(0, len(todo), FILES_PER_PART)):
            chunk = todo[start : start + FILES_PER_PART]
            clips, kept, skipped = featurize_files(chunk, cqt, workers=args.workers, min_seconds=_min_seconds(cqt.config),
                                                   on_file=lambda _: bar.update())
            rejected += skipped
            fps = encoder.config.cqt.frames_per_second
            for clip, path in zip(clips, kept):
                n = len(window_bounds(clip.shape[-1], fps, args.window, args.hop))
                if n > MAX_WINDOWS_PER_FILE:
                    raise CLIError(f"{path_text(path)} would give {n:,} windows (at most {MAX_WINDOWS_PER_FILE:,} per "
                                   f"file); use a longer --hop")
            if args.window is None:  # one row per file, from 0 to its end
                emb = embed_files(encoder, clips, settings["file_windows_s"], batch_size=args.batch_size,
                                  num_segments=args.segments, device=device)
                windows = WindowEmbeddings(emb, list(range(len(clips))), [0.0] * len(clips),
                                           [c.shape[-1] / fps for c in clips])
            else:
                windows = embed_windows(encoder, clips, window_s=args.window, hop_s=args.hop,
                                        batch_size=args.batch_size, num_segments=args.segments, device=device)
            rows += len(windows.clip)
            if rows > MAX_ROWS:
                raise CLIError(f"this run would write more than {MAX_ROWS:,} rows; use a longer --hop or --window")
            bad = sorted({kept[i] for i, ok in zip(windows.clip, torch.isfinite(windows.embeddings).all(dim=1).tolist())
                          if not ok})
            if bad:
                raise CLIError(f"the encoder gave NaN or infinite embeddings (first for {path_text(bad[0])}); the "
                               f"checkpoint {path_text(str(args.checkpoint))} is not usable")
            table = EmbeddingTable(windows.embeddings.numpy(), [texts[kept[i]] for i in windows.clip],
                                   windows.start_s, windows.end_s, settings)
            made_from = {texts[p]: stamps[texts[p]] for p in kept}
            write_part(parts / f"{first_part + k:06d}.npz", table, made_from)
            sources.update(made_from)
            tables.append(table)
    _report_rejected(rejected)

    table = EmbeddingTable.concat(tables, encoder.embedding_dim, settings)
    embedded = len(set(table.paths))
    if not embedded:
        shutil.rmtree(parts)
        raise _none_readable(rejected)
    order = np.argsort([listed[p] for p in table.paths], kind="stable")  # folder order, windows in time order
    table = EmbeddingTable(table.embeddings[order], [table.paths[i] for i in order], [table.start_s[i] for i in order],
                           [table.end_s[i] for i in order], settings)
    table.settings = {**settings, "files": embedded, "rows": len(table.paths), "rejected": len(rejected),
                      "sources": {p: sources[p] for p in dict.fromkeys(table.paths)}}
    written = write_table(out, table, [(r.path, r.reason) for r in rejected])
    shutil.rmtree(parts)
    print(f"s3t: wrote {', '.join(path_text(str(w)) for w in written)}: {table.embeddings.shape} embeddings of "
          f"{embedded} files ({len(done & set(table.paths))} reused, {len(todo) - len(rejected) + len(unreadable)} "
          f"embedded now), {len(rejected)} rejected")


def cmd_embed(args: argparse.Namespace) -> None:
    if args.hop is not None and args.window is None:
        raise CLIError("--hop needs --window (the window length)")
    if args.hop is not None and args.hop > args.window and not args.allow_gaps:
        raise CLIError(f"--hop {args.hop:g} is longer than --window {args.window:g}: the audio between windows would "
                       f"not be embedded; shorten --hop, or pass --allow-gaps if that is what you want")
    if bool(args.audio) == bool(args.manifest):
        raise CLIError("give either --audio DIR (any folder of audio) or --manifest M (labeled clips)")
    if args.audio:
        _embed_folder(args)
        return
    if args.window is not None or args.hop is not None:
        raise CLIError("--window and --hop apply to --audio; a manifest's clips are embedded whole")
    _check_outputs(args, {"out": KIND_EMBEDDINGS})
    embeddings, rejected = _embed_manifest(args)
    save_checkpoint(
        {"embeddings": embeddings.to_state(), "rejected": [[r.path, r.reason] for r in rejected]}, args.out,
        kind=KIND_EMBEDDINGS,
    )
    print(f"s3t: wrote {args.out}: {tuple(embeddings.embeddings.shape)} embeddings, {len(rejected)} skipped")


def _probe_baselines(args: argparse.Namespace) -> None:
    """`s3t probe --baselines`: S3T, Random-Init and hand-crafted rows of one manifest, each score with its
    95 % interval (a bootstrap over groups) and the paired differences, as one table (s3t.evaluation)."""
    if not (args.checkpoint and args.manifest):
        raise CLIError("--baselines scores a checkpoint on a manifest: give --checkpoint C and --manifest M "
                       "(the clips are embedded by S3T and Random-Init and described by the hand-crafted statistics)")
    if args.random_init or args.save_probe or args.fraction != 1.0:
        raise CLIError("--baselines scores every row itself on all training labels; leave out --random-init, "
                       "--save-probe and --fraction")
    clips = _ManifestClips(args)
    random_init = load_encoder(args.checkpoint, random_init=True, seed=args.seed)
    reference = clips.embed(clips.encoder, "s3t")
    if not args.cv:
        report, warnings = _split_report(reference.labels, reference.splits, reference.label_set, reference.multilabel)
        for warning in warnings:
            print(f"s3t: warning: {warning}", file=sys.stderr)
    x = {"s3t": reference.embeddings, "random_init": clips.embed(random_init, "random_init").embeddings,
         "handcrafted": handcrafted_embeddings(clips.clips)}
    groups, skipped = clips.groups, clips.rejected
    config = ProbeConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed)
    options = protocol_options(args.protocol)
    with _progress(len(x), "probe") as bar:
        if args.cv:
            if reference.multilabel:
                raise CLIError("--cv scores single-label tasks; for a tagging manifest leave it out (train/valid/test splits)")
            try:
                result = cross_validated_rows(x, reference.labels, groups, reference.label_set, folds=args.cv,
                                              config=config, **options)
            except ValueError as err:
                raise CLIError(f"{args.manifest}: {err}") from None
            result["scope"] = "every clip of the manifest (its splits ignored)"
        else:
            try:
                result = rows_on_test_split(x, reference.labels, reference.splits, groups, reference.label_set,
                                            reference.multilabel, config=config, **options)
            except ValueError as err:
                raise CLIError(f"{args.manifest}: {err}; give the manifest train, valid and test rows, or use --cv K") from None
        bar.update(len(x))
    result.update(dataset=str(args.manifest), protocol=args.protocol, rejected=[[r.path, r.reason] for r in skipped])
    counts = {label: sum(label in row for row in reference.labels) for label in reference.label_set}
    if not reference.multilabel:
        result["majority_class"] = max(counts.values()) / len(reference.labels)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    table = evaluation_tables({args.out: result})[0]
    print(f"s3t: {table.title.replace('`', '')}; protocol {args.protocol}; written to {args.out}")
    print(markdown_table(table.header, [[c.text for c in row] for row in table.rows]))
    if "majority_class" in result:
        print(f"chance: the largest class is {100 * result['majority_class']:.1f} % of the clips "
              f"(1 in {len(reference.label_set)} classes: {100 / len(reference.label_set):.1f} %)")
    if not args.cv:
        print(f"clips: train {report['n_train']}, valid {report['n_valid']}, test {report['n_test']}")


def _split_report(labels: Sequence[tuple[str, ...]], splits: Sequence[str], label_set: Sequence[str],
                  multilabel: bool) -> tuple[dict[str, Any], list[str]]:
    """What a probe result needs beside its score, as a paper table gives it: clips per split, the chance rate
    (1 / classes) and the majority rate (the test split's largest class), and a warning for every class with no
    clip in a split (its score then says nothing about that class)."""
    counts = {split: collections.Counter(label for row, s in zip(labels, splits) if s == split for label in row)
              for split in ("train", "valid", "test")}
    report: dict[str, Any] = {f"n_{split}": sum(1 for s in splits if s == split) for split in counts}
    warnings = []
    for split, found in counts.items():
        missing = [label for label in label_set if not found[label]]
        if missing:
            warnings.append(f"{len(missing)} of {len(label_set)} class(es) have no {split} clip: "
                            f"{', '.join(missing[:5])}{', ...' if len(missing) > 5 else ''}")
    if not multilabel and report["n_test"]:
        top, n = max(counts["test"].items(), key=lambda item: item[1])
        report.update(chance=1 / len(label_set), majority=n / report["n_test"], majority_class=top)
    return report, warnings


def cmd_probe(args: argparse.Namespace) -> None:
    if args.baselines:
        _check_outputs(args, {"out": None})
        _probe_baselines(args)
        return
    if args.cv:
        raise CLIError("--cv is a protocol of --baselines (S3T, Random-Init and hand-crafted rows); add --baselines")
    if args.embeddings and args.group_column:
        # The embeddings file carries no groups; silently skipping the check would suggest it passed.
        raise CLIError("--group-column checks a manifest; use it with --checkpoint and --manifest, not --embeddings")
    _check_outputs(args, {"out": None, "save_probe": KIND_PROBE})
    if args.embeddings:
        embeddings, rejected = load_embeddings(args.embeddings)
    elif args.checkpoint and args.manifest:
        embeddings, skipped = _embed_manifest(args)
        rejected = [[r.path, r.reason] for r in skipped]
    else:
        raise CLIError("give --embeddings E, or both --checkpoint C and --manifest M")
    report, warnings = _split_report(embeddings.labels, embeddings.splits, embeddings.label_set, embeddings.multilabel)
    for warning in warnings:
        print(f"s3t: warning: {warning}", file=sys.stderr)
    config = ProbeConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed)
    probe, result, history = probe_splits(
        embeddings.embeddings, embeddings.labels, embeddings.splits, embeddings.label_set, embeddings.multilabel,
        fraction=args.fraction, config=config, knn=True, **protocol_options(args.protocol),
    )
    result.update(method=embeddings.method, rejected=rejected,
                  **{k: v for k, v in report.items() if k.startswith(("chance", "majority"))})
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    if args.save_probe:
        save_checkpoint({"probe": probe.to_state(), "history": history, "metrics": result}, args.save_probe, kind=KIND_PROBE)
    shown = {k: round(v, 4) for k, v in result.items() if isinstance(v, float) and k not in ("fraction", "chance", "majority")}
    shown.update({f"knn_{k}": round(v, 4) for k, v in result["knn"]["test"].items()}, knn_k=result["knn"]["k"])
    if "selection" in result:
        shown["selected"] = result["selection"]
    print(f"s3t: probe on test ({embeddings.method}): {json.dumps(shown)}")
    chance = (f"; chance {100 * report['chance']:.1f} %, majority class {report['majority_class']} "
              f"{100 * report['majority']:.1f} % of test" if "chance" in report else "")
    print(f"s3t: clips: train {report['n_train']}, valid {report['n_valid']}, test {report['n_test']}{chance}")


def _audio_inputs(items: Sequence[str], unreadable: list[tuple[str, str]]) -> list[str]:
    """Files as given, folders expanded to their audio files (recursively, sorted); sub-folders that cannot be
    listed are appended to ``unreadable``."""
    paths: list[str] = []
    for item in items:
        paths += [str(p) for p in find_audio_files(item, unreadable)] if Path(item).is_dir() else [item]
    return paths


def _predictions(probe: LinearProbe, scores: torch.Tensor, top: int, threshold: float | None) -> list[list[tuple[str, float]]]:
    """Per row of scores (N, C): the ``top`` best labels (single-label), or every tag scoring at
    least ``threshold`` (multi-label), best first, as (label, score)."""
    out = []
    for row in scores.tolist():
        ranked = sorted(zip(probe.labels, row), key=lambda pair: -pair[1])
        out.append([pair for pair in ranked if pair[1] >= threshold] if probe.multilabel else ranked[:top])
    return out


def cmd_predict(args: argparse.Namespace) -> None:
    if args.hop is not None and args.window is None:
        raise CLIError("--hop needs --window (the window length)")
    device = _device(args.device)
    encoder = load_encoder(args.checkpoint)
    probe = load_probe(args.probe, in_features=encoder.embedding_dim)
    threshold = args.threshold if args.threshold is not None else probe.threshold
    if probe.multilabel and threshold is None:
        threshold = 0.5
        print(f"s3t: {args.probe} stores no tag threshold (written before thresholds existed); using 0.5", file=sys.stderr)
    unreadable: list[tuple[str, str]] = []
    paths = _audio_inputs(args.files, unreadable)
    if not paths:
        raise CLIError(f"no audio files found in {', '.join(args.files)}")
    clips, kept, rejected = _featurize(paths, encoder.config.cqt, device, 0, "featurize")
    rejected = [Rejected(folder, reason) for folder, reason in unreadable] + rejected
    _report_rejected(rejected)
    if not clips:
        raise _none_readable(rejected)
    if args.window is None:  # one row per file (the mean of its windows when it is longer than a training clip)
        emb = embed_files(encoder, clips, _clip_seconds(args.checkpoint), device=device)
        rows = [(path, None, None) for path in kept]
    else:
        windows = embed_windows(encoder, clips, window_s=args.window, hop_s=args.hop, device=device)
        emb = windows.embeddings
        rows = [(kept[i], a, b) for i, a, b in zip(windows.clip, windows.start_s, windows.end_s)]
    with torch.no_grad():
        scores = probe.scores(emb)
    predictions = _predictions(probe, scores, args.top, threshold)
    novel = novelty(probe, emb)
    novel = [None] * len(rows) if novel is None else novel.tolist()
    if any(n is None for n in novel):
        print(f"s3t: {path_text(str(args.probe))} predates the novelty notice; retrain it to see how unlike its "
              f"training music each file is", file=sys.stderr)
    windowed = args.window is not None
    if args.format == "json":
        print(json.dumps({
            "checkpoint": str(args.checkpoint), "probe": str(args.probe),
            "task": "multi-label" if probe.multilabel else "single-label",
            "threshold": threshold if probe.multilabel else None,
            "predictions": [{"path": path_text(path), **({"start_s": round(a, 3), "end_s": round(b, 3)} if windowed else {}),
                             "labels": [{"label": label, "score": round(score, 6)} for label, score in ranked],
                             "novelty": None if n is None else round(n, 3)}
                            for (path, a, b), ranked, n in zip(rows, predictions, novel)],
            "rejected": [{"path": path_text(r.path), "reason": r.reason} for r in rejected],
        }, indent=2))
    elif args.format == "csv":
        writer = csv.writer(sys.stdout)
        writer.writerow(["path", *(["start_s", "end_s"] if windowed else []), "rank", "label", "score", "novelty"])
        for (path, a, b), ranked, n in zip(rows, predictions, novel):
            # A file with no tag above the threshold still gets a row, so every file read is listed.
            cells = [csv_cell(path_text(path)), *([f"{a:.3f}", f"{b:.3f}"] if windowed else [])]
            shown = "" if n is None else f"{n:.3f}"
            writer.writerows([[*cells, i + 1, csv_cell(label), f"{score:.6f}", shown] for i, (label, score) in enumerate(ranked)]
                             or [[*cells, "", "", "", shown]])
    else:
        for (path, a, b), ranked, n in zip(rows, predictions, novel):
            shown = ", ".join(f"{label} {score:.3f}" for label, score in ranked) or f"(no tag scores {threshold:.3f} or more)"
            notice = f"  [unlike the probe's training music: novelty {n:.1f}]" if n is not None and n > 1 else ""
            print(f"{path_text(path)}{f' [{a:.1f}-{b:.1f} s]' if windowed else ''}: {shown}{notice}")
    if rejected:
        sys.exit(1)


def _table_of(path: Path) -> Path | None:
    """The `s3t embed` table a path names: the table itself, or its index, descriptor or rejected list; None
    when it names none."""
    name = path.name
    for suffix, strip in ((".rejected.csv", len(".rejected.csv")), (".json", len(".json")), (".csv", 0)):
        if name.endswith(suffix):
            base = path.with_name(name[: -strip]) if strip else path.with_suffix(".npy")
            return base if base.suffix.lower() in (".npy", ".parquet") else None
    return path if path.suffix.lower() in (".npy", ".parquet") else None


def _table_card(out: Path) -> str:
    """A table's descriptor as Markdown (what `s3t info` prints for a table)."""
    table = read_table(out)
    s = table.settings
    window = "one row per file" if not s.get("window_s") else f"windows of {s['window_s']:g} s every {s['hop_s']:g} s"
    lines = [f"# {path_text(str(out))}", "", "An embedding table written by `s3t embed --audio`.", "",
             "| | |", "|---|---|",
             f"| rows | {len(table.paths)} ({table.embeddings.shape[1]}-d float32), {window} |",
             f"| files | {s.get('files', len(set(table.paths)))} embedded, {s.get('rejected', 0)} rejected "
             f"(listed in {companion(out, 'rejected').name}) |",
             f"| encoder | {'Random-Init (seed ' + str(s.get('seed')) + ') of ' if s.get('random_init') else ''}"
             f"{s.get('checkpoint')} (sha256 {str(s.get('checkpoint_sha256'))[:12]}...) |",
             f"| segments, pooling | {s.get('segments')}, {s.get('pooling')} |"]
    return "\n".join(lines) + "\n"


def cmd_info(args: argparse.Namespace) -> None:
    path = Path(args.file)
    table = _table_of(path)
    if table is not None and companion(table, "settings").is_file():
        print(_table_card(table), end="")
        return
    if table is not None and path.suffix.lower() in (".npy", ".parquet", ".csv", ".json"):
        raise CLIError(f"{path} is not an s3t embed table (no {companion(table, 'settings').name} beside it) nor a "
                       f"checkpoint; `s3t info` reads checkpoints, probes, embeddings files and s3t embed tables")
    print(model_card(load_checkpoint(args.file), name=args.file), end="")


def cmd_corpus(args: argparse.Namespace) -> None:
    from s3t.corpus import generate_corpus

    manifest = generate_corpus(args.out, args.clips_per_genre, seed=args.seed, seconds=args.seconds, workers=args.workers)
    print(f"s3t: wrote {manifest}")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="s3t", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--device", help="torch device (default: cuda when present, else cpu)")
        p.add_argument("--workers", type=_non_negative_int, default=0, help="decoding worker processes (0: in-process)")
        p.add_argument("--seed", type=int, default=0)

    p = sub.add_parser(
        "pretrain", help="self-supervised MoCo v2 pre-training on folders of unlabeled audio (paper settings by default)"
    )
    p.add_argument("--audio", action="append", required=True, help="folder of audio files, searched recursively (repeatable)")
    p.add_argument("--out", required=True, help="checkpoint path to write")
    p.add_argument("--recipe", metavar="SCALE",
                   help="the pipeline's model and schedule at a scale of conf/scale/ (cpu: make run's model; cpu_10x; "
                        "paper), composed from conf/ as dvc repro does; the options below override it")
    p.add_argument("--backbone", help="a registered backbone (default swin_t; swin_cpu for CPUs)")
    p.add_argument("--preprocessor", choices=("time_folding", "frequency_tiling"))
    p.add_argument("--time-compression", type=_positive_int)
    p.add_argument("--epochs", type=_positive_int)
    p.add_argument("--batch-size", type=_positive_int)
    p.add_argument("--K", type=_positive_int, help="queue size (keep it below the number of clips)")
    p.add_argument("--m", type=float, help="key-encoder momentum")
    p.add_argument("--lr", type=float)
    p.add_argument("--warmup-epochs", type=_non_negative_int,
                   help="linear warm-up epochs (default: 5 %% of --epochs, the paper's 20 of 400)")
    p.add_argument("--compile", action="store_true", help="torch.compile the encoders")
    p.add_argument("--resume", action="store_true", help="continue from --out if it exists")
    common(p)
    p.set_defaults(func=cmd_pretrain)

    def group_column(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--group-column",
            metavar="NAME",
            help="manifest column that groups clips (e.g. track, artist); the loader checks no group spans two splits",
        )
        p.add_argument("--tagging", action="store_true",
                       help="the manifest is a tagging task: labels joined with '|' are several tags of one clip "
                            "(without it a '|' in a label is refused)")

    def encode_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("--random-init", action="store_true", help="use a randomly initialised encoder (baseline)")
        p.add_argument("--segments", type=_segments, default=None,
                       help=f"segments per clip, mean-pooled, 1 to {MAX_SEGMENTS} (default: the checkpoint's setting)")
        common(p)

    p = sub.add_parser(
        "embed", help="embed any folder of audio (one vector per file or per window), or the clips of a manifest",
        description="With --audio: every audio file under DIR (recursively) -> OUT.npy + OUT.csv (path,start_s,end_s) "
        "or OUT.parquet, with OUT.json (settings) and OUT.rejected.csv (files that could not be read, and why). "
        "A re-run embeds only files not in OUT yet; an interrupted run resumes from OUT.parts/. "
        "With --manifest: a torch file of labeled embeddings for `s3t probe --embeddings`.",
    )
    p.add_argument("--checkpoint", required=True, help="pre-trained checkpoint (models/pretrained.pt)")
    p.add_argument("--audio", metavar="DIR", help="folder of audio files (wav, flac, ogg, mp3, m4a, ...), searched recursively")
    p.add_argument("--manifest", help="CSV with columns path,label,split (in any order; others ignored)")
    group_column(p)
    p.add_argument("--out", required=True,
                   help="with --audio: OUT.npy (NumPy + CSV index) or OUT.parquet; with --manifest: a .pt file")
    p.add_argument("--window", type=_seconds, metavar="S",
                   help="with --audio: one vector per window of S seconds instead of one per file")
    p.add_argument("--hop", type=_seconds, metavar="S",
                   help="with --window: seconds between window starts (default: S of --window; at most S unless --allow-gaps)")
    p.add_argument("--allow-gaps", action="store_true", help="accept a --hop longer than --window (audio between windows is skipped)")
    p.add_argument("--batch-size", type=_positive_int, default=32, help="clips or windows per forward pass")
    encode_args(p)
    p.set_defaults(func=cmd_embed)

    p = sub.add_parser("probe", help="train a linear probe on frozen embeddings and report test metrics")
    p.add_argument("--checkpoint")
    p.add_argument("--manifest", help="CSV with columns path,label,split (in any order; others ignored)")
    group_column(p)
    p.add_argument("--embeddings", help="embeddings written by `s3t embed` (instead of --checkpoint/--manifest)")
    p.add_argument("--out", required=True, help="metrics JSON to write")
    p.add_argument("--fraction", type=float, default=1.0, help="fraction of training labels (stratified)")
    p.add_argument("--save-probe", help="write the trained probe here (for `s3t predict`)")
    p.add_argument("--epochs", type=_positive_int, default=ProbeConfig.epochs)
    p.add_argument("--batch-size", type=_positive_int, default=ProbeConfig.batch_size)
    p.add_argument("--lr", type=float, default=ProbeConfig.lr, help="learning rate of the paper protocol")
    p.add_argument(
        "--baselines", action="store_true",
        help="with --checkpoint and --manifest: score S3T, Random-Init and the hand-crafted statistics by the same "
             "protocol and print one table, each score with its 95 %% interval (a bootstrap over --group-column's "
             "groups, or over clips) and the paired differences S3T minus each baseline",
    )
    p.add_argument("--cv", type=_positive_int, metavar="K",
                   help="with --baselines: cross-validate over every clip in K folds by group instead of the "
                        "manifest's train/valid/test splits")
    p.add_argument(
        "--protocol", choices=PROTOCOLS, default="logistic",
        help="logistic: L2 logistic regression fitted to convergence, the L2 strength chosen on the valid split "
             "(default); grid: the best (lr, weight decay) of a 3 x 3 grid of AdamW probes on valid; paper: --lr, wd 0.05",
    )
    encode_args(p)
    p.set_defaults(func=cmd_probe)

    p = sub.add_parser(
        "predict", help="labels of audio files and folders from a trained probe",
        description="Single-label probes: the --top labels of each file with their probabilities. Multi-label probes: "
        "every tag whose probability reaches the threshold stored in the probe (chosen on validation). Files that "
        "cannot be read are listed on stderr and make the exit status 1.",
    )
    p.add_argument("--checkpoint", required=True, help="pre-trained checkpoint the probe's embeddings came from (models/pretrained.pt)")
    p.add_argument("--probe", required=True, help="probe written by `s3t probe --save-probe` or the pipeline (models/probes/...)")
    p.add_argument("--top", type=_positive_int, default=3, help="single-label probes: how many labels to show per file (default 3)")
    p.add_argument("--threshold", type=float,
                   help="multi-label probes: show tags scoring at least this (default: the probe's validation threshold)")
    p.add_argument("--format", choices=("table", "csv", "json"), default="table",
                   help="table: one line per file; csv: path,rank,label,score rows; json: one document (default table)")
    p.add_argument("--window", type=_seconds, metavar="S",
                   help="labels per window of S seconds instead of per file (a file's labels: its windows' mean embedding)")
    p.add_argument("--hop", type=_seconds, metavar="S", help="with --window: seconds between window starts (default: S)")
    p.add_argument("files", nargs="+", metavar="FILE_OR_DIR", help="audio files, or folders searched recursively")
    p.add_argument("--device", help="torch device (default: cuda when present, else cpu)")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser(
        "info", help="what an s3t file is and holds (model card)",
        description="Kind, architecture and parameter count, CQT and pre-processor settings, pre-training data, "
        "epochs and final loss, probe metrics and label set, software versions; as Markdown on stdout.",
    )
    p.add_argument("file", help="an encoder checkpoint, probe or embeddings file written by s3t")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("corpus", help="generate the bundled multi-genre music corpus")
    p.add_argument("--out", required=True)
    p.add_argument("--clips-per-genre", type=_positive_int, default=40)
    p.add_argument("--seconds", type=float, default=30.0)
    p.add_argument("--workers", type=_positive_int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_corpus)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    # File names that are not UTF-8 reach Python as surrogate escapes; printed as \\xNN, not an encoding error.
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except (ValueError, OSError) as err:
        print(f"s3t: error: {path_text(str(err))}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        # Finished batches of `embed --audio` stay in OUT.parts/; nothing else is half-written (tables are published whole).
        print("s3t: interrupted; nothing was published. Run the same command again to go on (embed --audio resumes "
              "from OUT.parts/)", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()
