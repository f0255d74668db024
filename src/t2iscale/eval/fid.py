"""FID (paper Sec. 3, "evaluation": image quality next to alignment) through torchmetrics, with local networks.

`torchmetrics.image.fid.FrechetInceptionDistance` needs torch-fidelity for its built-in Inception, which we do not
install (it would pull a CUDA torch). It also takes any `nn.Module` as the feature network, so the feature
network comes from a file the user gives:

Feature network file format (`--inception FILE`): a TorchScript archive (`torch.jit.save`) whose forward takes
a uint8 tensor (N, 3, H, W) with values 0..255 (RGB) and returns float features (N, D). If its forward has a
`return_features` argument it is called with `return_features=True`. The widely used
`inception-2015-12-05.pt` (the TensorFlow FID Inception-v3 exported to TorchScript by NVIDIA for
StyleGAN2-ADA / EDM) has exactly this interface: it resizes to 299 x 299 itself and returns the 2048-d pool
features, so FIDs computed with it match the reference TensorFlow FID.

For the shapes world there is also an FID in the oracle's feature space (`OracleFeatures`): the same Fréchet
distance over `OracleVQA.features(image)` (counts, attributes and positions of parsed objects), so distribution
quality is measurable with no downloaded weights. Its numbers are not comparable to Inception FIDs.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from itertools import chain
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from t2iscale.errors import UserError


class TorchScriptFeatures(nn.Module):
    """A TorchScript feature network loaded from a file (see the module docstring for the format)."""

    def __init__(self, path: str | Path):
        super().__init__()
        path = Path(path)
        if not path.is_file():
            raise UserError(f"feature network file {str(path)!r} does not exist")
        try:
            self.net = torch.jit.load(str(path), map_location="cpu").eval()
        except (RuntimeError, ValueError) as error:
            raise UserError(
                f"{str(path)!r} is not a TorchScript archive (expected e.g. inception-2015-12-05.pt): {error}"
            ) from error
        argument_names = [argument.name for argument in self.net.forward.schema.arguments]
        self.takes_return_features = "return_features" in argument_names
        self.source = str(path)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        # images: (N, 3, H, W) uint8 -> features (N, D)
        if self.takes_return_features:
            return self.net(images, return_features=True)
        return self.net(images)


class OracleFeatures(nn.Module):
    """The shapes-world oracle's scene features as an FID feature network: (N, 3, H, W) uint8 -> (N, F)."""

    def __init__(self, oracle):
        super().__init__()
        self.oracle = oracle

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        hwc = images.permute(0, 2, 3, 1).cpu().numpy()  # (N, H, W, 3)
        features = np.stack([self.oracle.features(image) for image in hwc]).astype(np.float64)  # (N, F)
        return torch.from_numpy(features).to(images.device)


def _batches(images: Iterable[np.ndarray], batch_size: int) -> Iterator[torch.Tensor]:
    """(N, 3, H, W) uint8 batches of consecutive images that share a size."""
    batch: list[np.ndarray] = []
    for image in images:
        if batch and (len(batch) == batch_size or image.shape != batch[0].shape):
            yield torch.from_numpy(np.stack(batch)).permute(0, 3, 1, 2).contiguous()
            batch = []
        batch.append(np.asarray(image, dtype=np.uint8))
    if batch:
        yield torch.from_numpy(np.stack(batch)).permute(0, 3, 1, 2).contiguous()


def frechet_distance(
    real_images: Iterable[np.ndarray],
    generated_images: Iterable[np.ndarray],
    feature_net: nn.Module,
    batch_size: int = 32,
    device: str = "cpu",
    progress: bool = True,
) -> dict:
    """FID between two image sets (np.uint8 (H, W, 3) each) in `feature_net`'s feature space."""
    from torchmetrics.image.fid import FrechetInceptionDistance

    real_batches = _batches(real_images, batch_size)
    generated_batches = _batches(generated_images, batch_size)
    first_real = next(real_batches, None)
    first_generated = next(generated_batches, None)
    if first_real is None or first_generated is None:
        raise UserError("FID needs at least 2 reference images and 2 generated images")
    feature_net = feature_net.eval().to(device)
    with torch.no_grad():
        # Tell torchmetrics the feature width so it never probes the network with a 299 x 299 dummy.
        feature_net.num_features = int(feature_net(first_real[:1].to(device)).shape[-1])
        metric = FrechetInceptionDistance(feature=feature_net, reset_real_features=False).to(device)
        counts = {True: 0, False: 0}
        for real, batches in (
            (True, chain([first_real], real_batches)),
            (False, chain([first_generated], generated_batches)),
        ):
            label = "FID reference" if real else "FID generated"
            for batch in tqdm(batches, desc=label, unit="batch", disable=not progress):
                metric.update(batch.to(device), real=real)
                counts[real] += batch.shape[0]
        if counts[True] < 2 or counts[False] < 2:
            raise UserError(
                f"FID needs at least 2 reference and 2 generated images, got {counts[True]} and {counts[False]}"
            )
        value = float(metric.compute())
    return {
        "fid": value,
        "n_reference": counts[True],
        "n_generated": counts[False],
        "n_features": feature_net.num_features,
    }
