"""t2iscale: controlled scaling studies of diffusion text-to-image models (Li et al., CVPR 2024)."""

__version__ = "0.1.0"
