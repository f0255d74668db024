"""`torch.compile` of a backbone: the whole model, or region by region (issue 6: time to the first step).

`full` compiles the whole diffusers model as one graph: the most fusion, but minutes of compile time for SDXL-size
UNets (about 210 s measured before the first step of `sdxl-td4_4` on an H200). `regional` compiles each repeated
block (transformer blocks and ResNet blocks) on its own: identical blocks reuse one compiled graph, so compile time
grows with the number of *distinct* blocks (a handful), not with depth, and most of the fusion gain stays, since
those blocks hold nearly all of the compute. This is diffusers' `compile_repeated_blocks` idea, applied to every
family through the blocks' class names.
"""

from __future__ import annotations

from typing import Literal

from torch import nn

CompileMode = Literal["off", "full", "regional"]

# The blocks that repeat in the zoo's families (diffusers class names): UNet transformer and ResNet blocks,
# PixArt's transformer blocks (BasicTransformerBlock too) and SD3's joint blocks.
REPEATED_BLOCKS = ("BasicTransformerBlock", "JointTransformerBlock", "ResnetBlock2D")


def repeated_blocks(model: nn.Module) -> list[nn.Module]:
    return [module for module in model.modules() if type(module).__name__ in REPEATED_BLOCKS]


def compile_backbone(backbone, mode: CompileMode, backend: str = "inductor") -> int:
    """Compile `backbone.model` in place; returns how many modules were wrapped (0 when `mode` is 'off')."""
    if mode == "off":
        return 0
    if mode == "full":
        backbone.model.compile(backend=backend)
        return 1
    blocks = repeated_blocks(backbone.model)
    for block in blocks:
        block.compile(backend=backend)
    return len(blocks)
