"""Captions of a scene, written from its scene graph, so every caption is true (paper Sec. 5, "data").

Each image gets, once and for all (seeded by (seed, index)), what a real image-text pair would have:

- `alt`: web-alt-text-like: short and partial (names one or two groups of objects, often not all), drops
  attributes at random, and may add words unrelated to the content ("clipart", "hd wallpaper"); with the
  world's `alt_noise`, that share of alt texts is filler words only.
- `synthetic`: five dense captions, best first. `synthetic[0]` (the `syn1` caption) names every object with
  its size (when the world has several), color and count, and the relation between each pair of neighbouring,
  uniquely describable objects. The other four say the same in other words: other templates, other orders,
  relation and shape synonyms.

Which of them a training step sees is the caption policy's choice (`t2iscale.data.caption_policy`).
No caption is ever an evaluation prompt verbatim (see `prompts.py` on the hold-out).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from t2iscale.data.shapes.phrases import (
    EVAL_PREFIX,
    OPPOSITE_RELATION,
    RELATION_SYNONYMS,
    caption_nouns,
    join_list,
    normalize_caption,
    noun_phrase,
    with_article,
)
from t2iscale.data.shapes.prompts import heldout_captions
from t2iscale.data.shapes.scene import Scene, ShapeObject, clear_relation
from t2iscale.data.shapes.world import WorldConfig

# Web alt-text noise: words that say nothing about what is in the image.
FILLER_WORDS = (
    "clipart",
    "stock image",
    "free vector",
    "icon",
    "hd wallpaper",
    "geometric shapes",
    "simple illustration",
    "flat design",
    "graphic",
    "minimal poster",
)
ALT_FRAMES = (
    "{m}",
    "{m}",
    "{m} {f}",
    "{f} {m}",
    "{m}, {f}",
    "photo of {m}",
    EVAL_PREFIX + " {m}",
)
HOLDOUT_REWORDING = "a picture of"  # replaces EVAL_PREFIX in the rare caption that equals an eval prompt


@dataclass
class SceneCaptions:
    alt: str
    synthetic: list[str]  # five, best first; synthetic[0] is the syn1 caption


@dataclass
class _Group:
    """Objects of one kind (same size, color, shape), described together ("two small red circles")."""

    shape: str
    color: str
    size: str | None
    members: list[ShapeObject]


def _groups(scene: Scene, world: WorldConfig) -> list[_Group]:
    groups: dict[tuple, _Group] = {}
    for obj in sorted(scene.objects, key=lambda o: (o.x, o.y)):  # reading order: left to right
        size = obj.size if world.mentions_size else None
        key = (size, obj.color, obj.shape)
        groups.setdefault(key, _Group(obj.shape, obj.color, size, [])).members.append(obj)
    return list(groups.values())


def _reference(obj: ShapeObject, scene: Scene, world: WorldConfig) -> str | None:
    """The shortest description that picks out `obj` alone ('circle', 'red circle', 'small red circle')."""
    attribute_sets = [("shape",), ("color", "shape")]
    if world.mentions_size:
        attribute_sets.append(("size", "color", "shape"))
    for attributes in attribute_sets:
        alike = [o for o in scene.objects if all(getattr(o, a) == getattr(obj, a) for a in attributes)]
        if len(alike) == 1:
            return " ".join(getattr(obj, a) for a in attributes)
    return None


def _relations(scene: Scene, world: WorldConfig) -> list[tuple[str, str, str]]:
    """(reference a, relation, reference b) for neighbours, left to right, among uniquely describable objects."""
    referable = [(o, _reference(o, scene, world)) for o in sorted(scene.objects, key=lambda o: (o.x, o.y))]
    referable = [(o, ref) for o, ref in referable if ref is not None]
    relations = []
    for (a, ref_a), (b, ref_b) in zip(referable, referable[1:]):
        rel = clear_relation(a, b, world)
        if rel is not None:
            relations.append((ref_a, rel, ref_b))
    return relations


class _Wording:
    """Word choices of one caption: canonical for syn1, with synonyms for the diverse captions."""

    def __init__(self, world: WorldConfig, rng: random.Random, synonyms: bool):
        self.world, self.rng, self.synonyms = world, rng, synonyms

    def shape(self, shape: str) -> str:
        options = self.world.shape_synonyms.get(shape, ())
        if self.synonyms and options and self.rng.random() < 0.5:
            return self.rng.choice(options)
        return shape

    def relation(self, rel: str) -> str:
        if self.synonyms and self.rng.random() < 0.6:
            return self.rng.choice(RELATION_SYNONYMS[rel])
        return rel

    def group(self, group: _Group, numeral_one: bool = False) -> str:
        phrase = noun_phrase(self.shape(group.shape), len(group.members), group.color, group.size)
        if numeral_one and len(group.members) == 1:
            phrase = "one " + phrase.split(" ", 1)[1]
        return phrase

    def reference(self, ref: str) -> str:
        *adjectives, shape = ref.split(" ")
        return " ".join([*adjectives, self.shape(shape)])


def _relation_sentences(relations, wording: _Wording, invert: bool = False) -> str:
    sentences = []
    for a, rel, b in relations:
        if invert:
            a, rel, b = b, OPPOSITE_RELATION[rel], a
        sentences.append(f"the {wording.reference(a)} is {wording.relation(rel)} the {wording.reference(b)}.")
    return " ".join(sentences)


def _synthetic(world: WorldConfig, groups: list[_Group], relations, rng: random.Random) -> list[str]:
    if not groups:  # only when a crowded draw lost all its objects
        return [
            "an empty gray background.",
            "a photo of an empty gray background",
            "there is nothing on the gray background.",
            "just a gray background.",
            "an image showing an empty gray background.",
        ]
    canonical = _Wording(world, rng, synonyms=False)
    varied = _Wording(world, rng, synonyms=True)

    def shuffled(items):
        items = list(items)
        rng.shuffle(items)
        return items

    # 1. canonical (syn1): every group left to right, then every stated relation.
    first = join_list([canonical.group(g) for g in groups]) + "."
    first = " ".join(filter(None, [first, _relation_sentences(relations, canonical)]))

    # 2. "a photo of ..." in a random order, relations as a "with" clause.
    second = f"{EVAL_PREFIX} " + join_list([varied.group(g) for g in shuffled(groups)])
    if relations:
        clauses = [
            f"the {varied.reference(a)} {varied.relation(r)} the {varied.reference(b)}"
            for a, r, b in relations
        ]
        second += ", with " + join_list(clauses)

    # 3. "there is/are ...", relation sentences.
    order = shuffled(groups)
    verb = "is" if len(order[0].members) == 1 else "are"
    third = f"there {verb} " + join_list([varied.group(g) for g in order]) + "."
    third = " ".join(filter(None, [third, _relation_sentences(relations, varied)]))

    # 4. relation first, GenEval's position phrasing, naming each object by the shortest description that picks
    # it out ("a circle left of a square"; "a red circle left of a blue circle"): like a captioner that leaves out
    # what the relation does not need. Without it, no training caption states a relation between bare shapes,
    # and GenEval-style position prompts ("a photo of a circle left of a square") would be out of distribution.
    # Else numerals.
    if relations:
        a, rel, b = relations[0]
        rest = [g for g in groups if not (len(g.members) == 1 and (_describes(a, g) or _describes(b, g)))]
        fourth = (
            f"{with_article(varied.reference(a))} {varied.relation(rel)} {with_article(varied.reference(b))}"
        )
        if rest:
            fourth += " and " + join_list([varied.group(g) for g in rest])
        fourth = " ".join([fourth + ".", _relation_sentences(relations[1:], varied)]).strip()
    else:
        fourth = join_list([varied.group(g, numeral_one=True) for g in shuffled(groups)]) + "."

    # 5. "an image showing ..." right to left, relations stated from the other side.
    fifth = "an image showing " + join_list([varied.group(g) for g in reversed(groups)]) + "."
    fifth = " ".join(filter(None, [fifth, _relation_sentences(relations, varied, invert=True)]))
    return [first, second, third, fourth, fifth]


def _describes(ref: str, group: _Group) -> bool:
    words = ref.split(" ")
    return words[-1] == group.shape and all(w in (group.color, group.size) for w in words[:-1])


def _alt(groups: list[_Group], rng: random.Random, noise: float = 0.0) -> str:
    # `noise` draws only when set, so a world without it keeps its captions exactly.
    if not groups or (noise and rng.random() < noise):
        return rng.choice(FILLER_WORDS)
    chosen = rng.sample(groups, 2 if len(groups) > 1 and rng.random() < 0.35 else 1)
    mentions = []
    for group in chosen:
        color = group.color if rng.random() < 0.6 else None
        size = group.size if rng.random() < 0.3 else None
        count = len(group.members)
        if count > 1 and rng.random() < 0.5:
            mentions.append(noun_phrase(group.shape, count, color, size, number=False))  # "red circles"
        else:
            mentions.append(noun_phrase(group.shape, count, color, size, number=rng.random() < 0.7))
    text = rng.choice((" and ", ", ")).join(mentions)
    return rng.choice(ALT_FRAMES).format(m=text, f=rng.choice(FILLER_WORDS))


def scene_captions(scene: Scene, world: WorldConfig, rng: random.Random) -> SceneCaptions:
    """The alt text and the five synthetic captions of a scene; none of them is an evaluation prompt."""
    groups = _groups(scene, world)
    relations = _relations(scene, world)
    heldout = heldout_captions(world)

    def held_out(caption: str) -> str:
        if normalize_caption(caption) in heldout:
            # Every eval prompt starts with EVAL_PREFIX, so re-wording the frame is enough.
            caption = caption.replace(EVAL_PREFIX, HOLDOUT_REWORDING, 1)
        return caption

    synthetic = [held_out(c) for c in _synthetic(world, groups, relations, rng)]
    return SceneCaptions(alt=held_out(_alt(groups, rng, world.alt_noise)), synthetic=synthetic)


def policy_captions(captions: SceneCaptions, policy: str) -> list[str]:
    """Every caption the policy can show for this image."""
    if policy == "alt":
        return [captions.alt]
    if policy == "syn1":
        return captions.synthetic[:1]
    if policy == "syn5":
        return captions.synthetic[:5]
    return [captions.alt, *captions.synthetic[:5]]


def noun_pairs(captions: SceneCaptions, policy: str, world: WorldConfig) -> int:
    """Image-noun pairs of one image under a policy: distinct nouns over the captions it can show."""
    nouns: set[str] = set()
    for caption in policy_captions(captions, policy):
        nouns |= caption_nouns(caption, world)
    return len(nouns)
