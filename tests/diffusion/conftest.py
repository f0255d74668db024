"""Stand-in backbones with the zoo's signature `backbone(x, t, text_ctx, text_mask) -> prediction`."""

from __future__ import annotations

import pytest
import torch
from diffusers.models.embeddings import get_timestep_embedding
from torch import nn

from t2iscale.diffusion import FlowObjective


class TinyBackbone(nn.Module):
    """A small conv net that reads x, the timestep and the mask-pooled text context."""

    def __init__(self, channels: int = 3, context_dim: int = 8, hidden: int = 32):
        super().__init__()
        self.hidden = hidden
        self.time_proj = nn.Linear(hidden, hidden)
        self.context_proj = nn.Linear(context_dim, hidden)
        self.conv_in = nn.Conv2d(channels, hidden, 3, padding=1)
        self.conv_mid = nn.Conv2d(hidden, hidden, 3, padding=1)
        self.conv_out = nn.Conv2d(hidden, channels, 3, padding=1)

    def forward(self, x, t, text_ctx, text_mask):
        weights = text_mask.unsqueeze(-1).to(text_ctx.dtype)  # (B, L, 1)
        pooled = (text_ctx * weights).sum(1) / weights.sum(1).clamp(min=1.0)  # (B, D)
        embedding = self.time_proj(get_timestep_embedding(t, self.hidden)) + self.context_proj(
            pooled
        )  # (B, h)
        h = nn.functional.silu(self.conv_in(x) + embedding[:, :, None, None])  # (B, h, H, W)
        h = nn.functional.silu(self.conv_mid(h))
        return self.conv_out(h)  # (B, C, H, W)


class OracleBackbone(nn.Module):
    """Knows the clean x0 and returns the exact ε, v or velocity for the x_t and t it is given."""

    def __init__(self, objective, x0: torch.Tensor):
        super().__init__()
        self.objective = objective
        self.x0 = x0.float()

    def forward(self, x, t, text_ctx, text_mask):
        x = x.float()
        x0 = self.x0.repeat(x.shape[0] // self.x0.shape[0], 1, 1, 1)  # guided calls carry 2B rows
        if isinstance(self.objective, FlowObjective):
            sigma = (t.float() / 1000.0).view(-1, 1, 1, 1)
            return (x - x0) / sigma  # velocity ε − x0 along x = (1−σ)·x0 + σ·ε
        alpha_bar = self.objective.alphas_cumprod[t.long()].view(-1, 1, 1, 1)
        eps = (x - alpha_bar.sqrt() * x0) / (1 - alpha_bar).sqrt()
        if self.objective.prediction_type == "epsilon":
            return eps
        return alpha_bar.sqrt() * eps - (1 - alpha_bar).sqrt() * x0


class RecordingBackbone(nn.Module):
    """Wraps a backbone and records every call's inputs."""

    def __init__(self, inner: nn.Module):
        super().__init__()
        self.inner = inner
        self.calls: list[dict] = []

    def forward(self, x, t, text_ctx, text_mask):
        self.calls.append(
            {"x": x.clone(), "t": t.clone(), "ctx": text_ctx.clone(), "mask": text_mask.clone()}
        )
        return self.inner(x, t, text_ctx, text_mask)


@pytest.fixture(autouse=True)
def one_torch_thread():
    """These models are tiny; with other jobs on the 2 cores, two intra-op threads made the training test
    ~30x slower (60 s instead of 2 s) through oversubscription."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def tiny_backbone():
    torch.manual_seed(0)
    return TinyBackbone().eval()


@pytest.fixture
def text_batch():
    """(text_ctx (2, 5, 8), text_mask (2, 5) with padding, uncond_ctx (1, 5, 8), uncond_mask (1, 5))."""
    generator = torch.Generator().manual_seed(123)
    text_ctx = torch.randn(2, 5, 8, generator=generator)
    text_mask = torch.tensor([[True, True, True, False, False], [True, True, True, True, True]])
    uncond_ctx = torch.randn(1, 5, 8, generator=generator)
    uncond_mask = torch.tensor([[True, True, False, False, False]])
    return text_ctx, text_mask, uncond_ctx, uncond_mask


# Test modules get the classes through fixtures: `import conftest` is ambiguous across test folders.
@pytest.fixture
def oracle_backbone():
    return OracleBackbone


@pytest.fixture
def recording_backbone():
    return RecordingBackbone


@pytest.fixture
def tiny_backbone_class():
    return TinyBackbone
