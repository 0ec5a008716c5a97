"""Who this process is in a ``torchrun`` job, read from the environment torchrun sets.

Torch-free on purpose: the CLI reads it to prefix an error with the rank, and ``tokvec --help``
must stay light. :func:`tokvec.runs.distributed.init_distributed` joins the process group from it.
"""

from __future__ import annotations

import os

from ..errors import TokvecValueError


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise TokvecValueError(
            f"environment variable {name}={value!r} is not an integer; launch with torchrun, which sets it"
        ) from None


def launch_env() -> tuple[int, int, int]:
    """``(world_size, rank, local_rank)`` from WORLD_SIZE, RANK and LOCAL_RANK; ``(1, 0, 0)`` when unset."""
    world = _env_int("WORLD_SIZE", 1)
    rank, local_rank = _env_int("RANK", 0), _env_int("LOCAL_RANK", 0)
    if world < 1 or not 0 <= rank < world:
        raise TokvecValueError(f"RANK {rank} / WORLD_SIZE {world} are inconsistent; need 0 <= RANK < WORLD_SIZE")
    return world, rank, local_rank
