"""Which prompts an evaluation generates, and how they are scored.

`shapes-v1` is the shapes world's built-in prompt set (GenEval categories, TIFA questions, oracle VQA); any other
value is a file in TIFA's format: the question-answer file (`tifa_v1.0_question_answers.json`: prompts and their
questions) or the text-input file (`tifa_v1.0_text_inputs.json`: prompts only, for CLIP score / FID).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from t2iscale.errors import UserError

SHAPES_PREFIX = "shapes-"


@dataclass
class PromptSource:
    prompts: list[tuple[str, str]]  # (prompt id, caption), in generation order
    score_kwargs: dict = field(
        default_factory=dict
    )  # keyword arguments of `score_images` that find the questions
    description: str = ""


def resolve_prompts(spec: str, world: str | None = None, per_category: int = 8) -> PromptSource:
    if spec.startswith(SHAPES_PREFIX):
        from t2iscale.data.shapes.prompts import eval_prompt_set

        if world is None:
            raise UserError(
                f"prompt set {spec!r} belongs to the shapes world: give the world (e.g. --world tiny)"
            )
        version = spec.removeprefix(SHAPES_PREFIX)
        prompt_set = eval_prompt_set(world, version=version, per_category=per_category)
        return PromptSource(
            prompts=[(prompt.id, prompt.caption) for prompt in prompt_set.prompts],
            score_kwargs={"shapes_prompts": version, "world": world, "per_category": per_category},
            description=f"shapes world {world!r}, prompt set {version}, {per_category} per category",
        )
    path = Path(spec)
    if not path.is_file():
        raise UserError(f"prompt set {spec!r} is neither a built-in set (shapes-v1) nor an existing file")
    try:
        entries = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise UserError(f"{path}: line {error.lineno}: {error.msg}") from None
    if not isinstance(entries, list) or not entries:
        raise UserError(f"{path}: expected a non-empty JSON list of TIFA entries")
    prompts: dict[str, str] = {}
    for index, entry in enumerate(entries):
        if (
            not isinstance(entry, dict)
            or not isinstance(entry.get("id"), str | int)
            or "caption" not in entry
        ):
            raise UserError(f"{path}: entry {index} needs 'id' and 'caption'")
        prompts.setdefault(str(entry["id"]), str(entry["caption"]))
    has_questions = all(isinstance(entry, dict) and "question" in entry for entry in entries)
    return PromptSource(
        prompts=list(prompts.items()),
        score_kwargs={"questions": str(path)} if has_questions else {},
        description=f"{path} ({len(prompts)} prompts{', with questions' if has_questions else ''})",
    )
