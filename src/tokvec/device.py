"""Which device and which precision a model runs at: one resolver for the library and the CLI.

    >>> resolve_device("auto")                 # CUDA, then Apple's MPS, then the CPU
    device(type='cpu')
    >>> p = resolve_precision("auto", torch.device("cpu"))
    >>> p.name, p.reason
    ('fp32', 'the CPU has no AMX-BF16 ...')

Devices: ``auto``, ``cpu``, ``cuda`` (the current CUDA device), ``cuda:N``, ``mps``. A device that
is not there is an error naming the devices that are. What this machine has is an
:class:`Inventory`, a parameter of every function here, so each branch is tested on a CPU-only
machine by handing in the inventory of another one.

Precisions (``--precision``): ``fp32``; ``bf16`` and ``fp16``, autocast over fp32 weights (the
master copy the optimizer updates; fp16 with a gradient scaler, CUDA only); ``bf16-pure``, the
weights themselves in bfloat16 (half the memory, no master copy). ``auto`` is bf16 on a CUDA device
that supports it, fp32 elsewhere: on a CPU bf16 autocast pays only with AMX tiles (see
docs/hardware.md: on this project's AVX-512 CPU without them bf16 trains at 0.4x the fp32 speed).
"""

from __future__ import annotations

import os
import platform
import re
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any, ContextManager

import torch
from torch import Tensor

from .errors import DeviceError

DEVICES = ("auto", "cpu", "cuda", "cuda:N", "mps")
PRECISIONS = ("auto", "fp32", "bf16", "fp16", "bf16-pure")
# /proc/cpuinfo flags that decide how fast low-precision matmuls run on a CPU
CPU_FLAGS = ("avx2", "avx512f", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16", "amx_fp16")


@dataclass(frozen=True)
class Inventory:
    """What a machine offers: CUDA devices, Apple's MPS, its OS and CPU flags. ``probe()`` reads this one."""

    cuda: int = 0  # CUDA device count
    mps: bool = False  # Apple silicon GPU usable
    system: str = "Linux"  # platform.system()
    cpu_flags: frozenset = frozenset()  # of CPU_FLAGS, from /proc/cpuinfo
    cuda_bf16: tuple = ()  # per CUDA device: supports bf16

    @classmethod
    def probe(cls) -> "Inventory":
        cuda = torch.cuda.device_count() if torch.cuda.is_available() else 0
        bf16 = tuple(_cuda_bf16(i) for i in range(cuda))
        mps = bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())
        return cls(cuda=cuda, mps=mps, system=platform.system(), cpu_flags=cpu_flags(), cuda_bf16=bf16)

    def devices(self) -> list[str]:
        """The device names this machine accepts, e.g. ``['cpu', 'cuda:0', 'cuda:1']``."""
        return ["cpu"] + [f"cuda:{i}" for i in range(self.cuda)] + (["mps"] if self.mps else [])


def _cuda_bf16(index: int) -> bool:
    major, _ = torch.cuda.get_device_capability(index)
    return major >= 8  # Ampere and later have bf16 tensor cores


def cpu_flags(cpuinfo: str | None = None) -> frozenset:
    """The :data:`CPU_FLAGS` the CPU reports (from the text of /proc/cpuinfo; empty where there is none)."""
    if cpuinfo is None:
        try:
            with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
                cpuinfo = f.read()
        except OSError:
            return frozenset()
    match = re.search(r"^flags\s*:(.*)$", cpuinfo, flags=re.MULTILINE)
    return frozenset(set(match.group(1).split()) & set(CPU_FLAGS)) if match else frozenset()


def resolve_device(spec: str | torch.device | None = "auto", *, inventory: Inventory | None = None) -> torch.device:
    """The torch.device ``spec`` names on this machine (``inventory``; default: probed).

    ``auto`` (or None): the first CUDA device, else MPS, else the CPU. ``cuda`` is the first CUDA
    device; ``cuda:N`` must be below the device count. Raises DeviceError naming what is available.
    """
    inv = Inventory.probe() if inventory is None else inventory
    if spec is None:
        spec = "auto"
    if isinstance(spec, torch.device):
        spec = str(spec)
    if not isinstance(spec, str):
        raise DeviceError(f"device must be a string such as 'cpu' or 'cuda:0', got {type(spec).__name__}")
    name = spec.strip().lower()
    available = ", ".join(inv.devices())
    if name == "auto":
        return torch.device("cuda", 0) if inv.cuda else torch.device("mps") if inv.mps else torch.device("cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "mps":
        if inv.mps:
            return torch.device("mps")
        why = (
            "MPS is Apple's GPU backend: it needs macOS on Apple silicon"
            if inv.system != "Darwin"
            else "this Mac's PyTorch build reports MPS unavailable (macOS >= 12.3 on Apple silicon needed)"
        )
        raise DeviceError(
            f"--device mps is not available on this {inv.system} machine ({why}); "
            f"available: {available}; use --device auto"
        )
    cuda = re.fullmatch(r"cuda(?::(\d+))?", name)
    if cuda:
        index = int(cuda.group(1) or 0)
        if not inv.cuda:
            raise DeviceError(
                f"--device {spec} asks for CUDA, but this machine has no CUDA device (or this "
                f"PyTorch build has no CUDA support); available: {available}; use --device auto"
            )
        if index >= inv.cuda:
            raise DeviceError(
                f"--device {spec}: CUDA device {index} does not exist, this machine has "
                f"{inv.cuda} (cuda:0 .. cuda:{inv.cuda - 1}); available: {available}"
            )
        return torch.device("cuda", index)
    raise DeviceError(f"unknown device {spec!r}; choose auto, cpu, cuda, cuda:N or mps (available here: {available})")


def auto_reason(device: torch.device, inventory: Inventory) -> str:
    """Why ``auto`` chose ``device`` (one phrase, for the CLI's note)."""
    if device.type == "cuda":
        return f"{inventory.cuda} CUDA device(s) found"
    if device.type == "mps":
        return "Apple MPS found, no CUDA"
    return "no CUDA or MPS device found"


@dataclass(frozen=True)
class Precision:
    """How a model computes: autocast dtype (or None), weight dtype, whether gradients need scaling."""

    name: str  # fp32 | bf16 | fp16 | bf16-pure
    autocast_dtype: torch.dtype | None = None
    param_dtype: torch.dtype = torch.float32
    reason: str = field(default="asked for", compare=False)

    @property
    def scaled(self) -> bool:
        """fp16 gradients underflow without a loss scale (torch.amp.GradScaler)."""
        return self.autocast_dtype == torch.float16

    def autocast(self, device: torch.device) -> ContextManager:
        """The autocast context for a forward pass on ``device`` (a no-op for fp32 and bf16-pure)."""
        if self.autocast_dtype is None:
            return nullcontext()
        return torch.autocast(device.type, dtype=self.autocast_dtype)


_PRECISION = {
    "fp32": (None, torch.float32),
    "bf16": (torch.bfloat16, torch.float32),
    "fp16": (torch.float16, torch.float32),
    "bf16-pure": (None, torch.bfloat16),
}


def resolve_precision(
    spec: str = "auto", device: torch.device | str = "cpu", *, inventory: Inventory | None = None
) -> Precision:
    """The :class:`Precision` ``spec`` means on ``device``; ``auto`` picks by the hardware (see module doc)."""
    device = torch.device(device)
    if spec not in PRECISIONS:
        raise DeviceError(f"unknown precision {spec!r}; choose one of {', '.join(PRECISIONS)}")
    if spec == "auto":
        inv = Inventory.probe() if inventory is None else inventory
        name, reason = _auto_precision(device, inv)
        return Precision(name, *_PRECISION[name], reason=reason)
    if spec == "fp16" and device.type != "cuda":
        raise DeviceError(
            f"--precision fp16 needs a CUDA device (fp16 training needs a gradient scaler, which "
            f"tokvec runs on CUDA only), and the device is {device}; use --precision bf16 or fp32"
        )
    return Precision(spec, *_PRECISION[spec])


def _auto_precision(device: torch.device, inv: Inventory) -> tuple[str, str]:
    if device.type == "cuda":
        index = device.index or 0
        if index < len(inv.cuda_bf16) and inv.cuda_bf16[index]:
            return "bf16", f"{device} supports bf16 (compute capability >= 8.0)"
        return "fp32", f"{device} has no bf16 support (compute capability < 8.0; use --precision fp16 to try it)"
    if device.type == "mps":
        return "fp32", "MPS: autocast there is not measured by tokvec"
    if "amx_bf16" in inv.cpu_flags:
        return "bf16", "the CPU has AMX-BF16 tiles (bf16 matmuls several times the fp32 speed)"
    have = "AVX512-BF16 but no AMX" if "avx512_bf16" in inv.cpu_flags else "no AVX512-BF16 or AMX"
    return "fp32", (f"the CPU has {have}: bf16 autocast measured slower than fp32 on such a CPU (docs/benchmarks.md)")


def to_device(batch: Tensor, device: torch.device) -> Tensor:
    """``batch`` on ``device``: on CUDA through pinned memory with a non-blocking copy (the copy overlaps
    the work already queued on the GPU); elsewhere a plain ``.to``."""
    if device.type == "cuda" and batch.device.type == "cpu":
        return batch.pin_memory().to(device, non_blocking=True)
    return batch.to(device)


def describe_environment(inventory: Inventory | None = None) -> dict[str, Any]:
    """Everything a bug report about speed or devices needs: versions, devices, threads, CPU flags and
    what ``auto`` picks for device and precision, and why."""
    from importlib.metadata import PackageNotFoundError, version

    inv = Inventory.probe() if inventory is None else inventory
    device = resolve_device("auto", inventory=inv)
    precision = resolve_precision("auto", device, inventory=inv)

    def pkg(name: str) -> str:
        try:
            return version(name)
        except PackageNotFoundError:
            return "not installed"

    cuda = [
        {
            "device": f"cuda:{i}",
            "name": torch.cuda.get_device_name(i),
            "bf16": inv.cuda_bf16[i] if i < len(inv.cuda_bf16) else None,
        }
        for i in range(inv.cuda)
    ]
    capability = getattr(getattr(torch.backends, "cpu", None), "get_cpu_capability", lambda: "unknown")()
    return {
        "tokvec": pkg("tokvec"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "tiktoken": pkg("tiktoken"),
        "tokenizers": pkg("tokenizers"),
        "devices": inv.devices(),
        "cuda_devices": cuda,
        "mps": inv.mps,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cpu_capability": capability,
        "cpu_flags": sorted(inv.cpu_flags),
        "auto_device": str(device),
        "auto_device_reason": auto_reason(device, inv),
        "auto_precision": precision.name,
        "auto_precision_reason": precision.reason,
    }


__all__ = [
    "DEVICES",
    "PRECISIONS",
    "DeviceError",
    "Inventory",
    "Precision",
    "auto_reason",
    "cpu_flags",
    "describe_environment",
    "resolve_device",
    "resolve_precision",
    "to_device",
]
