"""The frozen image autoencoder of latent runs: a diffusers `AutoencoderKL` from a local directory.

`encode` maps images in [-1, 1] to the latents the backbone trains on, `decode` maps sampled latents back
to images. The paper's controlled setting trains every backbone on SDXL-VAE latents of 256 px images
(4 x 32 x 32; Li et al. Sec. 3).

Mean, not a sample: `encode` returns the posterior mean. The LDM/SD training code draws a fresh sample
from the posterior each time an image is seen, but prepared data is encoded once and read for many
epochs, so a stored sample would freeze one noise draw forever: it adds no augmentation and makes
`prepare` depend on a random seed instead of being repeatable. The SD/SDXL posteriors are typically narrow
next to the latents' spread, so a sample stays close to the mean anyway (not measured here). (Storing mean and log-variance to
sample at load time would double the storage; not done.)

Latent normalization follows the VAE's config, as diffusers pipelines do:
`(z - shift_factor) * scaling_factor` (SD/SDXL: no shift; SDXL scaling 0.13025, SD 0.18215; SD3/Flux add a
shift), or `(z - latents_mean) * scaling_factor / latents_std` per channel when the config has those.

Precision: the SDXL VAE overflows in float16 (NaN latents); keep the default float32 unless the weights are
a known fp16-safe variant.
"""

from __future__ import annotations

from pathlib import Path

import torch

from t2iscale.errors import UserError
from t2iscale.text.pretrained import dtype_from_name


def resolve_vae_dir(path: str | Path) -> tuple[Path, str | None]:
    """(directory, subfolder): a VAE folder itself, or a diffusers pipeline folder with `vae/`."""
    path = Path(path)
    if (path / "config.json").exists():
        return path, None
    if (path / "vae" / "config.json").exists():
        return path, "vae"
    raise UserError(
        f"VAE directory {str(path)!r} has no config.json (nor vae/config.json); "
        "expected a diffusers AutoencoderKL saved with save_pretrained"
    )


class LatentVAE:
    """Frozen `AutoencoderKL`: images (B, 3, H, W) in [-1, 1] <-> normalized latents (B, C, H/f, W/f)."""

    def __init__(
        self, path: str | Path, dtype: str | torch.dtype = "float32", device: str | torch.device = "cpu"
    ):
        from diffusers import AutoencoderKL

        self.path = Path(path)
        directory, subfolder = resolve_vae_dir(self.path)
        self.dtype = dtype_from_name(dtype)
        try:
            self.model = AutoencoderKL.from_pretrained(
                directory, subfolder=subfolder, local_files_only=True, torch_dtype=self.dtype
            )
        except (OSError, ValueError) as error:
            raise UserError(f"cannot load an AutoencoderKL from {str(self.path)!r}: {error}") from error
        self.model.eval().requires_grad_(False).to(device)
        config = self.model.config
        self.scaling_factor = float(config.scaling_factor)
        self.shift_factor = float(config.shift_factor) if config.shift_factor is not None else None
        self.latent_channels = int(config.latent_channels)
        self.downsample_factor = 2 ** (len(config.block_out_channels) - 1)
        self._channel_mean = self._channel_std = None
        if config.latents_mean is not None and config.latents_std is not None:
            self._channel_mean = torch.tensor(config.latents_mean).view(1, -1, 1, 1)
            self._channel_std = torch.tensor(config.latents_std).view(1, -1, 1, 1)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def latent_shape(self, resolution: int) -> tuple[int, int, int]:
        if resolution % self.downsample_factor:
            raise UserError(
                f"resolution {resolution} is not a multiple of the VAE's factor {self.downsample_factor}"
            )
        side = resolution // self.downsample_factor
        return (self.latent_channels, side, side)

    def _normalize(self, z: torch.Tensor) -> torch.Tensor:
        if self._channel_mean is not None:
            mean, std = self._channel_mean.to(z), self._channel_std.to(z)
            return (z - mean) * self.scaling_factor / std
        return (z - (self.shift_factor or 0.0)) * self.scaling_factor

    def _denormalize(self, latents: torch.Tensor) -> torch.Tensor:
        if self._channel_mean is not None:
            mean, std = self._channel_mean.to(latents), self._channel_std.to(latents)
            return latents * std / self.scaling_factor + mean
        return latents / self.scaling_factor + (self.shift_factor or 0.0)

    @torch.no_grad()
    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """Images (B, 3, H, W) in [-1, 1] -> normalized posterior means (B, C, H/f, W/f), float32."""
        posterior = self.model.encode(images.to(self.device, self.dtype)).latent_dist
        return self._normalize(posterior.mean.float())  # (B, 4, 32, 32) for SDXL at 256 px

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Normalized latents (B, C, h, w) -> images (B, 3, h*f, w*f) in [-1, 1], float32."""
        z = self._denormalize(latents.float()).to(self.device, self.dtype)
        return self.model.decode(z).sample.float().clamp(-1.0, 1.0)

    def describe(self) -> dict:
        return {
            "path": str(self.path.resolve()),
            "scaling_factor": self.scaling_factor,
            "shift_factor": self.shift_factor,
            "latents_mean": None if self._channel_mean is None else self._channel_mean.flatten().tolist(),
            "latents_std": None if self._channel_std is None else self._channel_std.flatten().tolist(),
            "latent_channels": self.latent_channels,
            "downsample_factor": self.downsample_factor,
            "posterior": "mean",
            "dtype": str(self.dtype).removeprefix("torch."),
        }


def save_tiny_random_vae(directory: str | Path, channels: tuple[int, ...] = (8, 16), seed: int = 0) -> Path:
    """A random `AutoencoderKL` with a few channels (downsampling 2**(len(channels)-1)), for tests and demos."""
    from diffusers import AutoencoderKL

    torch.manual_seed(seed)
    model = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * len(channels),
        up_block_types=("UpDecoderBlock2D",) * len(channels),
        block_out_channels=channels,
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=4,
        sample_size=32,
        scaling_factor=0.13025,
    )
    directory = Path(directory)
    model.save_pretrained(directory)
    return directory
