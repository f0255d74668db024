#!/usr/bin/env bash
# A GPU smoke run of the default training path (compile auto, bf16, fused AdamW, EMA, inputs made 2 steps ahead in
# pinned memory) with evaluation along training and `t2iscale sample` on the result (CUDA graphs); then the same
# model trained with inputs made in the loop (data.prefetch_batches=0), for the speed of the two. Tiny model on the
# shapes world (below the size from which compile auto compiles); about two minutes on an H100.
set -u
export PYTHONUNBUFFERED=1
R=${RUN:-/tmp/t2iscale-smoke}
STEPS=${STEPS:-90}
T2I="python3 -m t2iscale.cli"
COMMON=(--set data.size=4000 --set model.backbone=sdxl-c16-td1_2 --set recipe.global_batch=64
    --set recipe.warmup_steps=10 --set recipe.lr=1e-3 --quiet)
CONFIG=(--set run_dir="$R" "${COMMON[@]}" --set budget.total_steps="$STEPS"
    --set budget.checkpoint_every_steps=$((STEPS / 3)) --set eval.every_steps=$((STEPS / 2))
    --set eval.per_category=2 --set eval.sampler_steps=10 --set eval.batch_size=32)
start=$SECONDS
timeout 130 $T2I train "${CONFIG[@]}"
echo "=== train: rc $?, $((SECONDS - start)) s"
ls "$R"
tail -n 2 "$R"/metrics.jsonl "$R"/eval/eval.jsonl 2>/dev/null
start=$SECONDS
timeout 35 $T2I sample --run "$R" --prompt "a red circle" --prompt "a blue square" --seed 0 --seed 1 --steps 20 \
    --out "$R/samples"
echo "=== sample: rc $?, $((SECONDS - start)) s"
ls "$R/samples"
start=$SECONDS
timeout 40 $T2I train --set run_dir="$R-in-loop" "${COMMON[@]}" --set budget.total_steps=$((STEPS / 2)) \
    --set data.prefetch_batches=0
echo "=== train, inputs made in the loop: rc $?, $((SECONDS - start)) s"
tail -n 2 "$R-in-loop"/metrics.jsonl
