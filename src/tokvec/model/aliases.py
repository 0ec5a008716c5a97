"""Shared tensors (a tied LM head, one positional module in every layer) stored once, refilled on load.

PyTorch lists a shared tensor under each of its names; safetensors refuses to save two names for one
piece of memory, and a checkpoint should not store one table twice. The model (its ``state_dict``
hooks) and the run checkpoint (any state dict it is handed) both go through :func:`find_aliases`, so
the two agree on what counts as the same tensor.
"""

from __future__ import annotations

from typing import Iterable, Mapping, MutableMapping

from torch import Tensor, nn


def _memory(t: Tensor) -> tuple | None:
    """Where ``t``'s elements live, (device, storage address, offset, shape, stride, dtype); None where an
    address says nothing: no elements, the meta device, or a tensor subclass (FSDP's DTensor shards)."""
    if t.numel() == 0 or t.device.type == "meta" or type(t) not in (Tensor, nn.Parameter):
        return None
    return (t.device, t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape), tuple(t.stride()), t.dtype)


def find_aliases(named: Iterable[tuple[str, Tensor]]) -> dict[str, str]:
    """alias -> the first name holding the same tensor: the same object, or the same elements of the
    same storage viewed the same way (a state dict's detached copies of a tied weight).

    ``[("a", w), ("b", w), ("c", v)] -> {"b": "a"}``; the first name in the given order is kept.
    """
    first: dict[tuple, str] = {}
    aliases: dict[str, str] = {}
    for name, t in named:
        keys = [("object", id(t))]
        memory = _memory(t)
        if memory is not None:
            keys.append(memory)
        kept = next((first[k] for k in keys if k in first), None)
        if kept is not None:
            aliases[name] = kept
            continue
        for k in keys:
            first[k] = name
    return aliases


def drop_aliases(tensors: Mapping[str, Tensor]) -> tuple[dict[str, Tensor], dict[str, str]]:
    """``tensors`` with each shared tensor once, and the names dropped: (kept, alias -> kept name)."""
    aliases = find_aliases(tensors.items())
    return {name: t for name, t in tensors.items() if name not in aliases}, aliases


def refill_aliases(tensors: MutableMapping[str, Tensor], aliases: Mapping[str, str], prefix: str = "") -> None:
    """Put back each dropped name (``prefix + alias``) as its kept tensor, where that one is present and
    the alias is not."""
    for alias, kept in aliases.items():
        if prefix + alias not in tensors and prefix + kept in tensors:
            tensors[prefix + alias] = tensors[prefix + kept]


def register_alias_hooks(module: nn.Module) -> None:
    """Save each shared tensor of ``module`` once: ``state_dict()`` drops the aliases, ``load_state_dict``
    refills them. The first name in ``named_parameters`` order (``embed.token.embedding.weight``,
    ``embed.positional.*``) is the one kept."""

    def aliases(m: nn.Module) -> dict[str, str]:
        return find_aliases([*m.named_parameters(remove_duplicate=False), *m.named_buffers(remove_duplicate=False)])

    def drop(m: nn.Module, state_dict: dict, prefix: str, local_metadata: dict) -> None:
        for alias in aliases(m):
            state_dict.pop(prefix + alias, None)

    def refill(m: nn.Module, state_dict: dict, prefix: str, *args: object) -> None:
        refill_aliases(state_dict, aliases(m), prefix)

    module.register_state_dict_post_hook(drop)
    module.register_load_state_dict_pre_hook(refill)
