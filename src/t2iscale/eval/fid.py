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

Images. Every image goes through `t2iscale.images.as_uint8_image`: uint8 (H, W, 3) as is, floats in [0, 1] to
round(255 x), anything ambiguous refused with a UserError; so float and uint8 forms of the same images give one
FID (a plain uint8 cast made floats in [0, 1] black: 0.1057 instead of 0.0234).

How many images. FID compares two Gaussians fitted to the features, so each set's D x D covariance must be
estimated, D being the feature network's output width (2,048 for Inception; the oracle's and a test network's
their own). N images give a covariance of rank at most N - 1, and below D the matrix square root in the
distance is taken of a singular product: the value is then mostly an artifact of N. So `frechet_distance`
refuses a set of fewer than D images (`min_images`; pytorch-fid's advice for Inception, 2,048, is the same
number). Above that the estimate is still biased upward by about a constant times D / N (each of the D
dimensions adds its sampling error to both the mean and the trace terms), so the bias shrinks only as N grows in
proportion to D. Heusel et al. (TTUR, the paper that defined FID) recommend at least 10,000 images for
Inception's 2,048 features, since fewer underestimate the quality; `recommended_images` keeps that ratio
(10,000 / 2,048 ≈ 4.9 images per feature dimension, so 10,000 for Inception, 152 for the tiny shapes world's
31 oracle features) and a smaller set gets a warning, also written into the result. Every result records both
N (`n_reference`, `n_generated`) beside the FID.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Iterator
from itertools import chain
from pathlib import Path

import numpy as np
import torch
from torch import nn

from t2iscale.errors import UserError
from t2iscale.images import as_uint8_image, as_uint8_values
from t2iscale.progress import progress_bar

# Heusel et al. (2017, TTUR) recommend >= 10,000 images for FID on Inception's 2,048-d pool features.
RECOMMENDED_IMAGES_INCEPTION = 10_000
INCEPTION_FEATURES = 2_048


def min_images(n_features: int) -> int:
    """The fewest images per set that FID accepts: the feature dimension (see the module docstring)."""
    return max(2, n_features)


def recommended_images(n_features: int) -> int:
    """The images per set below which FID warns: TTUR's 10,000 for 2,048-d features, in proportion to D."""
    return max(
        min_images(n_features), math.ceil(RECOMMENDED_IMAGES_INCEPTION * n_features / INCEPTION_FEATURES)
    )


def uint8_batch(images: torch.Tensor, what: str = "feature network input") -> torch.Tensor:
    """A batch for a feature network as uint8 (N, 3, H, W): floats in [0, 1] rounded to 0..255, the rest refused."""
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[1] != 3:
        shape = tuple(getattr(images, "shape", ()))
        raise UserError(f"{what}: expected a tensor of RGB images (N, 3, H, W), got shape {shape}")
    if images.dtype == torch.uint8:
        return images
    values = images.detach().cpu()
    values = values.float().numpy() if values.is_floating_point() else values.numpy()
    return torch.from_numpy(as_uint8_values(values, what)).to(images.device)


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
        images = uint8_batch(images, f"input of {self.source!r}")  # (N, 3, H, W) uint8 -> features (N, D)
        if self.takes_return_features:
            return self.net(images, return_features=True)
        return self.net(images)


class OracleFeatures(nn.Module):
    """The shapes-world oracle's scene features as an FID feature network: (N, 3, H, W) uint8 -> (N, F)."""

    def __init__(self, oracle):
        super().__init__()
        self.oracle = oracle

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        images = uint8_batch(images, "input of the oracle features")
        hwc = images.permute(0, 2, 3, 1).cpu().numpy()  # (N, H, W, 3)
        features = np.stack([self.oracle.features(image) for image in hwc]).astype(np.float64)  # (N, F)
        return torch.from_numpy(features).to(images.device)


def _batches(images: Iterable, batch_size: int, label: str) -> Iterator[torch.Tensor]:
    """(N, 3, H, W) uint8 batches of consecutive images that share a size (each checked: `as_uint8_image`)."""
    batch: list[np.ndarray] = []
    for index, image in enumerate(images):
        image = as_uint8_image(image, f"{label} image {index}")  # (H, W, 3) uint8
        if batch and (len(batch) == batch_size or image.shape != batch[0].shape):
            yield torch.from_numpy(np.stack(batch)).permute(0, 3, 1, 2).contiguous()
            batch = []
        batch.append(image)
    if batch:
        yield torch.from_numpy(np.stack(batch)).permute(0, 3, 1, 2).contiguous()


def check_image_counts(n_reference: int, n_generated: int, n_features: int) -> str | None:
    """Refuse sets too small for a D-dimensional covariance; return the warning for sets below the recommended N."""
    if n_reference < 2 or n_generated < 2:
        raise UserError(
            f"FID needs at least 2 reference and 2 generated images, got {n_reference} and {n_generated}"
        )
    needed = min_images(n_features)
    if n_reference < needed or n_generated < needed:
        raise UserError(
            f"FID needs at least {needed} reference and {needed} generated images with this {n_features}-d "
            f"feature network (fewer give a singular covariance), got {n_reference} and {n_generated}"
        )
    recommended = recommended_images(n_features)
    if n_reference < recommended or n_generated < recommended:
        return (
            f"FID from {n_generated} generated and {n_reference} reference images is biased upward (by about "
            f"D / N); {recommended} per set are recommended for {n_features}-d features"
        )
    return None


def frechet_distance(
    real_images: Iterable,
    generated_images: Iterable,
    feature_net: nn.Module,
    batch_size: int = 32,
    device: str = "cpu",
    progress: bool = True,
) -> dict:
    """FID between two image sets in `feature_net`'s feature space; records both N beside it.

    Images: np.uint8 (H, W, 3), or anything `t2iscale.images.as_uint8_image` converts unambiguously (floats in
    [0, 1]); others raise a UserError. Sets smaller than the feature dimension are refused, sets smaller than
    `recommended_images` warned about (see the module docstring); sized iterables are checked before any work.
    """
    from torchmetrics.image.fid import FrechetInceptionDistance

    real_batches = _batches(real_images, batch_size, "FID reference")
    generated_batches = _batches(generated_images, batch_size, "FID generated")
    first_real = next(real_batches, None)
    first_generated = next(generated_batches, None)
    if first_real is None or first_generated is None:
        raise UserError("FID needs at least 2 reference images and 2 generated images")
    feature_net = feature_net.eval().to(device)
    with torch.no_grad():
        # Tell torchmetrics the feature width so it never probes the network with a 299 x 299 dummy.
        feature_net.num_features = int(feature_net(first_real[:1].to(device)).shape[-1])
        if hasattr(real_images, "__len__") and hasattr(generated_images, "__len__"):
            check_image_counts(len(real_images), len(generated_images), feature_net.num_features)
        metric = FrechetInceptionDistance(feature=feature_net, reset_real_features=False).to(device)
        counts = {True: 0, False: 0}
        for real, batches in (
            (True, chain([first_real], real_batches)),
            (False, chain([first_generated], generated_batches)),
        ):
            label = "FID reference" if real else "FID generated"
            for batch in progress_bar(batches, enabled=progress, desc=label, unit="batch"):
                metric.update(batch.to(device), real=real)
                counts[real] += batch.shape[0]
        warning = check_image_counts(counts[True], counts[False], feature_net.num_features)
        # A squared distance: a negative value (-1e-6 for identical sets) is floating-point error in the trace
        # of the matrix square root.
        value = max(0.0, float(metric.compute()))
    if warning is not None:
        warnings.warn(warning, UserWarning, stacklevel=2)
    result = {
        "fid": value,
        "n_reference": counts[True],
        "n_generated": counts[False],
        "n_features": feature_net.num_features,
        "min_images": min_images(feature_net.num_features),
        "recommended_images": recommended_images(feature_net.num_features),
    }
    if warning is not None:
        result["warning"] = warning
    return result
