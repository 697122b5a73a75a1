"""Checkpoints: written atomically, read without unpickling arbitrary objects, typed by kind.

A checkpoint is a plain dict of tensors, numbers, strings, lists and dicts saved with
``torch.save`` and read back with ``torch.load(weights_only=True)``, which refuses any
other object type. Every checkpoint carries the format tag :data:`FORMAT`, a
:data:`FORMAT_VERSION` and a ``kind`` saying what it holds:

========================= =========================================================
:data:`KIND_ENCODER`      a pre-trained model (``s3t pretrain``; keys ``encoder``, ``config``)
:data:`KIND_PROBE`        a linear probe (``s3t probe --save-probe``; key ``probe``)
:data:`KIND_EMBEDDINGS`   embeddings of labeled clips (``s3t embed``; key ``embeddings``)
========================= =========================================================

What is refused (:class:`CheckpointError`, one line naming the file):

* a missing file, a folder, a file that is not a torch archive or is truncated;
* a file holding Python objects other than tensors and plain data (a pickle payload):
  unpickling them could run arbitrary code, so it is never attempted, whatever the source;
* a file without the format tag (not written by s3t), or of a newer format version;
* with ``load_checkpoint(path, kind=...)``, a checkpoint of another kind (a probe given where
  a model is expected, ...): the message names the kind found and the kind expected;
* replacing, in :func:`save_checkpoint`, an existing file that is not a checkpoint of the
  same kind, so that writing embeddings over a model (or over a manifest, or audio) never
  destroys it. Replacing a checkpoint of the same kind is the normal re-run.

Files written before kinds and versions existed (format tag only) still load: their kind is
inferred from their keys and their version is 1.

Writing goes to a temporary file ``<name>.<writer pid>.<random>.tmp`` in the same folder,
is flushed to disk, then renamed over the target, so an interrupted write never leaves a
truncated checkpoint where a reader would accept it. The temporary file is created with
mode 0666 minus the umask (0644 under the usual umask 022), like any file the user writes,
so a model can be shared. A write killed part-way (kill -9, power loss) leaves its
temporary file behind; the next write of the same target removes those of its temporary
files whose writer process no longer exists on this machine, or that have not been touched
for :data:`STALE_TMP_SECONDS` (a writer on another machine, or a reused pid). Only names of
exactly that pattern for that target are ever removed.
"""

from __future__ import annotations

import os
import pickle
import re
import secrets
import time
import zipfile
from pathlib import Path
from typing import Any

import torch

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "KIND_EMBEDDINGS",
    "KIND_ENCODER",
    "KIND_PROBE",
    "KINDS",
    "STALE_TMP_SECONDS",
    "CheckpointError",
    "check_replaceable",
    "checkpoint_kind",
    "load_checkpoint",
    "save_checkpoint",
]

FORMAT = "s3t-checkpoint-v1"
"""Tag that marks a file as an s3t checkpoint (unchanged since the first release)."""

FORMAT_VERSION = 2
"""Version of the layout: 1 (format tag only) or 2 (``format_version`` and ``kind`` added)."""

KIND_ENCODER = "s3t-encoder"
KIND_PROBE = "s3t-probe"
KIND_EMBEDDINGS = "s3t-embeddings"
KINDS = (KIND_ENCODER, KIND_PROBE, KIND_EMBEDDINGS)

_DESCRIPTION = {
    KIND_ENCODER: "a pre-trained model, as written by `s3t pretrain`",
    KIND_PROBE: "a linear probe, as written by `s3t probe --save-probe`",
    KIND_EMBEDDINGS: "embeddings, as written by `s3t embed`",
    None: "a checkpoint of no known kind",
}
# Keys each kind needs; also how the kind of a version-1 file is recognised.
_REQUIRED_KEYS = {KIND_ENCODER: ("encoder", "config"), KIND_PROBE: ("probe",), KIND_EMBEDDINGS: ("embeddings",)}

STALE_TMP_SECONDS = 3600.0
"""A target's temporary file untouched this long is removed by the next write even when its
writer pid is alive (the pid may belong to another machine or have been reused)."""


class CheckpointError(ValueError):
    """A file that is not an S3T checkpoint, of the wrong kind, or written by an incompatible version."""


def _kind_from_keys(state: dict[str, Any]) -> str | None:
    found = [kind for kind, keys in _REQUIRED_KEYS.items() if all(k in state for k in keys)]
    return found[0] if len(found) == 1 else None


def checkpoint_kind(state: dict[str, Any]) -> str | None:
    """The kind of a loaded checkpoint: its ``kind`` entry, or for a version-1 file the kind
    its keys identify; None when neither says."""
    return state.get("kind") or _kind_from_keys(state)


def _tmp_pattern(target: Path) -> re.Pattern[str]:
    # <name>.<pid>.<hex>.tmp as written here; <name>.<8 chars>.tmp as mkstemp wrote before pids were added.
    return re.compile(re.escape(target.name) + r"\.(?:(\d+)\.[0-9a-f]{16}|[a-z0-9_]{8})\.tmp")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's live process
    return True


def _remove_stale_tmp(target: Path) -> None:
    """Remove temporary files left by killed writes of ``target`` (see the module docstring)."""
    pattern, now = _tmp_pattern(target), time.time()
    for candidate in target.parent.iterdir():
        match = pattern.fullmatch(candidate.name)
        if match is None or candidate.is_symlink() or not candidate.is_file():
            continue
        pid = int(match.group(1)) if match.group(1) else None
        try:
            age = now - candidate.stat().st_mtime
        except FileNotFoundError:
            continue  # its writer just renamed or removed it
        if pid == os.getpid():
            continue
        if (pid is not None and not _pid_alive(pid)) or age > STALE_TMP_SECONDS:
            candidate.unlink(missing_ok=True)


def check_replaceable(path: str | os.PathLike, kind: str | None) -> None:
    """Refuse (:class:`CheckpointError`) to replace anything at ``path`` but a checkpoint of the
    same ``kind``; what :func:`save_checkpoint` checks first, for callers that want to fail
    before hours of work rather than at the end."""
    path = Path(path)
    if not path.exists():
        return  # nothing there, or a dangling link: replacing the link itself loses nothing
    if path.is_dir():
        raise CheckpointError(f"{path} is a folder; give a file path to write the checkpoint to")
    try:
        # Memory-mapped: the tensors of the file about to be replaced are never read.
        existing = _load(path, "cpu", mmap=True)
    except CheckpointError as err:
        raise CheckpointError(
            f"refusing to replace {path}: it is not an S3T checkpoint ({err}); choose another path or delete it"
        ) from None
    found = checkpoint_kind(existing)
    if found != kind:
        raise CheckpointError(
            f"refusing to replace {path}: it holds {_DESCRIPTION[found]} ({found}), not {_DESCRIPTION[kind]} "
            f"({kind}); choose another path or delete it"
        )


def save_checkpoint(state: dict[str, Any], path: str | os.PathLike, *, kind: str | None = None) -> None:
    """Atomically write ``state`` (plus format tag, version and kind) to ``path``.

    Args:
        state: plain data and tensors; the keys ``format``, ``format_version`` and ``kind`` are set here.
        path: the file; its folder is created.
        kind: one of :data:`KINDS`; None infers it from the keys (``encoder`` + ``config``,
            ``probe``, ``embeddings``), and a state matching none is stored with no kind.

    Raises:
        CheckpointError: ``path`` holds something other than a checkpoint of the same kind.
        ValueError: ``kind`` is not one of :data:`KINDS`, or ``state`` lacks the keys it needs.
    """
    if kind is None:
        kind = _kind_from_keys(state)
    elif kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    else:
        missing = [k for k in _REQUIRED_KEYS[kind] if k not in state]
        if missing:
            raise ValueError(f"a {kind} checkpoint needs the key(s) {', '.join(missing)}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    check_replaceable(path, kind)
    _remove_stale_tmp(path)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.{secrets.token_hex(8)}.tmp")
    try:
        # O_EXCL: never write through a name someone else created; 0o666 minus the umask, like any user file.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        with os.fdopen(fd, "wb") as fh:
            torch.save({**state, "format": FORMAT, "format_version": FORMAT_VERSION, "kind": kind}, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _first_line(err: BaseException) -> str:
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return lines[0] if lines else type(err).__name__


def load_checkpoint(
    path: str | os.PathLike, map_location: str | torch.device = "cpu", *, kind: str | None = None
) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint` (``weights_only=True``).

    Args:
        path: the file.
        map_location: where tensors go (``torch.load``'s argument).
        kind: one of :data:`KINDS` to require that kind; None accepts any.

    Returns:
        The stored dict, with ``format_version`` (1 for files written before versions) and
        ``kind`` (inferred from the keys for such files) filled in.

    Raises:
        CheckpointError: see the module docstring; one line naming the file.
    """
    if kind is not None and kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    state = _load(Path(path), map_location, mmap=False)
    found = state["kind"]
    if kind is not None:
        if found != kind:
            raise CheckpointError(
                f"{path} holds {_DESCRIPTION[found]} ({found}), but {_DESCRIPTION[kind]} ({kind}) is expected here"
            )
        missing = [k for k in _REQUIRED_KEYS[kind] if k not in state]
        if missing:
            raise CheckpointError(f"{path} is a {kind} checkpoint without its key(s) {', '.join(missing)}: damaged")
    return state


def _load(path: Path, map_location: str | torch.device, *, mmap: bool) -> dict[str, Any]:
    """The checks of :func:`load_checkpoint` but the kind; ``format_version`` and ``kind`` filled in."""
    try:
        path.stat()
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint {path} does not exist") from None
    except OSError as err:
        raise CheckpointError(f"checkpoint {path} cannot be read ({err.strerror})") from None
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} is not a regular file")
    with path.open("rb") as fh:
        magic = fh.read(4)
    if magic != b"PK\x03\x04":
        # Every file torch.save writes is a ZIP archive; anything else would only reach torch.load
        # to come back with advice (weights_only=False) that must never be followed for a stranger's file.
        raise CheckpointError(f"{path} is not an s3t checkpoint, probe or embeddings file ({_what_it_is(path, magic)})")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as err:
        # torch's message names a GLOBAL when the pickle asks for an object to be built (a payload);
        # other unpickling failures (random bytes, say) mention weights_only too and are plain damage.
        if "GLOBAL" in str(err) or "Unsupported global" in str(err):
            raise CheckpointError(
                f"{path} holds Python objects besides tensors and plain data (a pickle payload); s3t never "
                f"loads such files, since unpickling them can run arbitrary code"
            ) from None
        raise CheckpointError(f"{path} is not a readable checkpoint (its archive holds no plain tensor data)") from None
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile, ValueError, UnicodeDecodeError) as err:
        # What torch raises for a file that is not a torch archive, or one cut short.
        raise CheckpointError(f"{path} is not a readable checkpoint, or is truncated ({_first_line(err)})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not an S3T checkpoint (no format tag {FORMAT!r})")
    version = state.setdefault("format_version", 1)
    if not isinstance(version, int) or not 1 <= version <= FORMAT_VERSION:
        raise CheckpointError(
            f"{path} has format version {version!r}; this s3t reads versions 1 to {FORMAT_VERSION}: upgrade s3t"
        )
    state["kind"] = checkpoint_kind(state)
    bad = _non_finite(state)
    if bad:
        raise CheckpointError(f"{path}: tensor {bad} holds NaN or infinite values; the file is damaged or its "
                              f"training diverged; use another checkpoint")
    return state


def _non_finite(value: Any, name: str = "") -> str | None:
    """The key path of the first floating tensor in ``value`` (nested dicts/lists) with a NaN or an
    infinity, or None."""
    if isinstance(value, torch.Tensor):
        return name or "(top level)" if value.is_floating_point() and not bool(torch.isfinite(value).all()) else None
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, (list, tuple)) else ()
    for key, item in items:
        found = _non_finite(item, f"{name}.{key}" if name else str(key))
        if found:
            return found
    return None


def _what_it_is(path: Path, magic: bytes) -> str:
    """A few words on what a file that is not a torch archive is, from its name and first bytes."""
    if magic.startswith(b"\x93NUM"):
        return "a NumPy array; for an `s3t embed` table run `s3t info` on it with its .json beside it"
    if magic == b"PAR1":
        return "a Parquet file"
    if not magic:
        return "zero bytes"
    return f"not a torch archive: it starts with {magic!r}"
