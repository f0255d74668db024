"""Structured questions about a scene and their one evaluator.

Every evaluation question carries a `query` (e.g. `{"op": "color_is", "shape": "circle", "color": "red"}`), so
answering it never needs English parsing. The same evaluator answers a query from a true scene (to check the
answer key of the prompt set) and from the oracle's parse of an image (to score generated images), so the two
can only disagree where the parse does.

Rules, chosen so that an answerer that sees nothing scores exactly the chance level of a balanced question set:
- the "referent" of a shape is the largest object of that shape (ties: leftmost, then topmost);
- a yes/no question about something absent is answered "no";
- a multiple-choice question whose answer is absent or not among the choices gets the first listed choice
  (the prompt set rotates where the right answer is listed).
"""

from __future__ import annotations

from typing import NamedTuple

from t2iscale.data.shapes.scene import Scene, relation
from t2iscale.data.shapes.world import WorldConfig

QUERY_OPS = ("exists", "count", "count_is", "color_of", "color_is", "shape_of", "relation_of", "relation_is")


class QueryObject(NamedTuple):
    """What a query can see of an object; `extent` is its box side (fraction of the image)."""

    shape: str
    color: str
    x: float
    y: float
    extent: float


def scene_query_objects(scene: Scene, world: WorldConfig) -> list[QueryObject]:
    return [QueryObject(o.shape, o.color, o.x, o.y, world.sizes[o.size]) for o in scene.objects]


def _matches(obj: QueryObject, shape: str | None, color: str | None) -> bool:
    return (shape is None or obj.shape == shape) and (color is None or obj.color == color)


def _referent(objects: list[QueryObject], shape: str | None, color: str | None = None) -> QueryObject | None:
    candidates = [o for o in objects if _matches(o, shape, color)]
    if not candidates:
        return None
    return min(candidates, key=lambda o: (-o.extent, o.x, o.y))


def _yes(value: bool) -> str:
    return "yes" if value else "no"


def answer_query(query: dict, objects: list[QueryObject], choices: list[str]) -> str:
    """The answer (one of `choices`) that `objects` imply for `query`."""
    op = query["op"]
    shape, color = query.get("shape"), query.get("color")
    if op == "exists":
        return _yes(any(_matches(o, shape, color) for o in objects))
    if op == "count_is":
        return _yes(sum(_matches(o, shape, None) for o in objects) == query["count"])
    if op == "count":
        answer = str(sum(_matches(o, shape, None) for o in objects))
    elif op == "color_is":
        referent = _referent(objects, shape)
        return _yes(referent is not None and referent.color == color)
    elif op == "color_of":
        referent = _referent(objects, shape)
        answer = referent.color if referent else None
    elif op == "shape_of":
        referent = _referent(objects, None)
        answer = referent.shape if referent else None
    elif op in ("relation_is", "relation_of"):
        a = _referent(objects, query["a"]["shape"], query["a"].get("color"))
        b = _referent(objects, query["b"]["shape"], query["b"].get("color"))
        found = a is not None and b is not None and a is not b
        where = relation(a.x, a.y, b.x, b.y) if found else None
        if op == "relation_is":
            return _yes(where == query["relation"])
        answer = where
    else:
        raise ValueError(f"unknown query op {op!r}; valid ops: {', '.join(QUERY_OPS)}")
    return answer if answer in choices else choices[0]
