"""What a run's evaluation along training needs, checked before anything trains (issue 15).

The config itself already refuses a metric without the keys it needs (`t2iscale.train.config`); this checks what
those keys point to, which takes reading files:

- the prompt set (`eval.prompts`) exists and, for TIFA, holds questions in TIFA's format;
- the model folders exist: `eval.vqa_model`, `eval.clip_model`; the FID network file `eval.inception` loads;
  ImageReward's and HPSv2's checkpoint files and tokenizer folders exist;
- FID has enough images for its network's feature width (`t2iscale.eval.fid.check_image_counts`: a D x D
  covariance needs at least D images per set): the images generated at each evaluation (prompts x `eval.seeds`)
  and the reference images (`eval.fid_reference`, or the shapes world's renders of the same prompts). The width
  comes from running the network once on one blank image at the run's resolution (cached per file);
- prepared data has its `prepared.json` (the config checks the rest of the data against it).

`check_evaluation(config)` raises one UserError whose line names the key and the file;
`evaluation_problems(config)` returns every problem (what `t2iscale study run --dry-run` prints per run).
"""

from __future__ import annotations

from pathlib import Path

from t2iscale.errors import UserError
from t2iscale.train.config import VQA_METRICS, TrainConfig, run_setting

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")

_FEATURE_WIDTHS: dict[tuple[str, int, int], int] = {}  # (file, mtime, resolution) -> feature width


def count_images(folder: str | Path) -> int:
    """Image files under `folder` (recursively), as `t2iscale eval score --reference-images` reads them."""
    return sum(1 for path in Path(folder).rglob("*") if path.suffix.lower() in IMAGE_SUFFIXES)


def feature_width(inception: str | Path, resolution: int) -> int:
    """D, the width of the FID network's features, from one forward pass on a blank (1, 3, R, R) image."""
    import torch

    from t2iscale.eval.fid import TorchScriptFeatures

    path = Path(inception)
    key = (str(path.resolve()), path.stat().st_mtime_ns, resolution)
    if key not in _FEATURE_WIDTHS:
        network = TorchScriptFeatures(path)
        with torch.no_grad():
            features = network(torch.zeros(1, 3, resolution, resolution, dtype=torch.uint8))  # (1, D)
        _FEATURE_WIDTHS[key] = int(features.shape[-1])
    return _FEATURE_WIDTHS[key]


def _oracle_feature_width(world: str, resolution: int) -> int:
    import numpy as np

    from t2iscale.data.shapes.world import resolve_world
    from t2iscale.eval.oracle import OracleVQA

    blank = np.zeros((resolution, resolution, 3), dtype=np.uint8)
    return int(len(OracleVQA(resolve_world(world)).features(blank)))


def evaluation_problems(config: TrainConfig) -> list[str]:
    """Every problem that would stop this run's training or evaluation, one line each naming the key and file."""
    problems: list[str] = []
    if config.data.kind == "prepared":
        from t2iscale.data.prepared_meta import META_FILE

        meta_file = Path(config.data.path) / META_FILE
        if not meta_file.is_file():
            problems.append(f"data.path: {str(meta_file)!r} not found (run `t2iscale data prepare` first)")
    evaluation = config.eval
    if evaluation.every_steps is None:
        return problems
    from t2iscale.eval.prompt_source import resolve_prompts

    world = config.data.world if config.data.kind == "shapes" else None
    try:
        source = resolve_prompts(evaluation.prompts, world=world, per_category=evaluation.per_category)
    except UserError as error:
        return [*problems, f"eval.prompts: {error}"]
    metrics = set(evaluation.metrics)

    asking = sorted(metrics & set(VQA_METRICS))  # TIFA and the judges that ask its questions
    if asking and "questions" in source.score_kwargs:
        from t2iscale.eval.tifa import load_questions

        try:
            load_questions(source.score_kwargs["questions"])
        except UserError as error:
            problems.append(f"eval.prompts: {error}")
    elif asking and world is None:
        problems.append(
            f"eval.prompts: {evaluation.prompts!r} has prompts but no questions; metric {asking[0]!r} needs a "
            "question-answer file (tifa_v1.0_question_answers.json format)"
        )
    for metric, key in ((asking[0] if asking else "tifa", "vqa_model"), ("clip", "clip_model")):
        folder = getattr(evaluation, key)
        if metric in metrics and folder is not None and not Path(folder).is_dir():
            problems.append(f"eval.{key}: {folder!r} is not a folder (metric {metric!r} loads it)")

    for metric, key, kind in (
        ("image_reward", "image_reward_checkpoint", "file"),
        ("image_reward", "image_reward_tokenizer", "folder"),
        ("hpsv2", "hpsv2_checkpoint", "file"),
        ("hpsv2", "hpsv2_tokenizer", "folder"),
    ):
        path = getattr(evaluation, key)
        exists = path is not None and (Path(path).is_file() if kind == "file" else Path(path).is_dir())
        if metric in metrics and path is not None and not exists:
            problems.append(f"eval.{key}: {path!r} is not a {kind} (metric {metric!r} loads it)")

    n_generated = len(source.prompts) * len(evaluation.seeds)
    if "fid" in metrics or "oracle_fid" in metrics:
        problems += _fid_problems(config, metrics, n_generated)
    return problems


def _fid_problems(config: TrainConfig, metrics: set[str], n_generated: int) -> list[str]:
    from t2iscale.eval.fid import check_image_counts

    evaluation, problems = config.eval, []
    reference = evaluation.fid_reference
    if reference is not None:
        if not Path(reference).is_dir():
            return [f"eval.fid_reference: {reference!r} is not a folder of reference images"]
        n_reference, reference_text = count_images(reference), f"eval.fid_reference {reference!r} holds"
    else:  # the shapes world: ground-truth renders of the same prompts and seeds
        n_reference, reference_text = n_generated, "the shapes world's reference renders are"
    try:
        resolution = run_setting(config).resolution
    except UserError:  # prepared data not prepared yet: reported above
        return problems
    networks = []
    if "fid" in metrics and evaluation.inception is not None:
        if not Path(evaluation.inception).is_file():
            return [f"eval.inception: {evaluation.inception!r} is not a file"]
        try:
            networks.append(
                (
                    "fid",
                    f"eval.inception {evaluation.inception!r}",
                    feature_width(evaluation.inception, resolution),
                )
            )
        except UserError as error:
            return [f"eval.inception: {error}"]
    if "oracle_fid" in metrics and config.data.kind == "shapes":
        networks.append(
            ("oracle_fid", "the shapes oracle", _oracle_feature_width(config.data.world, resolution))
        )
    for metric, network, width in networks:
        try:
            check_image_counts(n_reference, n_generated, width)
        except UserError as error:
            problems.append(
                f"eval.seeds / eval.fid_reference: metric {metric!r}: {error} ({network} gives {width}-d features; "
                f"each evaluation generates {n_generated} images: prompts x eval.seeds; {reference_text} "
                f"{n_reference})"
            )
    return problems


def check_evaluation(config: TrainConfig, where: str = "") -> None:
    """Raise a UserError naming the first problem (and how many more) when the run could not train and evaluate."""
    problems = evaluation_problems(config)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        prefix = f"{where}: " if where else ""
        raise UserError(f"{prefix}{problems[0]}{more}")
