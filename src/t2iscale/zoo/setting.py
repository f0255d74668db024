"""The setting a backbone is built for: image size, input space and text context.

A zoo *name* fixes an architecture; a *setting* fixes what goes in and out of it. The same name builds the same
layout in every setting (paper latents, the pixel-space shapes world), with the setting's input channels and
context width. Torch-free: the accounting and the CLI use it without importing torch.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from t2iscale.errors import UserError


@dataclass(frozen=True)
class Setting:
    """Input/output interface of a backbone.

    resolution:    image side in pixels.
    latent_factor: pixels per latent cell (8 for the SD/SDXL VAE, 1 for pixel space).
    in_channels:   channels of the backbone's input and output (4 for SDXL-VAE latents, 3 for RGB pixels).
    text_dim:      width of the text-encoder context (1024 for OpenCLIP-H).
    text_len:      number of context tokens (77 for CLIP tokenizers).
    """

    resolution: int = 256
    latent_factor: int = 8
    in_channels: int = 4
    text_dim: int = 1024
    text_len: int = 77

    def __post_init__(self):
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            # bool is an int subclass; a True resolution is a typo, not a size.
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise UserError(f"setting {field.name} must be a positive integer, got {value!r}")
        if self.resolution % self.latent_factor:
            raise UserError(
                f"setting resolution {self.resolution} is not divisible by latent_factor {self.latent_factor}"
            )

    @property
    def sample_size(self) -> int:
        """Side of the backbone's input grid: latent cells (or pixels when latent_factor is 1)."""
        return self.resolution // self.latent_factor

    def to_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Setting:
        """Strict inverse of `to_dict`: unknown keys are errors, missing keys take the paper's defaults."""
        if not isinstance(data, dict):
            raise UserError(f"a setting must be a mapping of {', '.join(cls.field_names())}, got {data!r}")
        unknown = sorted(set(data) - set(cls.field_names()))
        if unknown:
            raise UserError(
                f"unknown setting key(s) {', '.join(map(repr, unknown))}; valid keys: {', '.join(cls.field_names())}"
            )
        return cls(**data)

    @classmethod
    def field_names(cls) -> list[str]:
        return [field.name for field in dataclasses.fields(cls)]


# The paper's controlled setting (Li et al., CVPR 2024, Sec. 3): 256 px images, SDXL-VAE latents (4 x 32 x 32),
# OpenCLIP-H text context of 77 tokens x 1024.
PAPER_SETTING = Setting()
