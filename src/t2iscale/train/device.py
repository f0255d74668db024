"""What the device offers: mixed-precision choice, peak FLOP/s for MFU, peak memory."""

from __future__ import annotations

import functools
import time

import torch

# Dense bf16 tensor-core peaks (datasheets, no sparsity), TFLOP/s. MFU = achieved / peak (nanoGPT's estimate_mfu).
KNOWN_PEAK_TFLOPS_BF16 = {
    "H200": 989.0,
    "H100 SXM": 989.0,
    "H100 PCIe": 756.0,
    "H100 NVL": 835.0,
    "H100": 989.0,
    "A100": 312.0,
    "L40S": 362.0,
    "A10G": 70.0,
    "L4": 121.0,
    "RTX 4090": 165.0,
    "V100": 125.0,
}


def resolve_mixed_precision(choice: str, device: torch.device) -> str:
    """'auto' means bf16 autocast where the device runs it fast (CUDA with bf16), else full fp32."""
    if choice != "auto":
        return choice
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return "bf16"
    return "no"


def autocast_dtype(mixed_precision: str) -> torch.dtype | None:
    return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(mixed_precision)


@functools.cache
def _measured_matmul_tflops(device_type: str, dtype: torch.dtype) -> float:
    """Peak of this device measured once with a large matrix product (used where no datasheet entry exists)."""
    device = torch.device(device_type)
    n = 1024 if device_type == "cpu" else 8192
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(2):
        a @ b
    synchronize(device)
    repeats = 5
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    synchronize(device)
    seconds = (time.perf_counter() - start) / repeats
    return 2 * n**3 / seconds / 1e12


def peak_tflops(device: torch.device, mixed_precision: str) -> tuple[float, str]:
    """(peak TFLOP/s, where the number comes from). GPUs: datasheet bf16 peak; else a measured matmul peak."""
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        for key, value in KNOWN_PEAK_TFLOPS_BF16.items():
            if key in name:
                peak = (
                    value if mixed_precision in ("bf16", "fp16") else value / 2
                )  # tf32 is half the bf16 rate
                return peak, f"datasheet ({name})"
    dtype = autocast_dtype(mixed_precision) or torch.float32
    return _measured_matmul_tflops(device.type, dtype), f"measured matmul ({device.type}, {dtype})"


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reset_peak_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory_gib(device: torch.device) -> float | None:
    """Peak allocated device memory since the last reset; the process's peak RSS on CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**30
    try:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux
    except (ImportError, OSError):
        return None
