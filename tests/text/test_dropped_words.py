"""Every encoder names the words of a caption it cannot see (issue 14, item 13: dropped without a warning)."""

from t2iscale.text import LearnedTextEncoder, load_text_encoder
from t2iscale.text.tiny import save_tiny_clip_text_encoder, save_tiny_t5_text_encoder


def test_learned_encoder_names_unknown_words_and_words_past_its_length():
    encoder = LearnedTextEncoder(
        ["a red circle", "next to the left of"], dim=8, max_length=6, layers=1, heads=2
    )
    assert encoder.dropped_words("a red zebra") == "zebra (not in the learned vocabulary)"
    assert encoder.dropped_words("A red circle, left of") == ""  # 6 tokens with [BOS]: all seen
    assert encoder.dropped_words("a purple hexagon next to a zebra") == (
        "purple, hexagon, zebra (not in the learned vocabulary); a zebra (past text.max_length=6)"
    )


def test_pretrained_encoders_name_what_truncation_cuts(tmp_path):
    clip = load_text_encoder(save_tiny_clip_text_encoder(tmp_path / "clip"), max_length=6)
    t5 = load_text_encoder(save_tiny_t5_text_encoder(tmp_path / "t5"), max_length=6)
    assert clip.dropped_words("a red cat") == t5.dropped_words("a red cat") == ""
    # CLIP keeps 4 words between its start and end tokens, T5 5 before its end token.
    assert clip.dropped_words("a red cat left of the dog") == "'of the dog' (3 tokens past max_length=6)"
    assert t5.dropped_words("a red cat left of the dog") == "'the dog' (2 tokens past max_length=6)"
