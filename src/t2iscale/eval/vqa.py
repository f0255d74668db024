"""VQA backends for TIFA: one interface, any answerer (paper Sec. 3, "evaluation": TIFA's VQA step).

The TIFA scorer (`t2iscale.eval.tifa`) only needs `answer_all(image, questions) -> list[str]`, one answer
per question, each one of that question's `choices`. Two backends satisfy it:

- `t2iscale.eval.oracle.OracleVQA` — the exact scene parser of the shapes world;
- `BlipVQA` (here) — a transformers BLIP VQA model (`BlipForQuestionAnswering` + `BlipProcessor`) loaded from
  a local directory, for real images.

How `BlipVQA` answers a multiple-choice question: it ranks the choices by their likelihood under the answer
decoder, given the image and the question, and returns the most likely one. This is BLIP's own "rank the
candidate answers" VQA mode (Li et al., BLIP, 2022), chosen over TIFA's original "generate freely, then map the
answer to the closest choice" because it always yields a valid choice, needs no extra sentence-embedding model,
and is deterministic. A choice's score is the sum of log-probabilities of its tokens *and* the closing [SEP]
token, so a choice that is a prefix of another ("red" vs "red car") is not favoured for being short.

Probabilities (for Soft-TIFA and VQAScore, `t2iscale.eval.judges`): `choice_probabilities` normalizes the
choices' likelihoods over the candidates; `answer_probabilities` is the decoder's unnormalized probability of one
answer (VQAScore's P("yes")).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from t2iscale.errors import UserError


@runtime_checkable
class VQABackend(Protocol):
    """Anything that answers TIFA questions about one image.

    `image` is np.uint8 (H, W, 3) RGB; `questions` are TIFA-format dicts (`question`, `choices`, ...; extra keys
    such as the shapes world's structured `query` pass through untouched). Returns one answer per question,
    in order, each one of that question's `choices`.
    """

    def answer_all(self, image: np.ndarray, questions: list[dict]) -> list[str]: ...


def backend_name(backend: Any) -> str:
    """A short description of a backend for result files."""
    describe = getattr(backend, "describe", None)
    return describe() if callable(describe) else type(backend).__name__


class BlipVQA:
    """A BLIP VQA model from a local directory that answers multiple choice by ranking choice likelihoods.

    The directory holds what `BlipForQuestionAnswering.save_pretrained` and `BlipProcessor.save_pretrained`
    write (e.g. a local copy of Salesforce/blip-vqa-base or blip-vqa-capfilt-large). Nothing is downloaded.
    """

    def __init__(self, model, processor, source: str = "", device: str = "cpu"):
        self.model = model.eval().to(device)
        self.processor = processor
        self.source = source
        self.device = device
        # The decoder starts answers with the [DEC] token (text_config.bos_token_id) instead of [CLS].
        self.decoder_start_token_id = model.config.text_config.bos_token_id
        self.pad_token_id = model.config.text_config.pad_token_id

    @classmethod
    def from_pretrained(cls, model_dir: str | Path, device: str = "cpu") -> BlipVQA:
        from transformers import BlipForQuestionAnswering, BlipProcessor

        model_dir = Path(model_dir)
        if not model_dir.is_dir():
            raise UserError(f"VQA model directory {str(model_dir)!r} does not exist")
        if not (model_dir / "config.json").exists():
            raise UserError(
                f"VQA model directory {str(model_dir)!r} has no config.json; expected what "
                "BlipForQuestionAnswering.save_pretrained and BlipProcessor.save_pretrained write"
            )
        try:
            model = BlipForQuestionAnswering.from_pretrained(model_dir, local_files_only=True)
            processor = BlipProcessor.from_pretrained(model_dir, local_files_only=True)
        except (OSError, ValueError) as error:
            raise UserError(f"cannot load a BLIP VQA model from {str(model_dir)!r}: {error}") from error
        return cls(model, processor, source=str(model_dir), device=device)

    def describe(self) -> str:
        return f"BlipVQA({self.source}, choice ranking by likelihood)"

    def answer_all(self, image: np.ndarray, questions: list[dict]) -> list[str]:
        if not questions:
            return []
        scores = self.choice_log_likelihoods(image, questions)
        return [question["choices"][int(np.argmax(s))] for question, s in zip(questions, scores)]

    def choice_log_likelihoods(self, image: np.ndarray, questions: list[dict]) -> list[np.ndarray]:
        """Per question, the log-likelihood of each choice (tokens + closing [SEP]) given image and question."""
        import torch

        tokenizer = self.processor.tokenizer
        with torch.no_grad():
            pixel_values = self.processor(images=[image], return_tensors="pt")["pixel_values"].to(self.device)
            image_embeds = self.model.vision_model(pixel_values=pixel_values).last_hidden_state  # (1, P, Dv)
            num_questions = len(questions)
            question_tokens = tokenizer(
                [q["question"] for q in questions], padding=True, return_tensors="pt"
            ).to(self.device)
            question_embeds = self.model.text_encoder(
                input_ids=question_tokens["input_ids"],  # (Q, Lq)
                attention_mask=question_tokens["attention_mask"],
                encoder_hidden_states=image_embeds.expand(num_questions, -1, -1),  # (Q, P, Dv)
                encoder_attention_mask=torch.ones(
                    image_embeds.shape[:2], dtype=torch.long, device=self.device
                ).expand(num_questions, -1),
            ).last_hidden_state  # (Q, Lq, Dt)

            # One decoder row per (question, choice) pair.
            pair_question = [qi for qi, q in enumerate(questions) for _ in q["choices"]]
            pair_text = [choice for q in questions for choice in q["choices"]]
            answer_tokens = tokenizer(pair_text, padding=True, return_tensors="pt").to(self.device)
            decoder_ids = answer_tokens["input_ids"].clone()  # (K, La): [CLS] choice [SEP] [PAD]...
            decoder_ids[:, 0] = self.decoder_start_token_id
            index = torch.tensor(pair_question, device=self.device)
            logits = self.model.text_decoder(
                input_ids=decoder_ids,
                attention_mask=answer_tokens["attention_mask"],
                encoder_hidden_states=question_embeds[index],  # (K, Lq, Dt)
                encoder_attention_mask=question_tokens["attention_mask"][index],
                return_dict=True,
            ).logits  # (K, La, V)
            log_probs = torch.log_softmax(logits[:, :-1].float(), dim=-1)  # predicts tokens 1..La-1
            targets = decoder_ids[:, 1:]
            token_log_probs = log_probs.gather(-1, targets.unsqueeze(-1)).squeeze(-1)  # (K, La-1)
            token_log_probs = token_log_probs * answer_tokens["attention_mask"][:, 1:]
            pair_scores = token_log_probs.sum(dim=-1).cpu().numpy()  # (K,)
        out, start = [], 0
        for question in questions:
            count = len(question["choices"])
            out.append(pair_scores[start : start + count])
            start += count
        return out

    def choice_probabilities(self, image: np.ndarray, questions: list[dict]) -> list[np.ndarray]:
        """Per question, the model's probability of each choice given that the answer is one of the choices.

        The choices' log-likelihoods (`choice_log_likelihoods`: teacher-forced answer tokens + [SEP]) are
        normalized over the candidates by a softmax: p_i = exp(l_i) / sum_j exp(l_j). Each array (len(choices),)
        sums to 1. This is the "probability the VQA model gives the right answer" of Soft-TIFA (GenEval 2), for
        a model that ranks candidates instead of classifying over a fixed answer vocabulary.
        """
        return [_softmax(scores) for scores in self.choice_log_likelihoods(image, questions)]

    def answer_probabilities(self, image: np.ndarray, question_texts: list[str], answer: str) -> np.ndarray:
        """(Q,) the probability that the answer decoder generates exactly `answer` (its tokens, then [SEP]).

        Not normalized over any candidate set: what is left, 1 - p, goes to every other answer. VQAScore (Lin et
        al., "Evaluating Text-to-Visual Generation with Image-to-Text Generation", ECCV 2024) is this with
        `answer="yes"` and the question "Does this figure show '{prompt}'? Please answer yes or no.".
        """
        questions = [{"question": text, "choices": [answer]} for text in question_texts]
        return np.exp(np.array([scores[0] for scores in self.choice_log_likelihoods(image, questions)]))


def _softmax(log_likelihoods: np.ndarray) -> np.ndarray:
    shifted = np.exp(np.asarray(log_likelihoods, dtype=np.float64) - np.max(log_likelihoods))
    return shifted / shifted.sum()
