"""`t2iscale eval audit-judge`: a VQA judge measured against the shapes world's exact oracle.

Listed in the `eval` command group (`t2iscale.eval.cli`), kept here because it reads a study (`findings` sits
above `study` in the data flow; `eval` never imports it). Heavy imports stay inside the handler.
"""

from __future__ import annotations

from t2iscale.cli import add_command

DESCRIPTION = """\
Run a judge on ground-truth renders of the shapes world's evaluation prompts and, with --study, on the study's
generated images (every evaluation step of every run), and compare it with the exact oracle: accuracy per GenEval
category and element type (95% intervals over prompts), yes-bias on yes/no questions, calibration (reliability
curve, ECE), VQAScore on own and foil prompts, the judge-minus-oracle gap along training, and whether the judge
ranks the study's models as the oracle does (Spearman with exact p, pairwise flips).

  a local BLIP VQA model:  --vqa-model DIR   (Soft-TIFA probabilities and VQAScore's P("yes") from it)
  the oracle itself:       --judge oracle    (a check of the audit: accuracy 1, ECE 0)

Writes <study>/audit/judge_audit.json (or --out), which `t2iscale report` shows as its own section.
"""


def register(subparsers):
    parser = add_command(
        subparsers,
        "audit-judge",
        handle,
        help="measure a VQA judge's errors against the shapes oracle",
        description=DESCRIPTION,
    )
    parser.add_argument("--study", default=None, metavar="DIR", help="a study folder whose images to audit")
    parser.add_argument("--judge", default="blip", choices=["blip", "oracle"], help="which judge to audit")
    parser.add_argument("--vqa-model", default=None, metavar="DIR", help="local BLIP VQA model directory")
    parser.add_argument(
        "--world", default=None, help="shapes world preset or JSON; unset: the study's, else tiny"
    )
    parser.add_argument(
        "--per-category", type=int, default=10, help="ground-truth prompts per GenEval category"
    )
    parser.add_argument("--seeds", type=int, default=2, help="ground-truth layouts per prompt")
    parser.add_argument(
        "--resolution", type=int, default=None, help="render side in px; unset: the study's, else 64"
    )
    parser.add_argument(
        "--out",
        default=None,
        help="result JSON; unset: <study>/audit/judge_audit.json (required without --study)",
    )
    parser.add_argument("--device", default="cpu", help="torch device of the judge's model")
    parser.add_argument("--json", action="store_true", help="print the whole result as JSON")
    return parser


def handle(args) -> int:
    import json

    from t2iscale.errors import UserError
    from t2iscale.eval.judges import Judges, resolve_judges
    from t2iscale.file_modes import require_writable_file
    from t2iscale.findings.judge_audit import (
        audit_judge,
        default_audit_path,
        format_audit,
        study_targets,
        write_audit,
    )
    from t2iscale.progress import progress_enabled

    if args.out is None and args.study is None:
        raise UserError("give --study DIR (the result goes to DIR/audit/judge_audit.json) or --out FILE")
    if args.judge == "blip" and args.vqa_model is None:
        raise UserError(
            "--judge blip needs --vqa-model DIR (a local BLIP VQA model); or audit --judge oracle"
        )
    if args.judge == "oracle" and args.vqa_model is not None:
        raise UserError("--vqa-model is for --judge blip; --judge oracle uses no model")
    if args.study is not None:
        study_targets(args.study)  # a wrong folder fails before any model is loaded
    out = args.out if args.out is not None else default_audit_path(args.study)
    require_writable_file(out, "the audit", "--out")  # nor is a judge run whose result cannot be written
    if args.judge == "blip":
        judges = resolve_judges(vqa_model=args.vqa_model, device=args.device)
    else:
        from t2iscale.eval.judges import oracle_judge

        world = args.world
        if world is None and args.study is not None:
            targets, _ = study_targets(args.study)
            world = targets[0].world if targets else None
        judge = oracle_judge(world or "tiny")
        judges = Judges(judge, judge)
    result = audit_judge(
        judges,
        study_dir=args.study,
        world=args.world,
        per_category=args.per_category,
        seeds=args.seeds,
        resolution=args.resolution,
        progress=progress_enabled(),
    )
    path = write_audit(result, out)
    print(json.dumps(result, indent=2) if args.json else format_audit(result))
    print(f"-> {path}")
    return 0
