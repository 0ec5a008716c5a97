"""Range checks for numeric arguments, shared by the library's entry points and the CLI.

Every size, count, seed and rate a user passes is checked here before any work starts: 0, negative,
huge (10**12, 10**20), NaN and inf get one :class:`~tokvec.errors.TokvecValueError` naming the
argument, the value, the allowed range and the fix. Sizes whose memory cannot fit are refused with
an estimate (:func:`check_memory`).
"""

from __future__ import annotations

import math
import os
from typing import Any

from .errors import TokvecTypeError, TokvecValueError

# Largest size any tensor dimension may take: torch indexes with int64 but many kernels with int32,
# and no CPU or GPU holds a table with 2**31 rows of anything useful.
MAX_DIM = 2**31 - 1
MAX_SEED = 2**32 - 1  # numpy's legacy seeding range; torch takes it too, with room for seed * step


def _fmt(value: Any) -> str:
    from ._schema import shown

    return shown(value)


def check_int_arg(
    name: str, value: Any, *, lo: int | None = 1, hi: int | None = MAX_DIM, fix: str = "", none_ok: bool = False
) -> Any:
    """``value`` when it is an int in ``[lo, hi]`` (``None`` too when ``none_ok``); else a one-line error."""
    if value is None and none_ok:
        return None
    tail = f"; {fix}" if fix else ""
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer() and math.isfinite(value):
            value = int(value)  # 64.0 from a JSON or YAML config: accept a whole number
        else:
            raise TokvecTypeError(f"{name} must be an integer, got {_fmt(value)}{tail}")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        if lo is not None and hi is not None:
            limit = f"in [{lo}, {hi}]"
        else:
            limit = f">= {lo}" if lo is not None else f"<= {hi}"
        raise TokvecValueError(f"{name} must be {limit}, got {_fmt(value)}{tail}")
    return value


def bound_from(value: Any) -> float | None:
    """``value`` as the limit of another check when it is itself a valid positive finite number, else
    None: a bad ``lr`` is reported once, not again as a strange range for ``min_lr``."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and abs(value) < 1e300
    return value if ok and math.isfinite(value) and value > 0 else None


def check_float_arg(
    name: str,
    value: Any,
    *,
    lo: float | None = None,
    hi: float | None = None,
    lo_open: bool = False,
    hi_open: bool = False,
    fix: str = "",
    none_ok: bool = False,
) -> Any:
    """``value`` when it is a finite number in the range (open ends where asked); else a one-line error."""
    if value is None and none_ok:
        return None
    tail = f"; {fix}" if fix else ""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TokvecTypeError(f"{name} must be a number, got {_fmt(value)}{tail}")
    if isinstance(value, int) and abs(value) > 1e300:
        raise TokvecValueError(f"{name} must be a finite number, got {_fmt(value)}{tail}")
    low_bad = lo is not None and (value <= lo if lo_open else value < lo)
    high_bad = hi is not None and (value >= hi if hi_open else value > hi)
    if not math.isfinite(value) or low_bad or high_bad:
        left = "" if lo is None else f"{'(' if lo_open else '['}{lo}"
        right = "" if hi is None else f"{hi}{')' if hi_open else ']'}"
        limit = (
            f"in {left}, {right}"
            if lo is not None and hi is not None
            else f"{'>' if lo_open else '>='} {lo}"
            if lo is not None
            else f"{'<' if hi_open else '<='} {hi}"
            if hi is not None
            else "finite"
        )
        raise TokvecValueError(f"{name} must be a finite number {limit}, got {_fmt(value)}{tail}")
    return value


def check_seed(name: str, value: Any, *, none_ok: bool = False) -> Any:
    return check_int_arg(
        name,
        value,
        lo=0,
        hi=MAX_SEED,
        none_ok=none_ok,
        fix="any integer in that range gives a reproducible run, e.g. 1337",
    )


def check_threads(name: str, value: Any, *, none_ok: bool = True, zero_ok: bool = False) -> Any:
    cpus = os.cpu_count() or 1
    return check_int_arg(
        name,
        value,
        lo=0 if zero_ok else 1,
        hi=max(1024, 4 * cpus),
        none_ok=none_ok,
        fix=f"this machine has {cpus} CPU(s)" + ("; 0 means one per CPU" if zero_ok else ""),
    )


# -- memory --------------------------------------------------------------------------------------
def available_memory() -> int | None:
    """Bytes of memory the process can still get: MemAvailable on Linux, else total RAM; None unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(n) < 1024 or unit == "PiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.3g} EiB"  # pragma: no cover


def check_memory(what: str, need: float, *, fix: str, available: int | None = None) -> None:
    """Refuse ``what`` when its estimated ``need`` (bytes) exceeds the memory this machine has free."""
    have = available_memory() if available is None else available
    if have is not None and need > have:
        raise TokvecValueError(
            f"{what} needs about {human_bytes(need)} of memory but this machine has "
            f"{human_bytes(have)} available; {fix}"
        )


__all__ = [
    "check_int_arg",
    "check_float_arg",
    "check_seed",
    "check_threads",
    "check_memory",
    "available_memory",
    "human_bytes",
    "MAX_DIM",
    "MAX_SEED",
]
