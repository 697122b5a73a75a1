"""Fuzz: seeded corruptions of valid WAV/FLAC/OGG/MP3 files through the featurizer.

Bit flips, truncations and edits of header fields (sample rate, channels, frame count) of
real files. The featurizer runs in a child process whose address space is capped with
``resource.setrlimit(RLIMIT_AS)`` at what it has mapped after start-up plus
:data:`HEADROOM_BYTES`, so a decoder believing a hostile header (hours of audio, 1 Hz, ...)
fails loudly instead of quietly using the machine's memory. Every file must come out either
featurized or rejected with a reason, with no traceback, no crash and no ``MemoryError``.
"""

from __future__ import annotations

import json
import struct
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

sf = pytest.importorskip("soundfile")

SEED = 11
CORRUPTIONS = 240  # 60 per format
HEADROOM_BYTES = 1 << 30
SR = 22050

# The child: imports and builds the CQT first, then caps its address space, then featurizes.
CHILD = textwrap.dedent(
    """
    import json, resource, sys
    from s3t.cqt import CQT, CQTConfig
    from s3t.features import featurize_files

    paths = json.load(open(sys.argv[1]))
    cqt = CQT.from_config(CQTConfig(n_bins=48, hop_length=512))
    with open("/proc/self/status") as fh:
        mapped = next(int(line.split()[1]) * 1024 for line in fh if line.startswith("VmSize:"))
    limit = mapped + int(sys.argv[2])
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    features, kept, rejected = featurize_files(paths, cqt, batch_size=8)
    shapes = [list(f.shape) for f in features]
    json.dump({"kept": kept, "shapes": shapes, "rejected": [[r.path, r.reason] for r in rejected]}, sys.stdout)
    """
)


def _valid_files(root) -> dict[str, bytes]:
    """Half a second of a chord with noise, stereo for WAV (so channel edits matter), in four formats."""
    rng = np.random.default_rng(SEED)
    t = np.arange(SR // 2) / SR
    y = (0.2 * np.sin(2 * np.pi * 220 * t) + 0.1 * np.sin(2 * np.pi * 330 * t) + 0.01 * rng.standard_normal(t.size))
    y = y.astype(np.float32)
    out = {}
    for name, data, kwargs in [
        ("base.wav", np.stack([y, y[::-1]], axis=1), {"subtype": "PCM_16"}),
        ("base.flac", y, {}),
        ("base.ogg", y, {"subtype": "VORBIS"}),
        ("base.mp3", y, {"format": "MP3"}),
    ]:
        sf.write(root / name, data, SR, **kwargs)
        out[name[-4:].lstrip(".")] = (root / name).read_bytes()
    return out


def _edit_wav_header(data: bytearray, rng: np.random.Generator) -> None:
    # Canonical 44-byte header as libsndfile writes it: channels @22, rate @24, data size @40.
    field = rng.integers(3)
    value = int(rng.choice([0, 1, 2, 3, 255, 65535, int(rng.integers(1, 1 << 31))]))
    if field == 0:
        data[22:24] = struct.pack("<H", value & 0xFFFF)
    elif field == 1:
        data[24:28] = struct.pack("<I", value)
    else:
        data[40:44] = struct.pack("<I", value)


def _edit_flac_header(data: bytearray, rng: np.random.Generator) -> None:
    # STREAMINFO bits 80..143 of its body (body at byte 8): rate (20), channels-1 (3), bps-1 (5), total (36).
    streaminfo = int.from_bytes(data[18:26], "big")
    field = rng.integers(3)
    if field == 0:
        streaminfo = (streaminfo & ~(0xFFFFF << 44)) | (int(rng.choice([0, 1, 7, 655350, 1048575])) << 44)
    elif field == 1:
        streaminfo = (streaminfo & ~(0b111 << 41)) | (int(rng.integers(8)) << 41)
    else:
        streaminfo = (streaminfo & ~((1 << 36) - 1)) | int(rng.choice([0, 1, 100, 1 << 30, (1 << 36) - 1]))
    data[18:26] = streaminfo.to_bytes(8, "big")


def _edit_header_bytes(data: bytearray, rng: np.random.Generator) -> None:
    # OGG (identification header: channels @39, rate @40..43 in the first page) and MP3 (frame
    # header and Xing/Info frame count in the first bytes): overwrite a few of the first 64 bytes.
    for _ in range(int(rng.integers(1, 4))):
        data[int(rng.integers(min(64, len(data))))] = int(rng.integers(256))


def _corrupt(base: bytes, fmt: str, rng: np.random.Generator) -> tuple[str, bytes]:
    data = bytearray(base)
    kind = ("flip", "cut", "header")[int(rng.integers(3))]
    if kind == "flip":
        for _ in range(int(rng.integers(1, 33))):
            bit = int(rng.integers(len(data) * 8))
            data[bit // 8] ^= 1 << (bit % 8)
    elif kind == "cut":
        data = data[: int(rng.integers(1, len(data)))]
    elif fmt == "wav":
        _edit_wav_header(data, rng)
    elif fmt == "flac":
        _edit_flac_header(data, rng)
    else:
        _edit_header_bytes(data, rng)
    return kind, bytes(data)


def test_corrupted_files_are_featurized_or_rejected_with_a_reason_in_bounded_memory(tmp_path):
    bases = _valid_files(tmp_path)
    rng = np.random.default_rng(SEED)
    paths, kinds = [], {}
    for i in range(CORRUPTIONS):
        fmt = ("wav", "flac", "ogg", "mp3")[i % 4]
        kind, data = _corrupt(bases[fmt], fmt, rng)
        path = tmp_path / f"fuzz{i:03d}_{kind}.{fmt}"
        path.write_bytes(data)
        paths.append(str(path))
        kinds[str(path)] = kind
    (tmp_path / "paths.json").write_text(json.dumps(paths))

    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(tmp_path / "paths.json"), str(HEADROOM_BYTES)],
        capture_output=True, text=True, timeout=300,
    )
    seconds = time.perf_counter() - start
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr[-3000:]
    result = json.loads(done.stdout)
    kept, rejected = result["kept"], dict(result["rejected"])

    assert set(kept).isdisjoint(rejected) and sorted(kept + list(rejected)) == sorted(paths)
    assert all(reason.strip() for reason in rejected.values())
    # A reason naming a decoder exception would mean a case load_audio does not understand;
    # MemoryError would mean the cap, not the decoder, stopped a blow-up.
    unexplained = {p: r for p, r in rejected.items() if "decoder error" in r or "MemoryError" in r}
    assert not unexplained
    assert all(shape[0] == 48 and shape[1] >= 1 for shape in result["shapes"])
    # Both outcomes occur: the corruptions are neither all harmless nor all fatal.
    cut = [p for p in paths if kinds[p] == "cut"]
    assert len(kept) >= 20 and len(rejected) >= 20
    assert sum(p in rejected for p in cut) >= len(cut) // 2
    print(f"fuzz: {len(paths)} corrupted files, {len(kept)} featurized, {len(rejected)} rejected, {seconds:.1f} s")
