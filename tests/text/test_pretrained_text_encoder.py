import json
import shutil

import pytest
import torch
from transformers import CLIPConfig, CLIPModel, CLIPTextModel, T5EncoderModel

from t2iscale.errors import UserError
from t2iscale.text import PretrainedTextEncoder, load_text_encoder
from t2iscale.text.tiny import save_tiny_clip_text_encoder, save_tiny_t5_text_encoder

CAPTIONS = ["a red cat left of the dog", "two blue square", ""]


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory):
    return save_tiny_clip_text_encoder(tmp_path_factory.mktemp("clip"), max_length=16)


@pytest.fixture(scope="module")
def t5_dir(tmp_path_factory):
    return save_tiny_t5_text_encoder(tmp_path_factory.mktemp("t5"))


def clip_hidden_states(directory, token_ids):
    model = CLIPTextModel.from_pretrained(directory, local_files_only=True).eval()
    with torch.no_grad():
        output = model(input_ids=token_ids, output_hidden_states=True)
    return model, output


def test_clip_loads_frozen_with_sd2_defaults(clip_dir):
    encoder = load_text_encoder(clip_dir)
    assert isinstance(encoder, PretrainedTextEncoder) and encoder.model_type == "clip_text_model"
    assert not encoder.trainable and not any(p.requires_grad for p in encoder.parameters())
    assert (encoder.dim, encoder.max_length, encoder.layer, encoder.final_norm) == (
        32,
        16,
        "penultimate",
        True,
    )
    encoder.train()
    assert not encoder.model.training  # stays frozen in eval mode


def test_clip_penultimate_layer_with_final_norm_is_the_sd2_context(clip_dir):
    encoder = load_text_encoder(clip_dir)
    text_ctx, text_mask = encoder.encode(CAPTIONS)
    assert text_ctx.shape == (3, 16, 32) and text_mask.shape == (3, 16) and text_mask.dtype == torch.bool
    # one token per word (the tiny vocabulary spells them) + start and end tokens; the empty caption has 2
    assert text_mask.sum(1).tolist() == [9, 5, 2]
    token_ids, _ = encoder.tokenize(CAPTIONS)
    model, output = clip_hidden_states(clip_dir, token_ids)
    torch.testing.assert_close(text_ctx, model.final_layer_norm(output.hidden_states[-2]))


def test_clip_layer_choices(clip_dir):
    token_ids, _ = load_text_encoder(clip_dir).tokenize(CAPTIONS)
    _, output = clip_hidden_states(clip_dir, token_ids)
    last, _ = load_text_encoder(clip_dir, layer="last").encode(CAPTIONS)
    torch.testing.assert_close(last, output.last_hidden_state)
    sdxl_style, _ = load_text_encoder(clip_dir, final_norm=False).encode(CAPTIONS)
    torch.testing.assert_close(sdxl_style, output.hidden_states[-2])


def test_save_keeps_options(clip_dir, tmp_path):
    encoder = load_text_encoder(clip_dir, layer="last", max_length=8, dtype="bfloat16")
    encoder.save(tmp_path / "saved")
    loaded = load_text_encoder(tmp_path / "saved")
    assert loaded.options() == {"layer": "last", "max_length": 8, "final_norm": True, "dtype": "bfloat16"}
    text_ctx, text_mask = loaded.encode(CAPTIONS)
    assert text_ctx.dtype == torch.bfloat16 and text_ctx.shape == (3, 8, 32)
    torch.testing.assert_close(text_ctx, encoder.encode(CAPTIONS)[0])


def test_pipeline_folder_layout(clip_dir, tmp_path):
    shutil.copytree(clip_dir, tmp_path / "pipe" / "text_encoder")
    (tmp_path / "pipe" / "tokenizer").mkdir()
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (tmp_path / "pipe" / "text_encoder" / name).rename(tmp_path / "pipe" / "tokenizer" / name)
    encoder = load_text_encoder(tmp_path / "pipe")
    torch.testing.assert_close(encoder.encode(CAPTIONS)[0], load_text_encoder(clip_dir).encode(CAPTIONS)[0])


def test_full_clip_checkpoint_loads_its_text_tower(tmp_path):
    tiny = save_tiny_clip_text_encoder(tmp_path / "tokenizer_source")
    vocab_size = json.loads((tiny / "config.json").read_text())["vocab_size"]
    torch.manual_seed(0)
    text = {"vocab_size": vocab_size, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2}
    text |= {"num_attention_heads": 2, "max_position_embeddings": 16, "bos_token_id": 0, "eos_token_id": 1}
    vision = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2}
    vision |= {"image_size": 32, "patch_size": 16}
    model = CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=16)).eval()
    model.save_pretrained(tmp_path / "clip")
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(tiny / name, tmp_path / "clip" / name)
    encoder = load_text_encoder(tmp_path / "clip", layer="last")
    assert encoder.model_type == "clip"
    token_ids, _ = encoder.tokenize(CAPTIONS)
    with torch.no_grad():
        expected = model.text_model(input_ids=token_ids).last_hidden_state
    torch.testing.assert_close(encoder.encode(CAPTIONS)[0], expected)


def test_t5_uses_the_mask_and_last_layer(t5_dir):
    encoder = load_text_encoder(t5_dir)
    assert (encoder.model_type, encoder.layer, encoder.max_length, encoder.dim) == ("t5", "last", 120, 32)
    text_ctx, text_mask = encoder.encode(CAPTIONS)
    assert text_ctx.shape == (3, 120, 32)
    assert text_mask.sum(1).tolist() == [8, 4, 1]  # one piece per word + </s>
    token_ids, _ = encoder.tokenize(CAPTIONS)
    model = T5EncoderModel.from_pretrained(t5_dir, local_files_only=True).eval()
    with torch.no_grad():
        expected = model(input_ids=token_ids, attention_mask=text_mask.long()).last_hidden_state
    torch.testing.assert_close(text_ctx, expected)
    # with the mask, real tokens do not depend on how much padding follows
    short = load_text_encoder(t5_dir, max_length=10).encode(CAPTIONS)[0]
    torch.testing.assert_close(short[0, :8], text_ctx[0, :8], atol=1e-5, rtol=1e-5)


def test_t5_penultimate_layer(t5_dir):
    encoder = load_text_encoder(t5_dir, layer="penultimate", final_norm=False, max_length=12)
    token_ids, mask = encoder.tokenize(CAPTIONS)
    model = T5EncoderModel.from_pretrained(t5_dir, local_files_only=True).eval()
    with torch.no_grad():
        output = model(input_ids=token_ids, attention_mask=mask.long(), output_hidden_states=True)
    torch.testing.assert_close(encoder.encode(CAPTIONS)[0], output.hidden_states[-2])
    with pytest.raises(UserError, match="final_norm"):
        load_text_encoder(t5_dir, layer="last", final_norm=False)


def test_bad_directories_are_user_errors(tmp_path, t5_dir):
    with pytest.raises(UserError, match="does not exist"):
        load_text_encoder(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="config.json"):
        load_text_encoder(tmp_path / "empty")
    shutil.copytree(t5_dir, tmp_path / "bert")
    config = json.loads((tmp_path / "bert" / "config.json").read_text())
    (tmp_path / "bert" / "config.json").write_text(json.dumps(config | {"model_type": "bert"}))
    with pytest.raises(UserError, match="'bert' is not a supported"):
        load_text_encoder(tmp_path / "bert")
    with pytest.raises(UserError, match="unknown text encoder layer"):
        load_text_encoder(t5_dir, layer="middle")
