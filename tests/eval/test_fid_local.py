"""FID through torchmetrics with a feature network loaded from a local TorchScript file."""

import numpy as np
import pytest
import scipy.linalg
import torch
from torch import nn

from t2iscale.errors import UserError
from t2iscale.eval.fid import TorchScriptFeatures, frechet_distance


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
