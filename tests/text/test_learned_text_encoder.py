import torch

from t2iscale.text import LearnedTextEncoder, load_text_encoder
from t2iscale.text.word_tokenizer import BOS, PAD, SPECIAL_TOKENS, UNK

VOCAB = ["a", "red", "blue", "circle", "square", "left of", "two"]


def tiny_encoder(**overrides) -> LearnedTextEncoder:
    torch.manual_seed(0)
    options = {"dim": 32, "max_length": 8, "layers": 2, "heads": 4} | overrides
    return LearnedTextEncoder(VOCAB, **options)


def test_tokenizer_splits_words_case_and_punctuation_insensitively():
    encoder = tiny_encoder()
    ids, mask = encoder.tokenize(["A RED circle, left-of two!", "a red circle left of two"])
    assert torch.equal(ids[0], ids[1])
    tokens = [encoder.tokenizer.id_to_token(int(i)) for i in ids[0]]
    assert tokens == [BOS, "a", "red", "circle", "left", "of", "two", PAD]
    assert mask[0].tolist() == [True] * 7 + [False]


def test_unknown_words_empty_captions_and_truncation():
    encoder = tiny_encoder()
    ids, mask = encoder.tokenize(["a green circle", "", "a red circle left of two blue squares"])
    assert encoder.tokenizer.id_to_token(int(ids[0, 2])) == UNK
    # the empty caption (caption dropout) still has its [BOS] token
    assert mask[1].tolist() == [True] + [False] * 7
    assert ids.shape == (3, 8) and bool(mask[2].all())
    assert encoder.vocab == ["a", "red", "blue", "circle", "square", "left", "of", "two"]
    assert encoder.tokenizer.get_vocab_size() == len(SPECIAL_TOKENS) + len(encoder.vocab)


def test_encode_shapes_mask_and_zeroed_padding():
    encoder = tiny_encoder()
    assert encoder.trainable and encoder.dim == 32 and encoder.max_length == 8
    text_ctx, text_mask = encoder.encode(["a red circle", "two blue squares left of a circle"])
    assert text_ctx.shape == (2, 8, 32) and text_ctx.dtype == torch.float32
    assert text_mask.dtype == torch.bool and text_mask.sum(1).tolist() == [4, 8]
    assert torch.all(text_ctx[0, 4:] == 0) and torch.all(text_ctx[0, :4].abs().sum(-1) > 0)


def test_padding_does_not_change_real_tokens():
    encoder = tiny_encoder().eval()
    alone, _ = encoder.encode(["a red circle"])
    batched, _ = encoder.encode(["a red circle", "two blue squares left of a circle"])
    torch.testing.assert_close(alone[0], batched[0], atol=1e-5, rtol=1e-5)


def test_gradients_reach_every_parameter():
    encoder = tiny_encoder()
    text_ctx, _ = encoder.encode(["a red circle", "two squares"])
    text_ctx.pow(2).sum().backward()
    assert all(p.grad is not None for p in encoder.parameters())
    assert encoder.token_embedding.weight.grad.abs().sum() > 0


def test_save_and_load_round_trip(tmp_path):
    encoder = tiny_encoder().eval()
    encoder.save(tmp_path / "enc")
    assert {p.name for p in (tmp_path / "enc").iterdir()} >= {"tokenizer.json", "model.safetensors"}
    loaded = load_text_encoder(tmp_path / "enc").eval()
    assert isinstance(loaded, LearnedTextEncoder) and loaded.vocab == encoder.vocab
    assert loaded.describe() == encoder.describe()
    captions = ["a red circle", "two blue squares", ""]
    torch.testing.assert_close(loaded.encode(captions), encoder.encode(captions))
