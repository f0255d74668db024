#!/usr/bin/env bash
# Issue 6's GPU measurements in one call (one H100/H200, ~9 minutes): each section is one `t2iscale bench` run with
# its own time limit, in order of importance, so a slow section costs only itself. Tables go to stdout; the JSON
# of every section is appended to $OUT/results.tar (or ./gpu-results/ when OUT is unset).
#
#   scripts/gpu_bench.sh            # with t2iscale importable (pip install -e . or PYTHONPATH=src)
#   MODELS="sdxl-c8-td1_1" COMPILED=sdxl-c8-td1_1 EXTRA="--resolutions 32 --text-dim 32 --text-len 8 --batch-sizes 4" \
#       scripts/gpu_bench.sh        # a CPU dry run of the script itself
set -u
export PYTHONUNBUFFERED=1
# Training sections: fewer fragmentation OOMs near the card's limit (sdxl at batch 64 trains in ~70 GiB), for stock
# and toolkit alike. Sampling sections keep the default allocator, which CUDA-graph capture is known to work with.
TRAIN_ALLOC=expandable_segments:True
OUT=${OUT:-gpu-results}
mkdir -p "$OUT" /tmp/gpu-bench
cd "$(dirname "$0")/.."

MODELS=${MODELS:-sdxl-td4_4 sdxl}  # ratios are to the first
COMPILED=${COMPILED:-sdxl}  # the model whose compiled training step is timed
EXTRA=${EXTRA:-}

nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.max.sm --format=csv || true
python3 -c "import torch, diffusers; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'diffusers', diffusers.__version__)"

section() {  # section NAME SECONDS ARGS...: one bench run, its table printed, its JSON kept
    local name=$1 limit=$2
    shift 2
    local start=$SECONDS
    echo
    echo "=== $name (limit ${limit}s): t2iscale bench $*"
    PYTORCH_CUDA_ALLOC_CONF=${ALLOC:-} timeout --signal=INT --kill-after=10 "$limit" python3 -m t2iscale.cli bench --no-progress "$@" \
        $EXTRA --out "/tmp/gpu-bench/$name.json" 2>&1 | grep -v "^results:"
    echo "=== $name: rc ${PIPESTATUS[0]}, $((SECONDS - start)) s"
    [ -f "/tmp/gpu-bench/$name.json" ] && tar -rf "$OUT/results.tar" -C /tmp/gpu-bench "$name.json"
}

if [ "${CHECK:-1}" = 1 ]; then
    echo "=== check: CUDA-graph sampling against eager"
    timeout 50 python3 scripts/gpu_check.py $MODELS
    echo "=== check: rc $?"
fi

# Training step, batch 64, paper setting: the stock diffusers loop next to the toolkit's eager train_step (recipe
# defaults otherwise: bf16 autocast, fused AdamW, clipping, EMA 0.9999).
ALLOC=$TRAIN_ALLOC section train-stock 130 $MODELS --measure train --baseline stock --batch-sizes 64 --steps 8 --warmup 2 --compile off
# Sampling, DDIM 50 steps + CFG 7.5, batch 1: launch-bound; the toolkit replays CUDA graphs.
section sample-b1 80 $MODELS --sampling --batch-sizes 1 --steps 3 --warmup 1
# The training default on CUDA (compile auto = regional): time to the first step, and the steady step.
ALLOC=$TRAIN_ALLOC section train-regional 140 $COMPILED --measure train --batch-sizes 64 --steps 8 --warmup 2
# Sampling at batch 64 (10 DDIM steps per call keeps the section short; the per-step cost is what compares).
section sample-b64 70 $MODELS --sampling --batch-sizes 64 --sampling-steps 10 --steps 2 --warmup 1
# Channels-last for the UNets' convolutions (toolkit only, eager).
ALLOC=$TRAIN_ALLOC section train-channels-last 60 $MODELS --measure train --batch-sizes 64 --steps 8 --warmup 2 --compile off --channels-last
if [ "${PROFILE:-1}" = 1 ]; then
    echo
    echo "=== profile: the toolkit's training step, top operators by GPU time"
    PYTORCH_CUDA_ALLOC_CONF=$TRAIN_ALLOC timeout 35 python3 scripts/gpu_profile.py ${MODELS%% *} 64
fi
echo
echo "=== done in $SECONDS s"
