"""Image-noun pairs of real captions (paper Sec. 5-6: data is scaled, and fitted as S = a·D^b, in image-noun pairs).

An image's noun pairs under a caption policy are the distinct nouns over every caption the policy can show it
(the shapes world's rule, `t2iscale.data.shapes.captions.noun_pairs`): `alt` its alt-text, `syn1` its top
synthetic caption, `syn5` its top five, `mix` all of those. An image without synthetic captions has 0 under a
policy that needs them, since training drops it there (`t2iscale.data.prepared.PreparedDataset`).

Nouns come from a real part-of-speech tagger the user points to: a spaCy pipeline saved on disk (`spacy.load(path)`,
offline; e.g. `en_core_web_sm`'s folder, or any pipeline whose tagger / attribute_ruler sets `pos_`). A token is a
noun when its coarse tag is NOUN; nouns are told apart by lemma (lower case; the text where the pipeline has no
lemmatizer). spaCy is an optional dependency (`pip install 't2iscale[nouns]'`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from t2iscale.data.caption_policy import CAPTION_POLICIES, SYNTHETIC_TOP_K
from t2iscale.errors import UserError

NOUN_TAG = "NOUN"
# Components that do not tag parts of speech: left out for speed where a pipeline has them.
_NOT_TAGGING = ("parser", "ner", "textcat", "textcat_multilabel", "entity_linker", "entity_ruler", "senter")


def policy_caption_indices(n_captions: int, policy: str) -> list[int]:
    """Which of a sample's captions (0 = alt-text, then synthetic best first) a policy can show."""
    synthetic = list(range(1, min(n_captions, 1 + SYNTHETIC_TOP_K)))
    if policy == "alt":
        return [0]
    if not synthetic:  # the policy needs synthetic captions: the sample is dropped in training
        return []
    return {"syn1": synthetic[:1], "syn5": synthetic, "mix": [0, *synthetic]}[policy]


class NounCounter:
    """Counts image-noun pairs with a spaCy pipeline loaded from `path` (see the module docstring)."""

    def __init__(self, path: str | Path, flag: str = "--noun-tagger"):
        path = Path(path)
        if not path.is_dir():
            raise UserError(f"{flag} {str(path)!r} is not a folder (a spaCy pipeline saved with nlp.to_disk)")
        try:
            import spacy
        except ImportError:
            raise UserError(
                f"{flag} needs spaCy, which is not installed: pip install 't2iscale[nouns]'"
            ) from None
        try:
            self.nlp = spacy.load(path)
        except (OSError, ValueError) as error:
            raise UserError(f"{flag} {str(path)!r} is not a spaCy pipeline: {error}") from None
        disabled = [name for name in self.nlp.pipe_names if name in _NOT_TAGGING]
        if disabled:
            self.nlp.select_pipes(disable=disabled)
        self.path = path

    def describe(self) -> dict:
        meta = self.nlp.meta
        return {
            "path": str(self.path.resolve()),
            "name": f"{meta.get('lang', '?')}_{meta.get('name', '?')}",
            "version": meta.get("version"),
            "pipeline": list(self.nlp.pipe_names),
            "counts": "distinct NOUN lemmas over the captions a policy can show, per image",
        }

    def nouns(self, texts: Sequence[str]) -> list[set[str]]:
        """The distinct nouns of each text."""
        found = []
        for doc in self.nlp.pipe(texts, batch_size=256):
            found.append({(token.lemma_ or token.text).lower() for token in doc if token.pos_ == NOUN_TAG})
        return found

    def count(self, caption_groups: Sequence[Sequence[str]]) -> list[list[int]]:
        """Per sample (its captions, alt-text first), its noun pairs under each policy, in CAPTION_POLICIES order."""
        flat = [text for group in caption_groups for text in group]
        nouns = self.nouns(flat)
        counts, start = [], 0
        for group in caption_groups:
            mine = nouns[start : start + len(group)]
            start += len(group)
            counts.append(
                [
                    len(set().union(*(mine[i] for i in policy_caption_indices(len(group), policy))))
                    for policy in CAPTION_POLICIES
                ]
            )
        return counts
