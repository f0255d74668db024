"""What the human-preference reward models (ImageReward, HPSv2) share: checkpoint reading and the scoring loop.

Both score one (image, caption) pair at a time with a released checkpoint of a model that transformers builds
(`t2iscale.eval.image_reward`, `t2iscale.eval.hps`); both are per-image metrics, so their results carry each
image's score in manifest order (`image_scores`), from which `score_images` takes intervals over prompts.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from itertools import islice
from pathlib import Path

import numpy as np
import torch

from t2iscale.errors import UserError
from t2iscale.images import as_uint8_image
from t2iscale.progress import progress_bar


def local_file(path: str | Path | None, flag: str, what: str) -> Path:
    """`path` as an existing file, else a UserError naming the flag (and config key) that gives it."""
    if path is None:
        raise UserError(f"{what} needs a local file: {flag}")
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{flag} {str(path)!r} is not a file ({what})")
    return path


def local_dir(path: str | Path | None, flag: str, what: str) -> Path:
    """`path` as an existing folder, else a UserError naming the flag."""
    if path is None:
        raise UserError(f"{what} needs a local folder: {flag}")
    path = Path(path)
    if not path.is_dir():
        raise UserError(f"{flag} {str(path)!r} is not a folder ({what})")
    return path


def read_state_dict(path: Path, flag: str, nested_key: str | None = None) -> dict[str, torch.Tensor]:
    """A checkpoint's tensors, as float32 on the CPU.

    Read with `weights_only=True` (no code runs from the file). `nested_key`: the dict the tensors sit under
    (HPSv2's checkpoints keep them under "state_dict"), taken when present; a "module." prefix (a checkpoint saved
    from DistributedDataParallel) is dropped.
    """
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # a pickle that is not a weights file, a truncated download, ...
        raise UserError(f"{flag} {str(path)!r}: cannot read it as a PyTorch checkpoint: {error}") from error
    if nested_key is not None and isinstance(loaded, dict) and isinstance(loaded.get(nested_key), dict):
        loaded = loaded[nested_key]
    if not isinstance(loaded, dict) or not all(isinstance(v, torch.Tensor) for v in loaded.values()):
        raise UserError(f"{flag} {str(path)!r} holds no state dict of tensors")
    if loaded and all(key.startswith("module.") for key in loaded):
        loaded = {key.removeprefix("module."): value for key, value in loaded.items()}
    return {key: value.float() if value.is_floating_point() else value for key, value in loaded.items()}


def require_keys(state: dict, keys: Iterable[str], flag: str, path: Path, expected: str) -> None:
    """A UserError naming the first missing key when the checkpoint lacks any of `keys`."""
    missing = [key for key in keys if key not in state]
    if missing:
        raise UserError(
            f"{flag} {str(path)!r} is not {expected}: {len(missing)} key(s) missing (first: {missing[0]!r})"
        )


def score_pairs(
    images: Iterable[np.ndarray],
    captions: list[str],
    score_batch: Callable[[list[np.ndarray], list[str]], torch.Tensor],
    *,
    metric: str,
    batch_size: int,
    progress: bool,
) -> list[float]:
    """Each image's score against its caption, in order: `score_batch(images, captions) -> (B,)` per batch.

    Images are read lazily, np.uint8 (H, W, 3) or anything `t2iscale.images.as_uint8_image` converts
    unambiguously; a count that does not match the captions raises a ValueError.
    """
    if not captions:
        raise UserError(f"no images to compute {metric} for")
    image_iter = iter(images)
    scores: list[float] = []
    with torch.no_grad():
        for start in progress_bar(range(0, len(captions), batch_size), enabled=progress, desc=metric):
            batch_captions = captions[start : start + batch_size]
            batch = [
                as_uint8_image(image, f"{metric} image {start + offset}")
                for offset, image in enumerate(islice(image_iter, len(batch_captions)))
            ]
            if len(batch) != len(batch_captions):
                raise ValueError(f"fewer images than the {len(captions)} captions")
            scores.extend(score_batch(batch, batch_captions).float().cpu().tolist())
        if next(image_iter, None) is not None:
            raise ValueError(f"more images than the {len(captions)} captions")
    return scores


def count_truncated(tokenizer, captions: list[str], max_tokens: int) -> int:
    """How many captions have more tokens (special tokens included) than the model reads."""
    return sum(len(ids) > max_tokens for ids in tokenizer(captions)["input_ids"])
