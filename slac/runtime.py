"""Process set-up: the device, torch's threads and seeds, and allocator settings for speed on a
CPU (none of which changes what is computed)."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform
import sys

import torch

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters (malloc.h)


def keep_freed_memory() -> bool:
    """Make glibc's malloc keep freed memory for reuse: blocks up to 1 GiB come from the heap,
    not from fresh ``mmap`` pages, and no heap is trimmed. Each update allocates and frees the
    same activations; by default glibc hands a worker thread's freed memory back to the kernel,
    and the next update faults it in and zeroes it again (figures in docs/performance.md).
    Resident memory stays at the update's peak. Returns whether it applied (Linux, glibc)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (e.g. musl)
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, 1 << 30)) and bool(mallopt(M_TRIM_THRESHOLD, 2**31 - 1))


def resolve_device(name: str) -> torch.device:
    """``auto`` (CUDA when present, else the CPU), ``cpu`` or ``cuda``; a ``ValueError`` when
    CUDA is asked for and absent."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda: no CUDA device is available (use auto or cpu)")
    return torch.device(name)


def set_up(device_name: str, threads: int, seed: int) -> torch.device:
    """Set up this process for a run or a measurement: the device, torch's thread count
    (0: all cores), the allocator on a CPU, and torch's global seed. Returns the device."""
    if threads:
        torch.set_num_threads(threads)
    device = resolve_device(device_name)
    if device.type == "cpu":
        keep_freed_memory()
    torch.manual_seed(seed)
    return device


def cpu_has_bf16() -> bool:
    """Whether this CPU has bfloat16 arithmetic units (AMX or AVX512-BF16), which oneDNN's
    bfloat16 kernels use; without them ``--amp`` runs emulated and slower. True where the flags
    cannot be read (not Linux), so that nothing is refused on a guess."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((ln.split(":", 1)[1].split() for ln in f if ln.startswith("flags")), None)
    except OSError:
        return True
    return flags is None or "amx_bf16" in flags or "avx512_bf16" in flags


def bf16_supported(device: torch.device) -> bool:
    """Whether ``device`` runs bfloat16 in hardware (``--amp``)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return device.type != "cpu" or cpu_has_bf16()


def describe(device: torch.device) -> dict[str, str | None]:
    """What a run's results depend on beyond its config: device, versions, GL backend."""
    return {"device": str(device), "torch": torch.__version__,
            "python": platform.python_version(), "mujoco_gl": os.environ.get("MUJOCO_GL")}
