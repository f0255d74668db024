"""The shapes world's evaluation prompts (GenEval's categories) with TIFA-format questions (paper Sec. 3).

A prompt set is fixed by (world, version, per_category): prompts are drawn without replacement from every
prompt a category allows, in an order seeded by the version and the world, so the same arguments always give the
same prompts, and a larger `per_category` extends a smaller one.

Prompts read like GenEval's ("a photo of a red circle and a blue square") in the words of the training captions.

Hold-out (why string-level): no training caption is ever an evaluation prompt, word for word; the caption
generator re-words the rare caption that would be (`heldout_captions`). Compositions are NOT held out: every
color-shape pair and relation also occurs in training. The paper evaluates web-trained models on TIFA / GenEval
prompts whose concepts are all in the training distribution; what it measures is whether a model *binds* the
right attributes, counts and relations for a new sentence, not whether it generalizes to unseen concepts. The CPU
demo's tiny models must also be able to learn the evaluated concepts at all, or no scaling trend could show.

Questions: each kind of yes/no question (existence, count, color, relation) comes as a pair with one "yes" and
one "no" answer, and the right choice of each multiple-choice question is listed at a rotating position, so an
answerer that does not look at the image (always "yes", always "no", always the first choice) scores the chance
level, `chance_level(questions)`, and so does one that sees random objects everywhere. Each question carries TIFA's
keys plus `category` and a structured `query` (see `queries.py`) that the oracle answers without parsing English.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass, field
from functools import lru_cache

from t2iscale.data.shapes.phrases import (
    EVAL_PREFIX,
    OPPOSITE_RELATION,
    normalize_caption,
    noun_phrase,
    number_word,
    plural,
    with_article,
)
from t2iscale.data.shapes.queries import answer_query, scene_query_objects
from t2iscale.data.shapes.scene import Scene, ShapeObject, clear_relation, place
from t2iscale.data.shapes.world import RELATIONS, WorldConfig, resolve_world
from t2iscale.errors import UserError

PROMPT_SET_VERSIONS = ("v1",)
CATEGORIES = ("single_object", "two_object", "counting", "colors", "position", "color_attr")
MAX_CHOICES = 4  # TIFA's multiple-choice questions have 4 choices


@dataclass(frozen=True)
class EvalPrompt:
    """One prompt: `spec` is GenEval's `{"include": [{"shape", "count", "color"?, "position"?: [rel, i]}]}`."""

    id: str
    caption: str
    category: str
    spec: dict
    questions: tuple[dict, ...]
    world: WorldConfig = field(repr=False, compare=False)

    def to_dict(self) -> dict:
        return {"id": self.id, "caption": self.caption, "category": self.category, "spec": self.spec}


@dataclass
class PromptSet:
    world: WorldConfig
    version: str
    prompts: list[EvalPrompt]

    def questions(self) -> list[dict]:
        """All questions in TIFA format (plus `category` and `query`), prompt by prompt."""
        return [dict(q) for prompt in self.prompts for q in prompt.questions]

    def chance_level(self) -> float:
        return chance_level(self.questions())

    def by_category(self) -> dict[str, list[EvalPrompt]]:
        groups: dict[str, list[EvalPrompt]] = {}
        for prompt in self.prompts:
            groups.setdefault(prompt.category, []).append(prompt)
        return groups


def chance_level(questions: list[dict]) -> float:
    """Mean over prompts of the mean over their questions of 1/len(choices): a uniform guesser's TIFA score."""
    per_prompt: dict[str, list[float]] = {}
    for q in questions:
        per_prompt.setdefault(q["id"], []).append(1.0 / len(q["choices"]))
    return sum(sum(v) / len(v) for v in per_prompt.values()) / max(len(per_prompt), 1)


# -- which prompts a category allows (its "specs") and their captions ----------------------------------------


def _specs(world: WorldConfig, category: str) -> list[tuple]:
    shapes, colors, counts = world.shapes, world.color_names, range(2, world.max_count + 1)
    two_objects = world.max_objects >= 2
    if category == "single_object":
        return [(s,) for s in shapes]
    if category == "colors":
        return [(c, s) for c in colors for s in shapes]
    if not two_objects:
        return []
    if category == "two_object":
        return list(itertools.permutations(shapes, 2))
    if category == "counting":
        return [(s, n) for s in shapes for n in counts]
    if category == "position":
        return [(s1, rel, s2) for s1, s2 in itertools.permutations(shapes, 2) for rel in RELATIONS]
    if category == "color_attr":
        return [
            (c1, s1, c2, s2)
            for s1, s2 in itertools.permutations(shapes, 2)
            for c1, c2 in itertools.permutations(colors, 2)
        ]
    raise UserError(f"unknown prompt category {category!r}; categories: {', '.join(CATEGORIES)}")


def _caption_and_include(category: str, spec: tuple) -> tuple[str, list[dict]]:
    if category == "single_object":
        (s,) = spec
        return f"{EVAL_PREFIX} {with_article(s)}", [{"shape": s, "count": 1}]
    if category == "two_object":
        s1, s2 = spec
        body = f"{with_article(s1)} and {with_article(s2)}"
        return f"{EVAL_PREFIX} {body}", [{"shape": s1, "count": 1}, {"shape": s2, "count": 1}]
    if category == "counting":
        s, n = spec
        return f"{EVAL_PREFIX} {number_word(n)} {plural(s)}", [{"shape": s, "count": n}]
    if category == "colors":
        c, s = spec
        return f"{EVAL_PREFIX} {noun_phrase(s, color=c)}", [{"shape": s, "count": 1, "color": c}]
    if category == "position":
        # GenEval's convention: the first object named is include[1], placed relative to include[0].
        s1, rel, s2 = spec
        include = [{"shape": s2, "count": 1}, {"shape": s1, "count": 1, "position": [rel, 0]}]
        return f"{EVAL_PREFIX} {with_article(s1)} {rel} {with_article(s2)}", include
    c1, s1, c2, s2 = spec
    include = [{"shape": s1, "count": 1, "color": c1}, {"shape": s2, "count": 1, "color": c2}]
    return f"{EVAL_PREFIX} {noun_phrase(s1, color=c1)} and {noun_phrase(s2, color=c2)}", include


@lru_cache(maxsize=16)
def _heldout(fingerprint: str) -> frozenset[str]:
    world = WorldConfig.model_validate_json(fingerprint)
    return frozenset(
        normalize_caption(_caption_and_include(category, spec)[0])
        for category in CATEGORIES
        for spec in _specs(world, category)
    )


def heldout_captions(world: WorldConfig) -> frozenset[str]:
    """Every evaluation prompt the world allows (any `per_category`), normalized: never a training caption."""
    return _heldout(world.fingerprint)


# -- questions ---------------------------------------------------------------------------------------------


class _Questions:
    """Collects one prompt's questions; multiple-choice answers go to a rotating position."""

    def __init__(self, prompt_id: str, caption: str, category: str, rng: random.Random, rotation: int):
        self.common = {"id": prompt_id, "caption": caption}
        self.category, self.rng, self.rotation = category, rng, rotation
        self.items: list[dict] = []

    def _add(self, question, choices, answer, element_type, element, query):
        self.items.append(
            {
                **self.common,
                "question": question,
                "choices": choices,
                "answer": answer,
                "element_type": element_type,
                "element": element,
                "category": self.category,
                "query": query,
            }
        )

    def yes_no(self, question, answer: bool, element_type, element, query):
        self._add(question, ["yes", "no"], "yes" if answer else "no", element_type, element, query)

    def choice(self, question, answer: str, pool, element_type, element, query):
        others = [c for c in pool if c != answer]
        self.rng.shuffle(others)
        choices = others[: MAX_CHOICES - 1]
        choices.insert(self.rotation % (len(choices) + 1), answer)
        self.rotation += 1
        self._add(question, choices, answer, element_type, element, query)

    # The question kinds, worded once.
    def exists(self, shape, answer):
        q = {"op": "exists", "shape": shape}
        self.yes_no(f"is there {with_article(shape)}?", answer, "object", shape, q)

    def count_is(self, shape, count, answer):
        q = {"op": "count_is", "shape": shape, "count": count}
        text = (
            f"is there exactly one {shape}?"
            if count == 1
            else f"are there exactly {number_word(count)} {plural(shape)}?"
        )
        self.yes_no(text, answer, "counting", number_word(count), q)

    def color_is(self, shape, color, answer):
        q = {"op": "color_is", "shape": shape, "color": color}
        self.yes_no(f"is the {shape} {color}?", answer, "color", color, q)

    def relation_is(self, shape_a, rel, shape_b, answer):
        q = {"op": "relation_is", "a": {"shape": shape_a}, "b": {"shape": shape_b}, "relation": rel}
        self.yes_no(f"is the {shape_a} {rel} the {shape_b}?", answer, "spatial", rel, q)


def _existence_pair(qs: _Questions, world: WorldConfig, present: str, named: set[str], rng) -> None:
    """ "Is there a <named shape>?" (yes) and "is there a <shape the prompt does not name>?" (no).

    In a world with no unnamed shape, a count pair (exactly one: yes, exactly two: no) takes its place.
    """
    absent = [s for s in world.shapes if s not in named]
    if absent:
        qs.exists(present, True)
        qs.exists(rng.choice(absent), False)
    else:
        qs.count_is(present, 1, True)
        qs.count_is(present, 2, False)


def _other(pool, exclude, rng):
    return rng.choice([x for x in pool if x not in exclude])


def _build_questions(qs: _Questions, world: WorldConfig, category: str, spec: tuple) -> None:
    """Each kind of yes/no question comes as a (yes, no) pair, so that an answerer that sees nothing ("no" to
    all) and one that sees objects everywhere ("yes" to existence, random attributes) both score chance."""
    rng = qs.rng
    if category == "single_object":
        (s,) = spec
        _existence_pair(qs, world, s, {s}, rng)
        qs.choice("what shape is in the picture?", s, world.shapes, "shape", s, {"op": "shape_of"})
    elif category == "two_object":
        s1, s2 = spec
        _existence_pair(qs, world, s1, {s1, s2}, rng)
        qs.count_is(s2, 1, True)
        qs.count_is(s1, 2, False)
    elif category == "counting":
        s, n = spec
        _existence_pair(qs, world, s, {s}, rng)
        qs.count_is(s, n, True)
        qs.count_is(s, rng.choice([n - 1, n + 1]), False)
        counts = [str(k) for k in range(1, world.max_count + 1)]
        q = {"op": "count", "shape": s}
        qs.choice(f"how many {plural(s)} are there?", str(n), counts, "counting", number_word(n), q)
    elif category == "colors":
        c, s = spec
        _existence_pair(qs, world, s, {s}, rng)
        if len(world.colors) > 1:
            qs.color_is(s, c, True)
            qs.color_is(s, _other(world.color_names, {c}, rng), False)
        qs.choice(f"what color is the {s}?", c, world.color_names, "color", c, {"op": "color_of", "shape": s})
    elif category == "position":
        s1, rel, s2 = spec
        _existence_pair(qs, world, s1, {s1, s2}, rng)
        qs.relation_is(s1, rel, s2, True)
        qs.relation_is(s1, OPPOSITE_RELATION[rel], s2, False)
        q = {"op": "relation_of", "a": {"shape": s1}, "b": {"shape": s2}}
        qs.choice(f"where is the {s1} relative to the {s2}?", rel, RELATIONS, "spatial", rel, q)
    elif category == "color_attr":
        c1, s1, c2, s2 = spec
        _existence_pair(qs, world, rng.choice([s1, s2]), {s1, s2}, rng)
        qs.color_is(s1, c1, True)
        qs.color_is(s2, c2, True)
        # The swapped binding is the question that tells attribute binding from a bag of words.
        qs.color_is(s1, c2, False)
        qs.color_is(s2, c1, False)
        for s, c in ((s1, c1), (s2, c2)):
            qs.choice(
                f"what color is the {s}?", c, world.color_names, "color", c, {"op": "color_of", "shape": s}
            )


# -- the prompt set ----------------------------------------------------------------------------------------


def eval_prompt_set(world: WorldConfig | str, version: str = "v1", per_category: int = 50) -> PromptSet:
    """Up to `per_category` prompts of each GenEval category (fewer where the world allows fewer)."""
    world = resolve_world(world)
    if version not in PROMPT_SET_VERSIONS:
        raise UserError(f"unknown prompt set version {version!r}; versions: {', '.join(PROMPT_SET_VERSIONS)}")
    if per_category < 1:
        raise UserError(f"per_category must be at least 1, got {per_category}")
    prompts = []
    for category in CATEGORIES:
        specs = _specs(world, category)
        random.Random(f"{version}/{category}/{world.fingerprint}").shuffle(specs)
        for k, spec in enumerate(specs[:per_category]):
            prompt_id = f"shapes_{version}_{category}_{k:03d}"
            caption, include = _caption_and_include(category, spec)
            qs = _Questions(prompt_id, caption, category, random.Random(f"{version}/{prompt_id}"), rotation=k)
            _build_questions(qs, world, category, spec)
            prompts.append(
                EvalPrompt(prompt_id, caption, category, {"include": include}, tuple(qs.items), world)
            )
    return PromptSet(world, version, prompts)


EXTRA_LAYOUT_ATTEMPTS = 20


def ground_truth_scene(prompt: EvalPrompt, seed: int = 0) -> Scene:
    """A scene that shows exactly what the prompt says (unnamed colors and sizes drawn from `seed`)."""
    world = prompt.world
    rng = random.Random(f"ground-truth/{prompt.id}/{prompt.caption}/{seed}")
    kinds = [
        (entry["shape"], entry.get("color") or rng.choice(world.color_names), rng.choice(world.size_names))
        for entry in prompt.spec["include"]
        for _ in range(entry["count"])
    ]
    accept = None
    for position_index, entry in enumerate(prompt.spec["include"]):
        if "position" in entry:
            rel, anchor_index = entry["position"]

            def accept(centers, rel=rel, a=position_index, b=anchor_index):
                obj_a, obj_b = (ShapeObject("", "", "", *centers[i]) for i in (a, b))
                return clear_relation(obj_a, obj_b, world) == rel

    # Crowded prompts fall back to the smallest size (placement is rejection sampling). A relation prompt can also
    # miss by chance (1 in 2,000 layouts of a 5-shape world with sides 0.34), so the smallest size gets more tries:
    # only draws that used to fail change.
    smallest = [(s, c, world.size_names[0]) for s, c, _ in kinds]
    for attempt_kinds in (kinds, *[smallest] * (1 + EXTRA_LAYOUT_ATTEMPTS)):
        centers = place([world.sizes[size] for _, _, size in attempt_kinds], world, rng, accept)
        if centers is not None:
            return Scene(
                [
                    ShapeObject(shape, color, size, round(x, 4), round(y, 4))
                    for (shape, color, size), (x, y) in zip(attempt_kinds, centers)
                ]
            )
    raise UserError(
        f"world {world.name!r} cannot lay out prompt {prompt.id!r} ({prompt.caption!r}); objects too big"
    )


def check_answer_key(prompt: EvalPrompt, scene: Scene) -> list[str]:
    """The answers a true scene implies for each of the prompt's questions (tests compare them to `answer`)."""
    objects = scene_query_objects(scene, prompt.world)
    return [answer_query(q["query"], objects, q["choices"]) for q in prompt.questions]
