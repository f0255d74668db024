"""FID through torchmetrics with a feature network loaded from a local TorchScript file."""

import warnings

import numpy as np
import pytest
import scipy.linalg
import torch
from torch import nn

from t2iscale.errors import UserError
from t2iscale.eval.fid import TorchScriptFeatures, frechet_distance, min_images, recommended_images


class TinyInceptionLike(nn.Module):
    """Same call convention as inception-2015-12-05.pt: uint8 (N, 3, H, W), `return_features` -> (N, D)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, stride=2)
        self.head = nn.Linear(8, 4)

    def forward(self, img: torch.Tensor, return_features: bool = False) -> torch.Tensor:
        x = img.float() / 127.5 - 1  # (N, 3, H, W)
        features = torch.relu(self.conv(x)).mean(dim=(2, 3))  # (N, 8), any input size
        return features if return_features else self.head(features)


class PlainFeatures(nn.Module):
    def forward(self, img: torch.Tensor) -> torch.Tensor:
        x = img.float() / 255  # (N, 3, H, W)
        return torch.cat([x.mean(dim=(2, 3)), x.std(dim=(2, 3))], dim=1)  # (N, 6)


def save_scripted(module, path):
    torch.manual_seed(0)
    torch.jit.save(torch.jit.script(module), str(path))
    return path


def image_set(count, low, high, seed, size=(20, 20)):
    rng = np.random.default_rng(seed)
    return [rng.integers(low, high, (*size, 3), dtype=np.uint8) for _ in range(count)]


def reference_fid(features_a, features_b):
    mean_a, mean_b = features_a.mean(0), features_b.mean(0)
    cov_a, cov_b = np.cov(features_a, rowvar=False), np.cov(features_b, rowvar=False)
    root = scipy.linalg.sqrtm(cov_a @ cov_b).real
    return float(((mean_a - mean_b) ** 2).sum() + np.trace(cov_a + cov_b - 2 * root))


def test_fid_with_a_scripted_network_matches_the_frechet_formula(tmp_path):
    net = TorchScriptFeatures(save_scripted(TinyInceptionLike(), tmp_path / "inception.pt"))
    assert net.takes_return_features
    real, fake = image_set(24, 0, 256, seed=0), image_set(20, 60, 200, seed=1)
    result = frechet_distance(real, fake, net, batch_size=7, progress=False)
    with torch.no_grad():
        features = [
            net(torch.from_numpy(np.stack(s)).permute(0, 3, 1, 2)).double().numpy() for s in (real, fake)
        ]
    assert result["n_features"] == 8  # the features, not the 4-way head
    assert result["n_reference"] == 24 and result["n_generated"] == 20
    assert result["fid"] == pytest.approx(reference_fid(*features), rel=1e-3)
    assert result["fid"] > 1e-3


def test_same_distribution_scores_lower_and_sizes_may_differ(tmp_path):
    net = TorchScriptFeatures(save_scripted(PlainFeatures(), tmp_path / "plain.pt"))
    assert not net.takes_return_features
    real = image_set(30, 0, 256, seed=0)
    same = image_set(30, 0, 256, seed=2, size=(24, 16))
    other = image_set(30, 100, 156, seed=3)
    close = frechet_distance(real, same, net, progress=False)["fid"]
    far = frechet_distance(real, other, net, progress=False)["fid"]
    assert 0 <= close < far
    assert frechet_distance(real, real, net, progress=False)["fid"] == pytest.approx(0, abs=1e-6)


def test_bad_inputs_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        TorchScriptFeatures(tmp_path / "none.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a torchscript archive")
    with pytest.raises(UserError, match="not a TorchScript archive"):
        TorchScriptFeatures(tmp_path / "junk.pt")
    net = TorchScriptFeatures(save_scripted(PlainFeatures(), tmp_path / "plain.pt"))
    with pytest.raises(UserError, match="at least 2"):
        frechet_distance(image_set(3, 0, 256, 0), image_set(1, 0, 256, 1), net, progress=False)
    with pytest.raises(UserError, match="at least 2"):
        frechet_distance([], image_set(3, 0, 256, 1), net, progress=False)


class MeanColor(nn.Module):
    """3-d features (the mean of each channel): a feature network small enough for a handful of images."""

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        return img.float().mean(dim=(2, 3)) / 255  # (N, 3)


class CountingFeatures(nn.Module):
    """Counts the images it embeds (how much work was done before a refusal)."""

    def __init__(self, net):
        super().__init__()
        self.net, self.images_seen = net, 0

    def forward(self, img):
        self.images_seen += img.shape[0]
        return self.net(img)


# -- issue 14, item 8: the image form -------------------------------------------------------------------------


def test_float_images_in_0_1_give_the_fid_of_the_same_uint8_images(tmp_path):
    # Before: floats were cast to uint8 (0 or 1: black) and gave 0.1057 where the uint8 images gave 0.0234.
    net = TorchScriptFeatures(save_scripted(TinyInceptionLike(), tmp_path / "inception.pt"))
    real, fake = image_set(40, 0, 256, seed=0), image_set(40, 60, 200, seed=1)
    as_uint8 = frechet_distance(real, fake, net, progress=False)
    as_float32 = frechet_distance(
        [i.astype(np.float32) / 255 for i in real], [i / 255.0 for i in fake], net, progress=False
    )
    as_tensors = frechet_distance(
        [torch.from_numpy(i).float() / 255 for i in real],
        [torch.from_numpy(i) for i in fake],
        net,
        progress=False,
    )
    assert as_uint8["fid"] > 1e-3
    assert as_float32["fid"] == as_uint8["fid"] and as_tensors["fid"] == as_uint8["fid"]
    # Gray (H, W) images are RGB images with equal channels.
    gray = [i[:, :, 0] for i in real]
    assert frechet_distance(gray, fake, net, progress=False)["fid"] == pytest.approx(
        frechet_distance([np.repeat(g[:, :, None], 3, 2) for g in gray], fake, net, progress=False)["fid"]
    )
    # The feature network itself converts a float batch in [0, 1] the same way.
    batch = torch.from_numpy(np.stack(real[:4])).permute(0, 3, 1, 2)
    with torch.no_grad():
        assert torch.equal(net(batch.float() / 255), net(batch))


@pytest.mark.parametrize(
    ("image", "message"),
    [
        (np.full((8, 8, 3), -0.5, np.float32), r"float values in \[-0.5, -0.5\].*\(x \+ 1\) / 2"),
        (np.full((8, 8, 3), 200.0), r"float values in \[200, 200\].*as uint8"),
        (np.full((8, 8, 3), np.nan), "NaN"),
        (np.zeros((3, 8, 8), np.uint8), r"shape \(3, 8, 8\), channels first"),
        (np.zeros((8, 8, 4), np.uint8), r"shape \(8, 8, 4\)"),
        (np.full((8, 8, 3), 300, np.int64), r"int64 values in \[300, 300\]"),
        (np.zeros((8, 8, 3), bool), "dtype bool"),
        (np.zeros((0, 8, 3), np.uint8), "empty"),
    ],
)
def test_ambiguous_images_are_refused_in_one_line(tmp_path, image, message):
    net = MeanColor()
    good = image_set(4, 0, 256, seed=0, size=(8, 8))
    with pytest.raises(UserError, match="FID generated image 2 .*" + message):
        frechet_distance(good, [good[0], good[1], image, good[3]], net, progress=False)


# -- issue 14, item 9: how many images ------------------------------------------------------------------------


def test_fid_refuses_fewer_images_than_feature_dimensions_and_warns_below_the_recommended_n(tmp_path):
    assert (min_images(2048), recommended_images(2048)) == (2048, 10_000)  # Inception; TTUR's 10,000
    net = TorchScriptFeatures(save_scripted(TinyInceptionLike(), tmp_path / "inception.pt"))  # 8-d
    assert (min_images(8), recommended_images(8)) == (8, 40)
    # Before: 2 vs 2 images against 8-d (or 2,048-d) features gave a number, and no warning.
    with pytest.raises(UserError, match=r"at least 8 reference and 8 generated images.*8-d.*got 2 and 2"):
        frechet_distance(image_set(2, 0, 256, 0), image_set(2, 0, 256, 1), net, progress=False)
    counting = CountingFeatures(net)
    with pytest.raises(UserError, match="got 9 and 7"):  # sized inputs: refused after one probe image
        frechet_distance(image_set(9, 0, 256, 0), image_set(7, 0, 256, 1), counting, progress=False)
    assert counting.images_seen == 1
    with pytest.raises(UserError, match="got 7 and 9"):  # unsized inputs: refused once counted
        frechet_distance(iter(image_set(7, 0, 256, 0)), iter(image_set(9, 0, 256, 1)), net, progress=False)

    with pytest.warns(UserWarning, match=r"FID from 8 generated and 12 reference images.*40 per set"):
        small = frechet_distance(image_set(12, 0, 256, 0), image_set(8, 0, 256, 1), net, progress=False)
    assert (small["n_reference"], small["n_generated"], small["n_features"]) == (12, 8, 8)
    assert (small["min_images"], small["recommended_images"]) == (8, 40) and "40 per set" in small["warning"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        enough = frechet_distance(image_set(40, 0, 256, 0), image_set(40, 0, 256, 1), net, progress=False)
    assert "warning" not in enough and (enough["n_reference"], enough["n_generated"]) == (40, 40)
