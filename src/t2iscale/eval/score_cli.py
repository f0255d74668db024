"""`t2iscale eval score`: score generated images listed in a manifest (TIFA, CLIP score, FID, oracle FID)."""

from __future__ import annotations

from t2iscale.cli import add_command

DESCRIPTION = """\
Score a folder of generated images described by a manifest (JSON lines: prompt_id, seed, path[, caption]) and
write <out>/eval/<metric>.json for each metric.

  real data:    --questions TIFA.json --vqa-model BLIP_DIR --clip-model CLIP_DIR --inception inception.pt
                --reference-images DIR
                --image-reward-checkpoint ImageReward.pt --image-reward-tokenizer BERT_DIR
                --hpsv2-checkpoint HPS_v2_compressed.pt --hpsv2-tokenizer CLIP_DIR   (docs/metrics.md)
  shapes world: --shapes-prompts v1 --world tiny  (the oracle answers TIFA questions; FID references are
                ground-truth renders of the same prompts and seeds unless --reference-images is given)

--inception takes a TorchScript file whose forward maps uint8 images (N, 3, H, W) to features (N, D), called
with return_features=True when it has that argument (as inception-2015-12-05.pt does).
"""


def register(subparsers):
    parser = add_command(
        subparsers, "score", handle, help="score generated images (TIFA, CLIP, FID)", description=DESCRIPTION
    )
    parser.add_argument("--manifest", required=True, help="manifest of the images (JSON lines)")
    parser.add_argument(
        "--images",
        default=None,
        help="folder the manifest's paths are relative to; unset: the manifest's folder",
    )
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--questions", default=None, help="TIFA question-answer file (JSON list)")
    source.add_argument("--shapes-prompts", default=None, help="shapes world prompt set version, e.g. v1")
    parser.add_argument("--world", default=None, help="shapes world preset name or JSON file")
    parser.add_argument(
        "--per-category", type=int, default=None, help="prompts per category of the shapes set"
    )
    from t2iscale.eval.metrics import METRIC_INFO  # torch-free

    parser.add_argument("--metrics", default="tifa", help=f"comma-separated: {', '.join(METRIC_INFO)}")
    parser.add_argument("--vqa-model", default=None, help="local BLIP VQA model directory (real-data TIFA)")
    parser.add_argument("--clip-model", default=None, help="local CLIP model + processor directory")
    parser.add_argument("--inception", default=None, help="TorchScript feature network file for FID")
    parser.add_argument("--reference-images", default=None, help="folder of reference images for FID")
    parser.add_argument(
        "--image-reward-checkpoint", default=None, help="ImageReward's released checkpoint (ImageReward.pt)"
    )
    parser.add_argument(
        "--image-reward-tokenizer",
        default=None,
        help="local bert-base-uncased tokenizer folder for ImageReward",
    )
    parser.add_argument(
        "--hpsv2-checkpoint", default=None, help="HPSv2's released checkpoint (HPS_v2_compressed.pt / v2.1)"
    )
    parser.add_argument(
        "--hpsv2-tokenizer",
        default=None,
        help="local CLIP tokenizer folder for HPSv2 (e.g. the CLIP model's)",
    )
    parser.add_argument(
        "--hpsv2-arch",
        default=None,
        help="OpenCLIP architecture of the HPSv2 checkpoint: ViT-H-14 (default) or an open_clip model-config JSON",
    )
    parser.add_argument(
        "--out", default=None, help="results go to OUT/eval/<metric>.json; unset: the manifest's folder"
    )
    parser.add_argument(
        "--allow-partial", action="store_true", help="score although some prompts have no image"
    )
    parser.add_argument(
        "--batch-size", type=int, default=32, help="images per batch for CLIP, FID, ImageReward, HPSv2"
    )
    parser.add_argument("--device", default="cpu", help="torch device for the models")
    return parser


def handle(args) -> int:
    from pathlib import Path

    from t2iscale.eval.score import headline, score_images

    results = score_images(
        args.manifest,
        args.metrics,
        image_dir=args.images,
        questions=args.questions,
        shapes_prompts=args.shapes_prompts,
        world=args.world,
        per_category=args.per_category,
        vqa_model=args.vqa_model,
        clip_model=args.clip_model,
        inception=args.inception,
        reference_images=args.reference_images,
        image_reward_checkpoint=args.image_reward_checkpoint,
        image_reward_tokenizer=args.image_reward_tokenizer,
        hpsv2_checkpoint=args.hpsv2_checkpoint,
        hpsv2_tokenizer=args.hpsv2_tokenizer,
        hpsv2_arch=args.hpsv2_arch,
        out_dir=args.out,
        allow_partial=args.allow_partial,
        batch_size=args.batch_size,
        device=args.device,
    )
    out_dir = Path(args.out) if args.out is not None else Path(args.manifest).parent
    for metric, result in results.items():
        print(f"{headline(metric, result)}  -> {out_dir / 'eval' / f'{metric}.json'}")
    return 0
