"""`torch.compile` of a backbone: the whole model, or region by region (the time to the first step).

`full` compiles the whole diffusers model as one graph: the most fusion, but minutes of compile time for SDXL-size
UNets. `regional` compiles each repeated block (transformer blocks and ResNet blocks) on its own: identical blocks
reuse one compiled graph, so compile time grows with the number of *distinct* blocks, not with depth, and most of
the fusion gain stays, since those blocks hold nearly all of the compute. This is diffusers' `compile_repeated_blocks`
idea, applied to every family through the blocks' class names. Distinct is by shape: a UNet's ResNet blocks differ
in channels and size from level to level, and they are where most of the compile time goes.
`regional-transformer` compiles the transformer blocks only: less speed, a much shorter first step.

`auto` (the recipe's default) is `regional` on CUDA for backbones of at least 100M parameters and `off` otherwise:
the ResNet blocks' per-step saving repays their compile time within a few thousand steps for SDXL-size UNets, and a
machine's compile cache makes later runs of a study start in seconds; a tiny model never repays it, and on the CPU
compiling saved nothing. Evaluation along training samples the live weights with the compiled regions switched off
(`eager_regions`): recompiling them for inference took longer than the evaluation itself. The measurements behind
each of these choices are in docs/bench.md ("Measurements the defaults rest on").
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Literal

import torch
from torch import nn

from t2iscale.diffusion.graphs import compiled_submodules
from t2iscale.train.config import COMPILE_MODES

CompileMode = Literal[COMPILE_MODES]

# Every distinct block shape is a compile of the blocks' shared code (a UNet's ResNet blocks differ in channels
# and size per level: a dozen or so in `sdxl`, forward and backward). dynamo's default of 8 per code object would
# quietly leave the rest eager.
RECOMPILE_LIMIT = 64

# The blocks that repeat in the zoo's families (diffusers class names): UNet transformer and ResNet blocks,
# PixArt's transformer blocks (BasicTransformerBlock too) and SD3's joint blocks.
TRANSFORMER_BLOCKS = ("BasicTransformerBlock", "JointTransformerBlock")
REPEATED_BLOCKS = (*TRANSFORMER_BLOCKS, "ResnetBlock2D")


def repeated_blocks(model: nn.Module, kinds: tuple[str, ...] = REPEATED_BLOCKS) -> list[nn.Module]:
    return [module for module in model.modules() if type(module).__name__ in kinds]


# Below this size compiling costs more than a shapes-world run saves (see above).
AUTO_COMPILE_MIN_PARAMS = 100_000_000


def resolve_compile(mode: CompileMode, device: torch.device, params: int) -> CompileMode:
    """'auto' -> 'regional' on CUDA for a backbone of `params` >= 100M, else 'off'; other modes as given."""
    if mode != "auto":
        return mode
    return "regional" if device.type == "cuda" and params >= AUTO_COMPILE_MIN_PARAMS else "off"


@contextlib.contextmanager
def eager_regions(module: nn.Module) -> Iterator[nn.Module]:
    """Inside the block, `module`'s in-place-compiled submodules run their eager forward; restored afterwards."""
    compiled = [(sub, sub._compiled_call_impl) for sub in compiled_submodules(module)]
    for sub, _ in compiled:
        sub._compiled_call_impl = None
    try:
        yield module
    finally:
        for sub, call in compiled:
            sub._compiled_call_impl = call


def compile_backbone(backbone, mode: CompileMode, backend: str = "inductor") -> int:
    """Compile `backbone.model` in place; returns how many modules were wrapped (0 when the mode is 'off').

    'auto' resolves on the device and size of the backbone's parameters."""
    parameters = list(backbone.parameters())
    mode = resolve_compile(mode, parameters[0].device, sum(p.numel() for p in parameters))
    if mode == "off":
        return 0
    torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, RECOMPILE_LIMIT)
    if mode == "full":
        backbone.model.compile(backend=backend)
        return 1
    blocks = repeated_blocks(
        backbone.model, TRANSFORMER_BLOCKS if mode == "regional-transformer" else REPEATED_BLOCKS
    )
    for block in blocks:
        block.compile(backend=backend)
    return len(blocks)
