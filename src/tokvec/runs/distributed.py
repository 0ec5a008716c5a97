"""Training on several processes and machines with PyTorch's own engine (torchrun, DDP, FSDP2).

tokvec invents no launcher: start it with ``torchrun`` and it reads the environment torchrun sets
(``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``)::

    torchrun --nproc_per_node=2 -m tokvec train --corpus data/ --preset small --out runs/ddp

How the work is split (see ``tokvec.data.batches``): every rank draws the same *global* batch of
window starts from the step's seeded generator and reads only its own slice of it from the token
array, so no rank loads another's windows, the effective batch is ``batch_size x world_size x
grad_accum``, and a run on N processes follows the loss curve of one process with the same global
batch (up to float summation order). Only rank 0 logs and writes checkpoints; every rank can resume.
"""

from __future__ import annotations

import datetime
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

import torch
import torch.distributed as dist
from torch import nn

from ..device import resolve_device
from ..errors import DistributedError, TokvecError, TokvecValueError
from .launch import launch_env

STRATEGIES = ("auto", "none", "ddp", "fsdp")
BACKENDS = ("auto", "gloo", "nccl")


@dataclass(frozen=True)
class DistContext:
    """Who this process is in the job. A single process is ``world_size=1, rank=0``."""

    world_size: int = 1
    rank: int = 0
    local_rank: int = 0
    strategy: str = "none"
    backend: str | None = None
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that logs, shows progress and writes checkpoints."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


@contextmanager
def collective_errors(ctx: DistContext, timeout_s: float) -> Iterator[None]:
    """Turn a failed or timed-out collective (a peer died, hung, or lost the network) into one clear
    DistributedError instead of the backend's raw message and traceback."""
    try:
        yield
    except TokvecError:
        raise
    except RuntimeError as e:  # gloo/nccl raise RuntimeError subclasses (DistBackendError, ...)
        if not ctx.distributed or not _is_communication_failure(e):
            raise
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise DistributedError(
            f"rank {ctx.rank} of {ctx.world_size} lost contact with the other processes ({first[:200]}); "
            f"another rank died or did not answer within {timeout_s:g} s (--dist-timeout); "
            f"the last checkpoint is intact, resume with --resume"
        ) from e


def _is_communication_failure(e: BaseException) -> bool:
    dist_error = getattr(dist, "DistError", ())
    text = str(e)
    return (bool(dist_error) and isinstance(e, dist_error)) or any(
        w in text for w in ("gloo", "NCCL", "Connection reset", "Connection closed", "Timed out", "timed out")
    )


def init_distributed(
    strategy: str = "auto", backend: str = "auto", *, timeout_s: float = 120.0, device: str | torch.device = "auto"
) -> DistContext:
    """Join the process group torchrun describes in the environment (or run alone when it does not).

    strategy: ``auto`` (ddp when WORLD_SIZE > 1, else none), ``ddp``, ``fsdp``, ``none``.
    backend: ``auto`` (nccl when CUDA is available, gloo on CPUs), ``gloo``, ``nccl``.
    device: a single process trains on this device (:func:`tokvec.device.resolve_device`: ``auto``
    is the first GPU, else the CPU). Under torchrun each rank takes GPU ``LOCAL_RANK`` when the
    backend is nccl, and the CPU under gloo; ``--device cpu`` there means gloo.
    timeout_s: how long a collective may wait for a missing peer before the job fails with an error
    (instead of hanging forever when one rank dies).
    """
    if strategy not in STRATEGIES:
        raise TokvecValueError(f"unknown strategy {strategy!r}; choose one of {', '.join(STRATEGIES)}")
    if backend not in BACKENDS:
        raise TokvecValueError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if not timeout_s > 0:
        raise TokvecValueError(f"timeout_s must be > 0 seconds, got {timeout_s!r}")
    world, rank, local_rank = launch_env()
    if world == 1:
        if strategy in ("ddp", "fsdp"):
            raise TokvecValueError(
                f"--strategy {strategy} needs several processes, but WORLD_SIZE is 1; "
                f"launch with torchrun --nproc_per_node=N -m tokvec train ..."
            )
        return DistContext(device=resolve_device(device))
    strategy = "ddp" if strategy in ("auto", "none") else strategy
    wanted = resolve_device(device)  # a device this machine lacks fails here, on every rank
    cuda = torch.cuda.is_available() and wanted.type != "cpu"
    if backend == "auto":
        backend = "nccl" if cuda else "gloo"
    if backend == "nccl" and not cuda:
        raise TokvecValueError("backend nccl needs CUDA GPUs and none is available; use --backend gloo on CPUs")
    device = torch.device("cuda", local_rank) if backend == "nccl" else torch.device("cpu")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend=backend, timeout=datetime.timedelta(seconds=timeout_s))
    return DistContext(
        world_size=world, rank=rank, local_rank=local_rank, strategy=strategy, backend=backend, device=device
    )


def wrap_model(model: nn.Module, ctx: DistContext) -> nn.Module:
    """DDP or FSDP2 (``fully_shard``) around ``model``; unchanged for a single process."""
    if not ctx.distributed:
        return model
    if ctx.strategy == "fsdp":
        fully_shard = _fully_shard()
        # one FSDP unit per block (parameters gathered block by block), unless the blocks share
        # parameters (a learned positional scheme lives in every attention layer): a parameter may
        # belong to one unit only, so then the whole model is the one unit
        blocks = list(getattr(model, "blocks", []))
        owners: dict[int, int] = {}
        for i, block in enumerate(blocks):
            for p in block.parameters():
                owners.setdefault(id(p), i)
        shared = any(owners.get(id(p), -1) != i for i, block in enumerate(blocks) for p in block.parameters()) or any(
            id(p) in owners for name, p in model.named_parameters() if not name.startswith("blocks.")
        )
        if not shared:
            for block in blocks:
                fully_shard(block)
        fully_shard(model)
        return model
    from torch.nn.parallel import DistributedDataParallel as DDP

    return DDP(model, device_ids=[ctx.device.index] if ctx.device.type == "cuda" else None)


def _fully_shard():
    try:
        from torch.distributed.fsdp import fully_shard  # torch >= 2.6
    except ImportError:
        try:
            from torch.distributed._composable.fsdp import fully_shard  # torch 2.4-2.5
        except ImportError:
            raise TokvecValueError(
                f"--strategy fsdp needs FSDP2 (fully_shard), which torch {torch.__version__} "
                f"lacks; upgrade torch to >= 2.4 or use --strategy ddp"
            ) from None
    return fully_shard


def unwrap(model: nn.Module) -> nn.Module:
    """The plain model inside a DDP wrapper (FSDP2 shards in place and keeps the class)."""
    return (
        model.module if hasattr(model, "module") and isinstance(model, nn.parallel.DistributedDataParallel) else model
    )


def full_state_dict(model: nn.Module, ctx: DistContext) -> dict[str, torch.Tensor]:
    """The whole model's weights as ordinary CPU tensors (gathered from FSDP shards), loadable by a
    single process. Collective under FSDP: every rank must call it; the result matters on rank 0."""
    if ctx.distributed and ctx.strategy == "fsdp":
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        return get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    return {k: v.detach().cpu() for k, v in unwrap(model).state_dict().items()}


def full_optimizer_state(optimizer: torch.optim.Optimizer, ctx: DistContext) -> dict:
    """``optimizer.state_dict()`` with FSDP's sharded moments gathered into whole CPU tensors, so a
    single process (or another world size) can load it. Collective under FSDP: every rank calls it."""
    sd = optimizer.state_dict()
    if not (ctx.distributed and ctx.strategy == "fsdp"):
        return sd
    state = {
        pid: {k: (v.full_tensor().cpu() if hasattr(v, "full_tensor") else v) for k, v in st.items()}
        for pid, st in sd["state"].items()
    }
    return {"state": state, "param_groups": sd["param_groups"]}


def reshard_optimizer_state(optimizer: torch.optim.Optimizer) -> None:
    """After loading whole tensors into an optimizer over FSDP (DTensor) parameters, cut each moment
    back into its parameter's shard layout. Every rank must call it: each cut is a collective, taken
    in the order of the parameter groups and of the sorted state names."""
    try:
        from torch.distributed.tensor import DTensor, distribute_tensor
    except ImportError:  # torch < 2.5
        raise TokvecValueError(
            f"resuming under --strategy fsdp needs torch >= 2.5 (this is {torch.__version__}); "
            f"resume with --strategy ddp"
        ) from None
    for group in optimizer.param_groups:
        for p in group["params"]:
            if not isinstance(p, DTensor):
                continue
            st = optimizer.state.get(p, {})
            for k in sorted(st):
                v = st[k]
                if isinstance(v, torch.Tensor) and not isinstance(v, DTensor) and v.shape == p.shape:
                    st[k] = distribute_tensor(v.to(p.device), p.device_mesh, p.placements)


def all_reduce_sum(values: list[float], ctx: DistContext) -> list[float]:
    """Element-wise sum of ``values`` over all ranks (one collective for several numbers)."""
    if not ctx.distributed:
        return list(values)
    t = torch.tensor([float(v) for v in values], dtype=torch.float64, device=ctx.device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t.tolist()


def all_reduce_max(value: int, ctx: DistContext) -> int:
    """The largest ``value`` over all ranks."""
    if not ctx.distributed:
        return value
    t = torch.tensor([int(value)], dtype=torch.int64, device=ctx.device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return int(t.item())


def broadcast_object(obj, ctx: DistContext):
    """Rank 0's ``obj`` on every rank (a tokenizer spec, a decision to stop)."""
    if not ctx.distributed:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier(ctx: DistContext) -> None:
    if ctx.distributed:
        dist.barrier()


def shutdown(ctx: DistContext) -> None:
    """Leave the process group (safe to call more than once).

    Call it after the last collective every rank takes part in (``train`` ends with a barrier), never
    while a collective may be in flight: gloo's background threads must see every connection idle
    when the group is destroyed, or the process aborts at exit."""
    if ctx.distributed and dist.is_initialized():
        dist.destroy_process_group()
