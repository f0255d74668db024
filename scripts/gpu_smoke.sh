#!/usr/bin/env bash
# A GPU smoke run of the default training path (compile auto = regional on CUDA, bf16, fused AdamW, EMA) with
# evaluation along training (a compiled backbone: sampled eagerly) and `t2iscale sample` on the result (uncompiled:
# CUDA graphs). Tiny model on the shapes world; about two minutes on an H100.
set -u
export PYTHONUNBUFFERED=1
R=${RUN:-/tmp/t2iscale-smoke}
STEPS=${STEPS:-90}
T2I="python3 -m t2iscale.cli"
CONFIG=(--set run_dir="$R" --set data.size=4000 --set model.backbone=sdxl-c16-td1_2 --set recipe.global_batch=64
    --set recipe.warmup_steps=10 --set recipe.lr=1e-3 --set budget.total_steps="$STEPS"
    --set budget.checkpoint_every_steps=$((STEPS / 3)) --set eval.every_steps=$((STEPS / 2))
    --set eval.per_category=2 --set eval.sampler_steps=10 --set eval.batch_size=32 --quiet)
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
