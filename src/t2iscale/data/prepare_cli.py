"""`t2iscale data prepare`: encode raw webdataset shards into prepared latents + text embeddings."""

from __future__ import annotations

from t2iscale.cli import add_command

DESCRIPTION = """\
Encode raw webdataset shards ({key}.jpg|png + {key}.txt alt-text + optional {key}.json with
"synthetic_captions") with a frozen VAE and a frozen text encoder into prepared shards, so training on real
data runs neither. Every candidate caption is encoded; the caption policy and caption dropout are applied
when training reads the data. Resumable: rerun the same command to continue (finished shards are skipped).

Captions elsewhere: --caption json:caption (COCO-style, caption in the .json), --caption json:captions.0,
several --caption tried in order (--caption txt --caption json:caption); --synthetic-captions json:FIELD or
none. --noun-tagger DIR (a spaCy pipeline on disk) counts image-noun pairs, the D of `t2iscale fit --x data`.
--workers N encodes in N processes.

example:
  t2iscale data prepare --shards 'raw/{000000..000009}.tar' --vae sdxl-vae --text-encoder openclip-h \\
      --out prepared/ --resolution 256 --size 1000000 --noun-tagger en_core_web_sm/ --workers 4
"""


def register(subparsers):
    parser = add_command(
        subparsers,
        "prepare",
        handle_prepare,
        help="encode webdataset shards into VAE latents + text embeddings",
        description=DESCRIPTION,
    )
    parser.add_argument("--shards", required=True, help="raw shard pattern, e.g. 'dir/{000000..000009}.tar'")
    parser.add_argument(
        "--vae", required=True, help="diffusers AutoencoderKL directory (or a pipeline with vae/)"
    )
    parser.add_argument(
        "--text-encoder", required=True, help="transformers CLIP/T5 text model directory (or a pipeline)"
    )
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--resolution", type=int, default=256, help="image side in pixels (center crop)")
    parser.add_argument("--size", type=int, default=None, help="keep the first N samples of the nested order")
    parser.add_argument("--batch-size", type=int, default=32, help="images encoded per batch")
    parser.add_argument("--shard-size", type=int, default=1000, help="samples per prepared shard")
    parser.add_argument("--seed", type=int, default=0, help="seed of the nested-subset order")
    parser.add_argument(
        "--storage-dtype", choices=["float16", "bfloat16"], default="float16", help="dtype of stored tensors"
    )
    parser.add_argument(
        "--vae-dtype",
        choices=["float32", "float16", "bfloat16"],
        default="float32",
        help="VAE compute dtype (the SDXL VAE overflows in float16)",
    )
    parser.add_argument(
        "--text-layer",
        choices=["last", "penultimate"],
        default=None,
        help="hidden layer used as context; unset = penultimate for CLIP (as SD2), last for T5",
    )
    parser.add_argument("--text-max-length", type=int, default=None, help="tokens per caption (CLIP: 77)")
    parser.add_argument("--device", default="auto", help="'auto' (cuda if available), 'cpu', 'cuda:0', ...")
    parser.add_argument(
        "--max-bad-fraction", type=float, default=0.01, help="stop above this bad-sample fraction"
    )
    parser.add_argument(
        "--caption",
        action="append",
        default=None,
        metavar="SOURCE",
        help="where the alt-text is: a member extension (txt, the default) or json:FIELD.PATH (json:caption, "
        "json:captions.0); repeat to try several in order",
    )
    parser.add_argument(
        "--synthetic-captions",
        default="json:synthetic_captions",
        metavar="SOURCE",
        help="JSON field holding the ranked synthetic captions (a list of strings), or none",
    )
    parser.add_argument(
        "--noun-tagger",
        default=None,
        metavar="DIR",
        help="a spaCy pipeline folder (spacy.load, offline): count image-noun pairs per sample and shard",
    )
    parser.add_argument("--workers", type=int, default=1, help="encoding processes (each loads the models)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


_FLAGS = {"captions": "caption"}


def handle_prepare(args) -> int:
    from pydantic import ValidationError

    from t2iscale.data.prepare import PrepareConfig, prepare
    from t2iscale.data.webdataset_reader import DataCounters
    from t2iscale.errors import UserError
    from t2iscale.strict import validation_problems

    try:
        config = PrepareConfig(
            shards=args.shards,
            vae=args.vae,
            text_encoder=args.text_encoder,
            out=args.out,
            resolution=args.resolution,
            size=args.size,
            batch_size=args.batch_size,
            shard_size=args.shard_size,
            seed=args.seed,
            storage_dtype=args.storage_dtype,
            vae_dtype=args.vae_dtype,
            text_layer=args.text_layer,
            text_max_length=args.text_max_length,
            device=args.device,
            max_bad_fraction=args.max_bad_fraction,
            progress=not args.no_progress,
            captions=tuple(args.caption or ("txt",)),
            synthetic_captions=args.synthetic_captions,
            noun_tagger=args.noun_tagger,
            workers=args.workers,
        )
    except ValidationError as error:
        # Each field is the option of the same name: text_max_length -> --text-max-length (captions: --caption).
        problems = "; ".join(
            f"--{_FLAGS.get(problem.key, problem.key.replace('_', '-'))}: {problem.message}"
            for problem in validation_problems(error)
        )
        raise UserError(problems) from error
    config.caption_sources()  # a malformed --caption / --synthetic-captions fails before anything prints
    print(config.model_dump_json(indent=2))
    meta = prepare(config)
    print(
        f"prepared {meta.count} samples in {len(meta.shards)} shards into {args.out} "
        f"(latents {tuple(meta.latent_shape)}, text {meta.text_length} x {meta.text_dim})"
    )
    if meta.with_synthetic is not None:
        print(f"captions: {meta.with_synthetic} of {meta.count} samples have synthetic captions")
    if meta.has_noun_pairs:
        totals = {
            p: sum(shard.noun_pairs[p] for shard in meta.shards) for p in ("alt", "syn1", "syn5", "mix")
        }
        print("image-noun pairs (D) by caption policy: " + ", ".join(f"{p} {n:,}" for p, n in totals.items()))
    counters = DataCounters.from_json(meta.counters)
    problems = counters.shard_problems()
    if counters.bad_total or problems:
        # What was skipped or lost, shard by shard (within --max-bad-fraction, or prepare would have stopped).
        print(f"bad data: {counters.headline()}")
        for line in problems:
            print(f"  {line}")
    return 0
