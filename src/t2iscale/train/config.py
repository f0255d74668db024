"""The training recipe as a typed, strict config (DESIGN.md "The recipe").

Paper defaults (Li et al., CVPR 2024, Sec. 3 "experimental setting"): AdamW, lr 8e-5, 10k warm-up steps then
constant, global batch 2048, bf16 mixed precision, DDPM with the LDM scaled-linear schedule, ε-prediction, 10% caption
dropout for classifier-free guidance; evaluation with DDIM 50 steps, CFG 7.5, fixed seeds, non-EMA weights.

Every field is overridable; unknown keys are errors that name the key. The resolved config is written to the run
directory (`config.json`) and printed before work starts, and a study applies one recipe to all of its runs.

What a run will need is checked here too, before anything trains (a study checks every grid point when its spec is
loaded, `--dry-run` included): each evaluation metric has what it needs (FID: eval.inception and, on real data,
eval.fid_reference; TIFA on real data: eval.vqa_model; CLIP: eval.clip_model), and prepared data is checked against
its `prepared.json`: data.size against the samples prepared, data.caption_policy against the captions the data
has, the expected resolution and text width / length (data.expect_*) against the prepared setting. Checks that
read more than prepared.json (files exist, the FID network's feature width against the image counts) are the
evaluation's (`t2iscale.eval.preflight`), run by `t2iscale train` and `t2iscale study run [--dry-run]`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from t2iscale.data.caption_policy import CAPTION_POLICIES
from t2iscale.errors import UserError
from t2iscale.strict import Strict, format_validation_error
from t2iscale.zoo.setting import PAPER_SETTING, Setting

# torch.compile of the backbone (t2iscale.train.compile explains each).
COMPILE_MODES = ("auto", "off", "full", "regional", "regional-transformer")

# The closed sets a config names, kept here torch-free so a config is validated completely before anything
# imports torch or touches the disk (a typo must not lock a run folder). Each mirrors the registry that builds the
# thing, and a test checks that the two agree: `t2iscale.diffusion.objectives.OBJECTIVES` (imports torch) and
# `t2iscale.eval.score.METRICS` (downstream of `train` in the data flow).
OBJECTIVE_NAMES = ("ddpm-eps", "ddpm-v", "flow")
EVAL_METRICS = (
    "tifa",
    "clip",
    "fid",
    "oracle_fid",
    "soft_tifa",
    "soft_tifa_gm",
    "vqascore",
    "image_reward",
    "hpsv2",
)
# Metrics that ask a VQA model questions (the shapes world's oracle, or eval.vqa_model on real data).
VQA_METRICS = ("tifa", "soft_tifa", "soft_tifa_gm", "vqascore")
SHAPES_PROMPTS_PREFIX = "shapes-"  # eval.prompts: the built-in sets (shapes-v1), else a TIFA question file


# Keys that change how fast a run trains, not what it trains (the same model up to floating-point rounding; the
# prefetch depth not even that): a run may resume with other values, and a study's run ids leave them out.
SPEED_ONLY_KEYS = frozenset(
    {
        "data.prefetch_batches",
        "data.render_cache",
        "recipe.compile",
        "recipe.channels_last",
        "recipe.gradient_checkpointing",
    }
)


# Keys added after a study's run ids were first published (the format of t2iscale's first studies). They enter a
# run's identity only when set away from their defaults, so adding a key renames no run of an existing study and
# locks no run folder. A key added later belongs here too: tests/study/test_run_identity.py pins the id of a fixed
# config, so a key left out fails it.
KEYS_SINCE_FIRST_IDS = (
    "data.expect_resolution",
    "data.expect_text_dim",
    "data.expect_text_length",
    "recipe.parallel",
    "eval.fid_reference",
    "eval.image_reward_checkpoint",
    "eval.image_reward_tokenizer",
    "eval.hpsv2_checkpoint",
    "eval.hpsv2_tokenizer",
    "eval.hpsv2_arch",
)


def without_late_defaults(resolved: dict) -> dict:
    """A resolved config (`model_dump(mode="json")`) without the KEYS_SINCE_FIRST_IDS that hold their defaults;
    an older config.json, which lacks them, reads the same."""
    kept = {key: dict(value) if isinstance(value, dict) else value for key, value in resolved.items()}
    for key in KEYS_SINCE_FIRST_IDS:
        section, name = key.split(".")
        table = kept.get(section)
        if isinstance(table, dict) and name in table:
            section_model = TrainConfig.model_fields[section].annotation
            default = section_model.model_fields[name].get_default(call_default_factory=True)
            if table[name] == default:
                del table[name]
    return kept


def run_identity(resolved: dict) -> dict:
    """What defines a run (a study hashes it into the run id): the resolved config without SPEED_ONLY_KEYS and
    without the KEYS_SINCE_FIRST_IDS left at their defaults."""
    return without_speed_only_keys(without_late_defaults(resolved))


def without_speed_only_keys(resolved: dict) -> dict:
    """A resolved config (`model_dump(mode="json")`) without SPEED_ONLY_KEYS: what defines the trained model."""
    kept = dict(resolved)
    for key in SPEED_ONLY_KEYS:
        section, name = key.split(".")
        if isinstance(kept.get(section), dict):
            kept[section] = {k: v for k, v in kept[section].items() if k != name}
    return kept


class _Config(Strict):
    """Unknown keys are errors (`Strict`); assignments are validated too."""

    model_config = ConfigDict(validate_assignment=True)


def _key_error(key: tuple[str, ...], message: str, value) -> ValidationError:
    """A validation error that names `key` (a model validator's own errors name only the object)."""
    return _key_errors([(key, message, value)])


def _key_errors(problems: list[tuple[tuple[str, ...], str, Any]]) -> ValidationError:
    """One validation error carrying several (key, message, value) problems, each naming its key."""
    return ValidationError.from_exception_data(
        "TrainConfig",
        [
            InitErrorDetails(
                type=PydanticCustomError("value_error", "{message}", {"message": message}),
                loc=key,
                input=value,
            )
            for key, message, value in problems
        ],
    )


class ModelConfig(_Config):
    backbone: str = Field("sdxl-c16-td1_2", description="zoo name (`t2iscale zoo` lists them)")

    @field_validator("backbone")
    @classmethod
    def _zoo_name(cls, name):
        # The zoo grammar (torch-free); whether the sizes it names can be built is checked in the run's setting
        # by TrainConfig, which knows the data.
        from t2iscale.zoo import resolve

        try:
            resolve(name)
        except UserError as error:
            raise ValueError(str(error)) from None
        return name


class DataConfig(_Config):
    kind: Literal["shapes", "prepared"] = Field(
        "shapes",
        description="shapes: the built-in world in pixel space; prepared: `t2iscale data prepare` output",
    )
    caption_policy: Literal[CAPTION_POLICIES] = Field(
        "mix", description="alt, syn1, syn5 or mix (paper default)"
    )
    size: int | None = Field(
        None, ge=1, description="dataset size cap in images (nested subsets: the first N of a fixed order)"
    )
    seed: int = Field(0, description="dataset seed (which images); the run seed is separate")
    # shapes world
    world: str = Field("tiny", description="shapes-world preset")
    resolution: int = Field(32, ge=16, description="shapes-world image size in pixels")
    # prepared real data
    path: str | None = Field(None, description="folder written by `t2iscale data prepare`")
    # What a recipe was designed for (a preset at the paper's setting: 256 px, 77 x 1024 text); checked against the
    # prepared folder's prepared.json so a mismatch fails before training. None: not checked.
    expect_resolution: int | None = Field(
        None,
        ge=1,
        description="prepared data: the image size the recipe expects (checked against prepared.json)",
    )
    expect_text_dim: int | None = Field(
        None, ge=1, description="prepared data: the text embedding width the recipe expects (e.g. 1024)"
    )
    expect_text_length: int | None = Field(
        None, ge=1, description="prepared data: the tokens per caption the recipe expects (e.g. 77)"
    )
    max_bad_fraction: float = Field(
        0.01, ge=0.0, le=1.0, description="stop when more samples than this are bad"
    )
    prefetch_batches: int | Literal["auto"] = Field(
        "auto",
        description="batches made ahead on a background thread (pinned memory on CUDA); 0: made in the loop; "
        "auto: 2 on CUDA, 0 on the CPU. Changes speed only, never what is trained",
    )

    render_cache: bool = Field(
        True,
        description="shapes world: render the training set once into a cache shared by every run that trains on "
        "it ($T2ISCALE_CACHE_DIR, default ~/.cache/t2iscale). Changes speed only, never what is trained",
    )

    @field_validator("prefetch_batches")
    @classmethod
    def _non_negative(cls, value):
        if isinstance(value, int) and value < 0:
            raise ValueError("must be >= 0 or 'auto'")
        return value

    @field_validator("world")
    @classmethod
    def _known_world(cls, world):
        # A preset name or a world file, read here so that a typo fails before the run folder is touched.
        from t2iscale.data.shapes.world import resolve_world

        try:
            resolve_world(world)
        except UserError as error:
            raise ValueError(str(error)) from None
        return world

    @model_validator(mode="after")
    def _check(self):
        if self.kind == "prepared" and not self.path:
            raise ValueError(
                "data.kind 'prepared' needs data.path (the folder written by `t2iscale data prepare`)"
            )
        if self.kind == "shapes" and self.size is None:
            raise ValueError("data.kind 'shapes' needs data.size (number of distinct training images)")
        return self


class TextConfig(_Config):
    # The data decides the kind: the shapes world trains a small learned encoder jointly; prepared data carries
    # embeddings of a frozen pretrained encoder (its folder is needed again only to sample new prompts).
    dim: int = Field(64, ge=8, description="learned encoder width")
    max_length: int = Field(
        32, ge=4, description="learned encoder tokens per caption; longer ones are cut, with a warning"
    )
    layers: int = Field(2, ge=1)
    heads: int = Field(4, ge=1)
    path: str | None = Field(
        None,
        description="pretrained text encoder folder for sampling (prepared data; default: the one it was prepared with)",
    )

    @model_validator(mode="after")
    def _heads_divide_the_width(self):
        if self.dim % self.heads:
            raise _key_error(
                ("heads",), f"text.dim {self.dim} must be divisible by text.heads {self.heads}", self.heads
            )
        return self


class RecipeConfig(_Config):
    objective: Literal[OBJECTIVE_NAMES] = Field("ddpm-eps", description="ddpm-eps (paper), ddpm-v or flow")
    lr: float = Field(8e-5, gt=0)
    warmup_steps: int = Field(10_000, ge=0, description="linear warm-up, then the lr_schedule (paper: 10k)")
    lr_schedule: Literal["constant", "cosine"] = Field(
        "constant", description="after warm-up: constant (paper) or cosine decay to 0 at budget.total_steps"
    )
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    weight_decay: float = Field(0.01, ge=0)
    adam_eps: float = Field(1e-8, gt=0)
    global_batch: int = Field(2048, ge=1, description="images per optimizer step, over all processes")
    micro_batch: int | None = Field(
        None, ge=1, description="images per process per forward; gradient accumulation makes up the rest"
    )
    mixed_precision: Literal["auto", "bf16", "fp16", "no"] = Field(
        "auto", description="auto: bf16 autocast where the device supports it (CUDA), fp32 elsewhere"
    )
    caption_dropout: float = Field(
        0.1, ge=0, le=1, description="fraction of captions replaced by '' (for CFG)"
    )
    grad_clip: float | None = Field(
        1.0, ge=0, description="max global gradient norm; 0 or null disables (TOML has no null)"
    )
    ema_decay: float | None = Field(
        0.9999,
        ge=0,
        lt=1,
        description="EMA of the weights; 0 or null disables (evaluation uses non-EMA weights)",
    )
    compile: Literal[COMPILE_MODES] = Field(
        "auto",
        description="torch.compile the backbone: whole (full), each repeated block (regional, fast to compile), "
        "only the transformer blocks (regional-transformer, fastest to compile), or auto (regional on CUDA for "
        "backbones of 100M+ parameters, else off)",
    )
    channels_last: bool = Field(False, description="channels-last memory format for conv backbones")
    gradient_checkpointing: bool = Field(False, description="trade compute for activation memory")
    # Not a speed-only key: the two keep checkpoints in different formats, so a run resumes in the mode it began.
    parallel: Literal["ddp", "fsdp"] = Field(
        "ddp",
        description="several processes: ddp (every process holds the whole training state) or fsdp (weights, "
        "gradients, AdamW state and EMA sharded over processes; docs/fsdp.md). One process: plain PyTorch",
    )

    @field_validator("compile", mode="before")
    @classmethod
    def _compile_from_bool(cls, value):
        # true / false read as "full" / "off", so a plain boolean in a config file keeps working.
        return {True: "full", False: "off"}.get(value, value) if isinstance(value, bool) else value

    @model_validator(mode="after")
    def _micro_batch_divides_the_batch(self):
        # With N processes the micro-batch must divide global_batch / N (checked when the processes are known);
        # dividing global_batch itself is needed for any N.
        if self.micro_batch is not None and self.global_batch % self.micro_batch:
            raise _key_error(
                ("micro_batch",),
                f"recipe.micro_batch {self.micro_batch} does not divide recipe.global_batch {self.global_batch}",
                self.micro_batch,
            )
        return self

    @property
    def uses_ema(self) -> bool:
        return bool(self.ema_decay)

    @property
    def clips_gradients(self) -> bool:
        return bool(self.grad_clip)


class BudgetConfig(_Config):
    total_steps: int = Field(..., ge=1, description="optimizer steps to train")
    log_every_steps: int = Field(10, ge=1)
    checkpoint_every_steps: int = Field(1000, ge=1)
    keep_checkpoints: int = Field(2, ge=1, description="how many recent checkpoints to keep")


class EvalConfig(_Config):
    every_steps: int | None = Field(
        None, ge=1, description="evaluate every N steps (and at the end); null: never"
    )
    prompts: str = Field("shapes-v1", description="shapes-v1 (built-in) or a TIFA-format question file")
    per_category: int = Field(8, ge=1, description="shapes-world prompts per GenEval category")
    seeds: list[int] = Field(default_factory=lambda: [0], description="one image per prompt and seed")
    sampler_steps: int = Field(50, ge=1, description="DDIM steps (paper: 50)")
    guidance: float = Field(7.5, ge=0, description="classifier-free guidance scale (paper: 7.5)")
    metrics: list[Literal[EVAL_METRICS]] = Field(
        default_factory=lambda: ["tifa"],
        min_length=1,
        description=", ".join(EVAL_METRICS) + " (docs/metrics.md)",
    )
    batch_size: int = Field(64, ge=1)
    use_ema: bool = Field(False, description="paper: non-EMA weights")
    vqa_model: str | None = Field(None, description="local VQA model folder (real data TIFA)")
    clip_model: str | None = Field(None, description="local CLIP folder for CLIP score")
    inception: str | None = Field(None, description="local Inception file for FID")
    fid_reference: str | None = Field(
        None,
        description="folder of reference images for FID (real data; the shapes world defaults to ground-truth "
        "renders of the prompts)",
    )
    # ImageReward and HPSv2 (docs/metrics.md): released checkpoints and local tokenizers; nothing is downloaded.
    image_reward_checkpoint: str | None = Field(None, description="ImageReward's released ImageReward.pt")
    image_reward_tokenizer: str | None = Field(
        None, description="local bert-base-uncased tokenizer folder for ImageReward"
    )
    hpsv2_checkpoint: str | None = Field(None, description="HPSv2's released HPS_v2_compressed.pt (or v2.1)")
    hpsv2_tokenizer: str | None = Field(None, description="local CLIP tokenizer folder for HPSv2")
    hpsv2_arch: str = Field(
        "ViT-H-14", description="OpenCLIP architecture of the HPSv2 checkpoint, or its JSON"
    )

    @field_validator("prompts")
    @classmethod
    def _known_prompt_set(cls, prompts):
        # A built-in set must exist; a question file is read (and checked) when the evaluation hook is made,
        # which `t2iscale train` does before the run folder is touched.
        if prompts.startswith(SHAPES_PROMPTS_PREFIX):
            from t2iscale.data.shapes.prompts import PROMPT_SET_VERSIONS

            version = prompts.removeprefix(SHAPES_PROMPTS_PREFIX)
            if version not in PROMPT_SET_VERSIONS:
                known = ", ".join(SHAPES_PROMPTS_PREFIX + v for v in PROMPT_SET_VERSIONS)
                raise ValueError(
                    f"unknown built-in prompt set {prompts!r}; built-in: {known}, or a TIFA file"
                )
        return prompts


class TrainConfig(_Config):
    run_dir: str = Field(
        ..., description="the run's folder: config, metrics, checkpoints, final weights, eval"
    )
    seed: int = Field(0, description="run seed: init, noise, timesteps, caption dropout")
    model: ModelConfig = Field(default_factory=ModelConfig)
    data: DataConfig = Field(default_factory=DataConfig)
    text: TextConfig = Field(default_factory=TextConfig)
    recipe: RecipeConfig = Field(default_factory=RecipeConfig)
    budget: BudgetConfig
    eval: EvalConfig = Field(default_factory=EvalConfig)

    @model_validator(mode="after")
    def _ema_for_evaluation(self):
        if self.eval.use_ema and not self.recipe.uses_ema:
            raise ValueError("eval.use_ema needs EMA weights: set recipe.ema_decay (e.g. 0.999)")
        return self

    @model_validator(mode="after")
    def _backbone_builds_in_the_runs_setting(self):
        # The zoo family's config function raises for sizes it cannot build (a zero width, a width its heads do
        # not divide, an odd grid for a patch-2 transformer), without torch. Prepared data not prepared yet:
        # the paper setting, as the study's plan assumes.
        from t2iscale.zoo import model_config

        try:
            model_config(self.model.backbone, _validation_setting(self))
        except UserError as error:
            raise _key_error(("model", "backbone"), str(error), self.model.backbone) from None
        return self

    @model_validator(mode="after")
    def _prompts_for_the_data(self):
        built_in = self.eval.prompts.startswith(SHAPES_PROMPTS_PREFIX)
        if self.eval.every_steps is not None and self.data.kind != "shapes" and built_in:
            raise _key_error(
                ("eval", "prompts"),
                f"{self.eval.prompts!r} is the shapes world's prompt set; evaluating a run on prepared data "
                "needs a TIFA-format question file",
                self.eval.prompts,
            )
        return self

    @model_validator(mode="after")
    def _evaluation_has_what_it_needs(self):
        # What each metric needs from the config, so a study never trains a run whose first evaluation must fail
        # (issue 15: `fid` trained four runs, then failed for want of reference images). Whether the files exist
        # is the evaluation preflight's check (`t2iscale.eval.preflight`): a preset's placeholder paths validate.
        evaluation = self.eval
        if evaluation.every_steps is None:
            return self
        real = self.data.kind != "shapes"
        problems = []
        metrics = set(evaluation.metrics)
        if "fid" in metrics and evaluation.inception is None:
            problems.append(
                (
                    ("eval", "inception"),
                    "metric 'fid' needs a feature network file (e.g. inception-2015-12-05.pt)",
                    None,
                )
            )
        if "fid" in metrics and real and evaluation.fid_reference is None:
            problems.append(
                (
                    ("eval", "fid_reference"),
                    "metric 'fid' on prepared data needs a folder of reference images",
                    None,
                )
            )
        asking = sorted(metrics & set(VQA_METRICS))
        if asking and real and evaluation.vqa_model is None:
            problems.append(
                (
                    ("eval", "vqa_model"),
                    f"metric {asking[0]!r} on prepared data needs a local VQA model folder",
                    None,
                )
            )
        if "clip" in metrics and evaluation.clip_model is None:
            problems.append((("eval", "clip_model"), "metric 'clip' needs a local CLIP model folder", None))
        for metric, keys in (
            ("image_reward", ("image_reward_checkpoint", "image_reward_tokenizer")),
            ("hpsv2", ("hpsv2_checkpoint", "hpsv2_tokenizer")),
        ):
            for key in keys:
                if metric in metrics and getattr(evaluation, key) is None:
                    what = "checkpoint file" if key.endswith("checkpoint") else "tokenizer folder"
                    problems.append((("eval", key), f"metric {metric!r} needs a local {what}", None))
        if "oracle_fid" in metrics and real:
            problems.append(
                (
                    ("eval", "metrics"),
                    "metric 'oracle_fid' needs the shapes world (data.kind 'shapes'); use 'fid'",
                    None,
                )
            )
        if problems:
            raise _key_errors(problems)
        return self

    @model_validator(mode="after")
    def _data_matches_the_prepared_folder(self):
        # Prepared data not prepared yet is not an error here (a study can be planned first); the preflight says so.
        if self.data.kind != "prepared" or not self.data.path:
            return self
        meta = _prepared_meta_or_none(self.data.path)
        if meta is None:
            return self
        from t2iscale.data.prepared_meta import META_FILE, caption_policy_problem

        where = f"{Path(self.data.path) / META_FILE}"
        data, problems = self.data, []
        if data.size is not None and data.size > meta.count:
            problems.append(
                (
                    ("data", "size"),
                    f"{data.size} is larger than the {meta.count} samples prepared in {where}",
                    data.size,
                )
            )
        expected = (
            ("expect_resolution", meta.resolution, "px images"),
            ("expect_text_dim", meta.text_dim, "-d text embeddings"),
            ("expect_text_length", meta.text_length, "tokens per caption"),
        )
        for key, prepared, unit in expected:
            wanted = getattr(data, key)
            if wanted is not None and wanted != prepared:
                sep = "" if unit.startswith("-") else " "
                problems.append(
                    (
                        ("data", key),
                        f"the recipe expects {wanted}{sep}{unit}, but {where} holds {prepared}{sep}{unit} "
                        f"(prepared at {meta.resolution} px, text {meta.text_length} x {meta.text_dim}); "
                        "point data.path at data prepared for this recipe, or change the recipe",
                        wanted,
                    )
                )
        policy_problem = caption_policy_problem(meta, data.caption_policy, data.max_bad_fraction)
        if policy_problem is not None:
            problems.append((("data", "caption_policy"), f"{policy_problem} ({where})", data.caption_policy))
        if problems:
            raise _key_errors(problems)
        return self

    def to_json(self) -> str:
        return json.dumps(self.model_dump(mode="json"), indent=2, sort_keys=False)


def validate_config(raw: dict[str, Any], source: str = "") -> TrainConfig:
    try:
        return TrainConfig.model_validate(raw)
    except ValidationError as error:
        where = f" {source}" if source else ""
        raise UserError(f"invalid config{where}: {format_validation_error(error)}") from None


def parse_override(text: str) -> tuple[list[str], Any]:
    """`recipe.lr=1e-4` -> (['recipe', 'lr'], 1e-4). Values are JSON when they parse as JSON, else strings."""
    if "=" not in text:
        raise UserError(f"--set expects key=value, got {text!r}")
    key, value_text = text.split("=", 1)
    path = [part for part in key.strip().split(".") if part]
    if not path:
        raise UserError(f"--set has an empty key in {text!r}")
    try:
        value = json.loads(value_text)
    except json.JSONDecodeError:
        value = value_text
    return path, value


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply `--set key=value` pairs to a raw config dict; the strict validation afterwards catches bad keys."""
    raw = json.loads(json.dumps(raw))  # deep copy
    for text in overrides:
        path, value = parse_override(text)
        node = raw
        for part in path[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise UserError(f"--set {text!r}: {part!r} is not a section")
            node = child
        node[path[-1]] = value
    return raw


def load_raw_config(path: str | Path) -> dict[str, Any]:
    """Read a JSON or TOML config file."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"config file not found: {path}")
    text = path.read_text()
    if path.suffix == ".toml":
        import tomllib

        try:
            return tomllib.loads(text)
        except tomllib.TOMLDecodeError as error:
            raise UserError(f"config file {path}: {error}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise UserError(f"config file {path}: line {error.lineno}: {error.msg}") from None


def load_config(path: str | Path | None, overrides: list[str] = ()) -> TrainConfig:
    raw = load_raw_config(path) if path else {}
    raw = apply_overrides(raw, list(overrides))
    return validate_config(raw, source=str(path) if path else "(from --set)")


def _prepared_meta_or_none(path: str):
    """The prepared folder's metadata, or None when it has none yet or it is unreadable (reported where read)."""
    from t2iscale.data.prepared_meta import META_FILE, read_prepared_meta

    meta_file = Path(path) / META_FILE
    if not meta_file.is_file():
        return None
    try:
        return _cached_meta(str(meta_file.resolve()), meta_file.stat().st_mtime_ns, read_prepared_meta)
    except UserError:
        return None


_META_CACHE: dict[tuple[str, int], Any] = {}


def _cached_meta(path: str, mtime_ns: int, read):
    # A study validates every grid point against one prepared.json (perhaps megabytes): read it once.
    key = (path, mtime_ns)
    if key not in _META_CACHE:
        _META_CACHE.clear()
        _META_CACHE[key] = read(Path(path).parent)
    return _META_CACHE[key]


def _validation_setting(config: TrainConfig) -> Setting:
    if config.data.kind != "shapes":
        from t2iscale.data.prepared_meta import META_FILE

        if not (Path(config.data.path) / META_FILE).is_file():
            return PAPER_SETTING
    try:
        return run_setting(config)
    except UserError:  # an unreadable prepared.json: reported where the data is read
        return PAPER_SETTING


def run_setting(config: TrainConfig) -> Setting:
    """What the run's backbone is fed: resolution, input channels and latent factor, text width and length.

    The shapes world trains on RGB pixels with the learned text encoder's width and length; prepared real data on
    the VAE latents and frozen-encoder embeddings its `prepared.json` describes. Torch-free: the study's plan
    records each run's compute from it before anything trains, and the training components build the backbone in
    it, so the two cannot disagree. UserError when prepared data has no `prepared.json`.
    """
    if config.data.kind == "shapes":
        return Setting(config.data.resolution, 1, 3, config.text.dim, config.text.max_length)
    from t2iscale.data.prepared_meta import read_prepared_meta

    return read_prepared_meta(config.data.path).setting()
