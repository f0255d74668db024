"""A tiny random BLIP VQA model saved to disk, for the tests that load one through the real loader."""

import torch


def save_tiny_blip(directory, words: list[str], favour_token: str | None = None):
    """Save a 1-layer BLIP (hidden 32, 32 px images) whose tokenizer knows `words` (the special tokens first) to
    `directory`; returns (model, tokenizer, vocab). `favour_token`: make the answer decoder strongly prefer it."""
    from transformers import (
        BertTokenizer,
        BlipConfig,
        BlipForQuestionAnswering,
        BlipImageProcessor,
        BlipProcessor,
    )

    vocab = {word: index for index, word in enumerate(words)}
    tokenizer = BertTokenizer(vocab=vocab, do_lower_case=True, bos_token="[DEC]")
    small = dict(hidden_size=32, intermediate_size=37, num_hidden_layers=1, num_attention_heads=4)
    config = BlipConfig(
        text_config=dict(
            small,
            vocab_size=len(vocab),
            encoder_hidden_size=32,
            max_position_embeddings=32,
            bos_token_id=vocab["[DEC]"],
            pad_token_id=vocab["[PAD]"],
            sep_token_id=vocab["[SEP]"],
        ),
        vision_config=dict(small, image_size=32, patch_size=8),
    )
    torch.manual_seed(0)
    model = BlipForQuestionAnswering(config)
    if favour_token is not None:
        with torch.no_grad():
            model.text_decoder.cls.predictions.bias[vocab[favour_token]] += 30.0
    model.save_pretrained(directory)
    processor = BlipProcessor(
        image_processor=BlipImageProcessor(size={"height": 32, "width": 32}), tokenizer=tokenizer
    )
    processor.save_pretrained(directory)
    return model, tokenizer, vocab
