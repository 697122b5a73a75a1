#!/usr/bin/env bash
# One GPU check of S3T in at most 8 minutes: machine, CUDA tests, pre-training and featurization
# throughput, and a short results run (Swin-T pre-trained ~4 min, then probes).
#
#   bash bench/gpu_check.sh OUT_DIR              on the GPU machine (one H200, from the repo root)
#   bash bench/gpu_check.sh OUT_DIR --dry-run    the same steps on this CPU, tiny shapes (< 2 min)
#   bash bench/gpu_check.sh --fetch-wheels       here, before: the wheels the GPU machine lacks -> .whl/
#
# Before the device call, here (the GPU machine has no internet, no soundfile, and no feature store):
#
#   bash bench/gpu_check.sh --fetch-wheels       soundfile, cffi, pycparser for CPython 3.12
#                                                manylinux x86_64, pinned by constraints.txt (~1.6 MB)
#   python bench/gpu_pack.py                     data/features/soundtracks (+ unlabeled) -> .gpu/soundtracks.pt,
#                                                float16, time compressed by the smallest factor that fits
#                                                62 MB: 8x for the default 4 h pool (~40 MB), 16x after
#                                                `dvc exp run -S soundtracks.pool_hours=null` (the whole
#                                                pool, ~48 MB); /.gpu/ is in .git/info/exclude, .whl/ in .gitignore
#
# then on the device, with the carried paths `.whl` and `.gpu` (64 MiB in all):
#
#   bash bench/gpu_check.sh $OUT                 run tool: carry [".whl", ".gpu"], timeout_s 540
#
# What it writes into OUT_DIR (flat, 7 files):
#   machine.txt    wheel install, nvidia-smi, Python/torch/CUDA versions, GPU name and memory, CPU count
#   gpu_tests.txt  pytest -m gpu on the test files that hold gpu-marked tests (the marker is
#                  deselected by pyproject's addopts; -m gpu selects it); -ra lists the skips
#   pretrain.txt   bench/bench_pretrain.py, Swin-T 256x256 (time folding) on synthetic log-CQT:
#                  batch 128 without torch.compile plus the largest batch that fits (doubling to
#                  2048 until CUDA OOM), then batch 128 with torch.compile; samples/s and MFU
#   featurize.txt  bench/bench_featurize.py --device cuda: audio-seconds/s at 0, 4, 8, 14 workers
#   results.json   bench/gpu_results.py on .gpu/soundtracks.pt: top-1 valid/test and k-NN for
#   results.txt    S3T, Random-Init and hand-crafted; pre-training settings, samples seen, loss
#   steps.txt      every step: ok or FAILED (exit status, or the time limit it hit), seconds taken
#
# Time (8 minutes): every step runs under `timeout`. The steps before the results run are capped
# at 440 s together and typically take ~3.5 min (torch.compile most of it); the results run gets
# what is left of GPU_CHECK_BUDGET_S (default 470 s): ~45 s for start-up, embedding and probes,
# the rest as pre-training minutes (0.5 to 4; expect ~3.5). The run itself stops pre-training at
# 1.15x its minutes. So the whole check ends by ~8 min unless steps hit their caps (worst: ~9.5).
# A failed step is recorded in its file and steps.txt and the script goes on; the exit status
# is 1 when any step failed.
set -u -o pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
PY=${PYTHON:-python3}
WHEELS=(soundfile cffi pycparser)
# The wheels are for the GPU machine's interpreter, whatever runs pip here.
TARGET_312=(--only-binary=:all: --python-version 3.12 --implementation cp
            --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64)

usage() {
    echo "usage: bash bench/gpu_check.sh OUT_DIR [--dry-run] | --fetch-wheels" >&2
    exit 2
}

if [ "${1:-}" = "--fetch-wheels" ]; then
    [ $# -eq 1 ] || usage
    mkdir -p .whl
    for name in "${WHEELS[@]}"; do
        # Pinned to the version this project is tested with, where constraints.txt has one.
        spec=$(grep -i "^${name}==" constraints.txt || echo "$name")
        "$PY" -m pip download -q --no-deps "${TARGET_312[@]}" -d .whl "$spec" || exit 1
    done
    ls -l .whl
    exit 0
fi

[ $# -ge 1 ] && [ $# -le 2 ] || usage
DRY=0
if [ $# -eq 2 ]; then
    [ "$2" = "--dry-run" ] || usage
    DRY=1
fi
mkdir -p "$1" || exit 1
OUT=$(cd "$1" && pwd)
BUDGET_S=${GPU_CHECK_BUDGET_S:-470}
STATUS=$OUT/steps.txt
SCRATCH=$(mktemp -d)
trap 'rm -rf "$SCRATCH"' EXIT
: >"$STATUS"
failed=0
# Unbuffered, so a step killed by its time limit still leaves what it printed.
export PYTHONUNBUFFERED=1
export PYTHONPATH=$ROOT${PYTHONPATH:+:$PYTHONPATH}
if [ $DRY -eq 1 ]; then
    # The dry run checks the steps, not the speed: one thread each, since OpenMP threads spinning
    # against other processes on a shared CPU make the tiny probe and model ops up to 100x slower.
    export OMP_NUM_THREADS=1
fi

# step NAME FILE LIMIT_S CMD...: run CMD under a time limit, its output appended to OUT/FILE;
# record ok or FAILED (and why) in steps.txt and in FILE. Returns CMD's status.
step() {
    local name=$1 file=$OUT/$2 limit=$3 t0=$SECONDS rc why cmd
    shift 3
    cmd="$*"
    echo "== $name: ${cmd%%$'\n'*}" >>"$file"  # the first line: an inline script is not repeated
    timeout -k 10 "$limit" "$@" >>"$file" 2>&1
    rc=$?
    if [ $rc -eq 0 ]; then
        echo "ok      $name ($((SECONDS - t0)) s)" >>"$STATUS"
    else
        why="exit status $rc"
        if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then why="timed out after $limit s"; fi
        echo "FAILED  $name ($((SECONDS - t0)) s): $why" | tee -a "$file" >>"$STATUS"
        failed=1
    fi
    echo >>"$file"
    return $rc
}

# note NAME FILE TEXT: a step that is deliberately not run.
note() {
    echo "== $1: $3" >>"$OUT/$2"
    echo "skipped $1: $3" >>"$STATUS"
}

# 1. Carried wheels (soundfile for bench_featurize and the shard tests) and the machine.
if compgen -G ".whl/*.whl" >/dev/null; then
    if [ $DRY -eq 1 ]; then
        # This interpreter is not the device's 3.12: install for 3.12 into scratch, which checks
        # that the carried set is complete and installable, and keep using the local packages.
        step "wheels (for CPython 3.12, into scratch)" machine.txt 60 \
            "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
            "${TARGET_312[@]}" --target "$SCRATCH/site" .whl/*.whl
    elif step "wheels" machine.txt 30 "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
            --upgrade --target /tmp/site .whl/*.whl; then
        export PYTHONPATH=/tmp/site:$PYTHONPATH
    fi
else
    note "wheels" machine.txt "no .whl/ (bash bench/gpu_check.sh --fetch-wheels makes it)"
fi
if command -v nvidia-smi >/dev/null; then
    step "nvidia-smi" machine.txt 20 nvidia-smi
else
    note "nvidia-smi" machine.txt "not found (no NVIDIA driver on this machine)"
fi
step "versions" machine.txt 30 "$PY" -c '
import os, platform, sys
import numpy, scipy, timm, torch
print("python     ", sys.version.split()[0], platform.platform())
print("cpus       ", os.cpu_count(), "(os.cpu_count),", len(os.sched_getaffinity(0)), "usable,", torch.get_num_threads(), "torch threads")
print("torch      ", torch.__version__, "| CUDA", torch.version.cuda, "| cuDNN", torch.backends.cudnn.version())
print("packages    numpy", numpy.__version__, "| scipy", scipy.__version__, "| timm", timm.__version__)
for i in range(torch.cuda.device_count()):
    p = torch.cuda.get_device_properties(i)
    print(f"gpu {i}      ", p.name, f"| {p.total_memory / 2**30:.1f} GiB | capability {p.major}.{p.minor} | {p.multi_processor_count} SMs")
if not torch.cuda.is_available():
    print("gpu         none (torch.cuda.is_available() is False)")
try:
    import soundfile
    print("soundfile  ", soundfile.__version__, "libsndfile", soundfile.__libsndfile_version__, "from", os.path.dirname(soundfile.__file__))
except ImportError as err:
    print("soundfile   missing:", err)
'

# 2. The CUDA-marked tests, from the files that hold them: collecting every test file would
# import libraries the GPU machine lacks (a collection error stops the whole run).
mapfile -t GPU_TEST_FILES < <(grep -l "pytest.mark.gpu" tests/test_*.py)
if [ $DRY -eq 1 ]; then
    step "gpu tests (collected only: no CUDA here)" gpu_tests.txt 90 \
        "$PY" -m pytest -q -p no:cacheprovider -m gpu --collect-only "${GPU_TEST_FILES[@]}"
else
    step "gpu tests" gpu_tests.txt 60 "$PY" -m pytest -q -p no:cacheprovider -m gpu "${GPU_TEST_FILES[@]}"
fi

# 3. Pre-training throughput: Swin-T, 256 x 256 time folding, batch 128; then the largest batch.
if [ $DRY -eq 1 ]; then
    step "pretrain, no compile, then the largest batch" pretrain.txt 90 "$PY" bench/bench_pretrain.py \
        --recipe swin_t --batch-size 4 --clip-frames 400 --steps 1 --device cpu --max-batch 8
    note "pretrain, torch.compile" pretrain.txt "not in the dry run"
else
    step "pretrain, no compile, then the largest batch" pretrain.txt 90 "$PY" bench/bench_pretrain.py \
        --recipe swin_t --batch-size 128 --steps 10 --device cuda --max-batch 2048
    step "pretrain, torch.compile" pretrain.txt 150 "$PY" bench/bench_pretrain.py \
        --recipe swin_t --batch-size 128 --steps 10 --device cuda --compile
fi

# 4. Featurization with the CQT on the GPU (decoding needs the carried soundfile).
if [ $DRY -eq 1 ]; then
    step "featurize" featurize.txt 60 "$PY" bench/bench_featurize.py \
        --device cpu --clips 2 --seconds 2 --clips-per-shard 2 --workers 0
else
    step "featurize" featurize.txt 60 "$PY" bench/bench_featurize.py \
        --device cuda --clips 64 --seconds 30 --workers 0 4 8 14
fi

# 5. The results run, last: it gets what is left of the budget.
if [ $DRY -eq 1 ]; then
    PACK=$SCRATCH/synthetic.pt
    step "synthetic pack" results.txt 60 "$PY" bench/gpu_pack.py --synthetic 8 --out "$PACK"
    step "results" results.txt 120 "$PY" bench/gpu_results.py --pack "$PACK" --backbone swin_cpu \
        --batch-size 4 --minutes 0.05 --device cpu --out "$OUT/results.json"
elif [ -f .gpu/soundtracks.pt ]; then
    left=$((BUDGET_S - SECONDS))
    # ~45 s of the rest go to start-up, embedding and probes; pre-training gets the remainder (0.5..4 min).
    minutes=$(awk -v left="$left" 'BEGIN { m = (left - 45) / 60; if (m > 4) m = 4; if (m < 0.5) m = 0.5; printf "%.2f", m }')
    echo "== budget: ${left} s left of ${BUDGET_S} s; pre-training for ${minutes} min" >>"$OUT/results.txt"
    step "results" results.txt $((left > 120 ? left : 120)) "$PY" bench/gpu_results.py \
        --pack .gpu/soundtracks.pt --minutes "$minutes" --device cuda --out "$OUT/results.json"
else
    echo "FAILED  results: no .gpu/soundtracks.pt (python bench/gpu_pack.py makes it; carry .gpu)" \
        | tee -a "$OUT/results.txt" >>"$STATUS"
    failed=1
fi

echo "total   $SECONDS s" >>"$STATUS"
cat "$STATUS"
exit $failed
