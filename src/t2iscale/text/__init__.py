"""Text encoders behind one interface: learned (shapes world) or frozen pretrained from a local directory."""

from t2iscale.text.base import TextEncoder
from t2iscale.text.learned import LearnedTextEncoder
from t2iscale.text.load import load_described_text_encoder, load_text_encoder
from t2iscale.text.pretrained import PretrainedTextEncoder

__all__ = [
    "LearnedTextEncoder",
    "PretrainedTextEncoder",
    "TextEncoder",
    "load_described_text_encoder",
    "load_text_encoder",
]
