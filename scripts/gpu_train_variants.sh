#!/usr/bin/env bash
# Issue 6, training-step variants on one H100/H200 (~5 minutes), each a `t2iscale bench` run in its own process
# with its own time limit. Variants that time the first compiled step start from an empty compile cache.
# SECTIONS picks and orders them (default: eager regional-transformer regional).
#
#   scripts/gpu_train_variants.sh      # with t2iscale importable (pip install -e . or PYTHONPATH=src)
#   MODELS="sdxl-c8-td1_1 sdxl-c8-td2_2" EXTRA="--resolutions 32 --text-dim 32 --text-len 8 --batch-sizes 4" \
#       scripts/gpu_train_variants.sh  # a CPU dry run of the script itself
set -u
export PYTHONUNBUFFERED=1
export PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True  # as gpu_bench.sh's training sections
OUT=${OUT:-gpu-results}
mkdir -p "$OUT" /tmp/gpu-variants
cd "$(dirname "$0")/.."
read -r BIG SMALL <<<"${MODELS:-sdxl sdxl-td4_4}"  # BIG: the model whose first compiled step is the target
EXTRA=${EXTRA:-"--batch-sizes 64"}

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || true
python3 -c "import torch, diffusers; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'diffusers', diffusers.__version__)"

section() {  # section NAME SECONDS COLD ARGS...: one bench run (COLD=1: empty compile caches), table + JSON kept
    local name=$1 limit=$2 cold=$3
    shift 3
    local start=$SECONDS cache=/tmp/gpu-variants/cache-shared
    [ "$cold" = 1 ] && cache=$(mktemp -d /tmp/gpu-variants/cache-XXXX)
    echo
    echo "=== $name (limit ${limit}s, compile cache $cache): t2iscale bench $*"
    TORCHINDUCTOR_CACHE_DIR=$cache TRITON_CACHE_DIR=$cache/triton timeout --signal=INT --kill-after=10 "$limit" \
        python3 -m t2iscale.cli bench --no-progress --measure train --steps 8 --warmup 2 "$@" $EXTRA \
        --out "/tmp/gpu-variants/$name.json" 2>&1 | grep -v "^results:"
    echo "=== $name: rc ${PIPESTATUS[0]}, $((SECONDS - start)) s"
    [ -f "/tmp/gpu-variants/$name.json" ] && tar -rf "$OUT/variants.tar" -C /tmp/gpu-variants "$name.json"
}

SECTIONS=${SECTIONS:-"eager regional-transformer regional"}
for name in $SECTIONS; do
    case $name in
    # The eager toolkit step against stock, in one process.
    eager) section eager 100 0 "$SMALL" "$BIG" --baseline stock --compile off ;;
    # Compile only the transformer blocks: time to the first step of BIG from an empty cache, and its speed.
    regional-transformer) section regional-transformer 90 1 "$BIG" --baseline stock --compile regional-transformer ;;
    # Regional compile (the CUDA default): BIG from an empty cache, then SMALL in the same process (its blocks
    # are BIG's: compiled already), as a study's local executor trains one run after another.
    regional) section regional 200 1 "$BIG" "$SMALL" --baseline stock --compile regional ;;
    # SMALL alone from an empty cache, with dynamo's recompilations logged; then its transformer blocks only.
    small-regional) TORCH_LOGS=recompiles section small-regional 150 1 "$SMALL" --baseline stock --compile regional ;;
    small-regional-transformer) section small-regional-transformer 80 0 "$SMALL" --compile regional-transformer ;;
    *) echo "unknown section $name" ;;
    esac
done
echo
echo "=== done in $SECONDS s"
