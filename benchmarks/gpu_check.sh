#!/usr/bin/env bash
# GPU readiness check: the library, the speed benchmark and the workflow on a CUDA GPU, in one run
# of under 8 minutes on one H100-class GPU (see benchmarks/README.md, "GPU check").
#
#   bash benchmarks/gpu_check.sh [--device cuda] [--reference-repo DIR]   # on a GPU machine
#   bash benchmarks/gpu_check.sh --dry                                     # CPU, tiny sizes (CI)
#
# Steps:
#   1. tests   the tests marked `gpu` (tests/gru4rec/test_gpu.py; without CUDA they are skipped)
#   2. speed   benchmarks/train_speed.py on the device, RSC15 and RetailRocket presets, beside the
#              official port when a checkout of it is given (--reference-repo DIR or GRU4REC_PORT=DIR)
#   3. workflow the tiny workflow config (.test/config/config.yaml) in a temporary directory with
#              final.device and tuning.device set to the device; checks metrics.json's device
# Ends with one summary line (each step's status and time); exits non-zero when a step failed.
#
# Options:
#   --dry                 tiny sizes (seconds per step) on --device cpu unless a device is given
#   --device DEV          cuda (default), cuda:N or cpu
#   --reference-repo DIR  checkout of hidasib/GRU4Rec_PyTorch_Official (default: $GRU4REC_PORT)
#   --only STEPS          comma-separated subset of tests,speed,workflow (default: all three)
#   --keep                keep the workflow's temporary directory (it is kept anyway when it fails)
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"

usage() { sed -n '2,21p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

DRY=0
DEVICE=""
PORT="${GRU4REC_PORT:-}"
ONLY="tests,speed,workflow"
KEEP=0
while [[ $# -gt 0 ]]; do
    case "$1" in
        --dry) DRY=1 ;;
        --device) DEVICE="${2:?--device needs a value}"; shift ;;
        --device=*) DEVICE="${1#*=}" ;;
        --reference-repo) PORT="${2:?--reference-repo needs a directory}"; shift ;;
        --reference-repo=*) PORT="${1#*=}" ;;
        --only) ONLY="${2:?--only needs a list}"; shift ;;
        --only=*) ONLY="${1#*=}" ;;
        --keep) KEEP=1 ;;
        -h | --help) usage; exit 0 ;;
        *) echo "gpu_check: unknown option '$1'" >&2; usage >&2; exit 2 ;;
    esac
    shift
done
if [[ -z "$DEVICE" ]]; then
    if [[ $DRY == 1 ]]; then DEVICE=cpu; else DEVICE=cuda; fi
fi
if [[ ! "$DEVICE" =~ ^(cpu|cuda|cuda:[0-9]+)$ ]]; then
    echo "gpu_check: --device must be cpu, cuda or cuda:N, got '$DEVICE'" >&2
    exit 2
fi
for step in ${ONLY//,/ }; do
    if [[ ! "$step" =~ ^(tests|speed|workflow)$ ]]; then
        echo "gpu_check: --only takes tests, speed and workflow, got '$step'" >&2
        exit 2
    fi
done
wants() { [[ ",$ONLY," == *",$1,"* ]]; }

if [[ -x "$REPO/.venv/bin/python" ]]; then
    PY="$REPO/.venv/bin/python"
    export PATH="$REPO/.venv/bin:$PATH" # snakemake's jobs run the same environment
else
    PY="$(command -v python3)"
fi

if [[ -n "$PORT" ]]; then
    if [[ ! -f "$PORT/gru4rec_pytorch.py" || ! -f "$PORT/evaluation.py" ]]; then
        echo "gpu_check: '$PORT' is not a checkout of hidasib/GRU4Rec_PyTorch_Official" \
            "(no gru4rec_pytorch.py and evaluation.py there)" >&2
        exit 2
    fi
    PORT="$(cd "$PORT" && pwd)"
fi

if [[ $DRY == 1 ]]; then MODE=dry; else MODE=full; fi
echo "gpu_check: device $DEVICE, mode $MODE, python $PY"
if [[ "$DEVICE" == cuda* ]]; then
    # a GPU run that silently skipped the GPU would prove nothing: no CUDA is an error here
    if ! "$PY" -c "
import sys, torch
if not torch.cuda.is_available():
    sys.exit(f'torch {torch.__version__} sees no CUDA device')
d = torch.device('$DEVICE')
i = d.index or 0
if i >= torch.cuda.device_count():
    sys.exit(f'$DEVICE: only {torch.cuda.device_count()} CUDA device(s)')
print(f'gpu_check: torch {torch.__version__}, CUDA {torch.version.cuda}, {torch.cuda.get_device_name(i)}')
"; then
        echo "gpu_check: --device $DEVICE needs a CUDA GPU that torch can use (use --dry for the CPU)" >&2
        exit 2
    fi
fi

now() { date +%s.%N; }
SUMMARY=()
FAILED=0
T_START="$(now)"

# run_step NAME FUNCTION: runs FUNCTION under `set -e` in a subshell, records its status and time
run_step() {
    local name="$1" fn="$2" t0 rc seconds
    echo
    echo "=== gpu_check: step '$name' ==="
    t0="$(now)"
    set +e
    (
        set -e
        "$fn"
    )
    rc=$?
    set -e
    seconds="$(awk -v a="$t0" -v b="$(now)" 'BEGIN { printf "%.0f", b - a }')"
    if [[ $rc == 0 ]]; then
        SUMMARY+=("$name: ok (${seconds}s${NOTE:+, $NOTE})")
    else
        SUMMARY+=("$name: FAILED (${seconds}s, exit $rc)")
        FAILED=1
    fi
    echo "=== gpu_check: step '$name' $([[ $rc == 0 ]] && echo ok || echo FAILED) in ${seconds}s ==="
}

# 1. the tests marked gpu -----------------------------------------------------------------------
step_tests() {
    local out
    out="$(mktemp)"
    "$PY" -m pytest -q -p no:cacheprovider -m gpu tests/gru4rec/test_gpu.py 2>&1 | tee "$out"
    if [[ "$DEVICE" == cuda* ]] && grep -q " skipped" "$out"; then
        echo "gpu_check: tests were skipped on a CUDA run (see the reasons above)" >&2
        rm -f "$out"
        return 1
    fi
    rm -f "$out"
}

# 2. training and evaluation speed, ours beside the official port --------------------------------
step_speed() {
    local args=(--device "$DEVICE" --preset rsc15 --preset retailrocket)
    if [[ $DRY == 1 && -n "$PORT" ]]; then
        # the port's evaluation needs at least 512 test sessions (its batch size): 10% of ~5,600
        args+=(--events 28000 --items 500 --epochs 1 --repeats 1 --threads 1)
    elif [[ $DRY == 1 ]]; then
        args+=(--events 1000 --items 100 --epochs 1 --repeats 1 --threads 1)
    else
        args+=(--epochs 2 --repeats 2) # 70,000 generated events (the default), 2 x 2 epochs per library
    fi
    if [[ -n "$PORT" ]]; then
        args+=(--reference-repo "$PORT")
    else
        echo "gpu_check: official port comparison SKIPPED: no checkout of hidasib/GRU4Rec_PyTorch_Official given;" \
            "copy one onto this machine and pass --reference-repo DIR (or set GRU4REC_PORT=DIR)"
    fi
    "$PY" benchmarks/train_speed.py "${args[@]}"
}

# 3. the tiny workflow config with the final runs and the studies on the device -----------------
step_workflow() {
    local work log target cores
    work="$(mktemp -d "${TMPDIR:-/tmp}/gru4rec-gpu-check.XXXXXX")"
    log="$work/snakemake.log"
    cores="$(nproc 2>/dev/null || echo 2)"
    if [[ $DRY == 1 ]]; then
        target=results/synthetic/final/cross-entropy-shared/metrics.json # one study and its final run
    else
        target=all # every study, final run, baseline, table and plot (tiny models share the GPU)
    fi
    echo "gpu_check: snakemake $target in $work (log: $log)"
    if ! "$PY" -m snakemake -s "$REPO/workflow/Snakefile" --directory "$work" \
        --configfile "$REPO/.test/config/config.yaml" \
        --config "final={device: $DEVICE}" "tuning={device: $DEVICE}" \
        --cores "$cores" "$target" >"$log" 2>&1; then
        tail -n 60 "$log"
        echo "gpu_check: the workflow failed; its directory is kept: $work" >&2
        return 1
    fi
    tail -n 3 "$log"
    if ! "$PY" - "$work/results" "$DEVICE" <<'EOF'; then
import json, sys
from pathlib import Path

results, asked = Path(sys.argv[1]), sys.argv[2]
files = [p for p in sorted(results.glob("*/final/*/metrics.json")) if json.loads(p.read_text())["model"] == "gru4rec"]
if not files:
    sys.exit(f"no GRU4Rec metrics.json under {results}")
for p in files:
    device = json.loads(p.read_text())["device"]
    print(f"gpu_check: {p.relative_to(results)}: device {device}")
    if device not in (asked, f"{asked}:0"):
        sys.exit(f"{p}: trained on {device}, but {asked} was asked for")
EOF
        echo "gpu_check: the workflow's directory is kept: $work" >&2
        return 1
    fi
    if [[ $KEEP == 1 ]]; then
        echo "gpu_check: the workflow's directory is kept: $work"
    else
        rm -rf "$work"
    fi
}

if wants tests; then
    NOTE="" run_step tests step_tests
fi
if wants speed; then
    NOTE="official port: $([[ -n "$PORT" ]] && echo compared || echo skipped)" run_step speed step_speed
fi
if wants workflow; then
    NOTE="" run_step workflow step_workflow
fi

TOTAL="$(awk -v a="$T_START" -v b="$(now)" 'BEGIN { printf "%.0f", b - a }')"
LINE="gpu_check summary: device $DEVICE, mode $MODE"
for s in "${SUMMARY[@]}"; do LINE+=" | $s"; done
LINE+=" | total ${TOTAL}s: $([[ $FAILED == 0 ]] && echo PASSED || echo FAILED)"
echo
echo "$LINE"
exit "$FAILED"
