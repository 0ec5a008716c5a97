"""A decoder-only Transformer language model (GPT-2 shaped, positional scheme by name).

    ids (b, s) ──InputEmbedding──▶ (b, s, d) ──N × Block──▶ norm ──lm_head──▶ logits (b, s, V)

    >>> model = GPT(ModelConfig(vocab_size=65, d_model=32, n_layers=2, n_heads=2, context_length=16))
    >>> logits, loss = model(torch.zeros(3, 10, dtype=torch.long))
    >>> logits.shape, loss
    (torch.Size([3, 10, 65]), None)

Length limits by positional scheme (``forward`` and ``generate``):

- ``learned``: a table of ``context_length`` rows; a longer input (cached tokens included) is an
  error naming both numbers. ``generate`` slides a window over longer prompts and outputs.
- ``sinusoidal``, ``none`` and attention-level schemes (``rope``, ``alibi``, ...): ``forward``
  accepts any length (the scheme extrapolates, with the quality loss that implies past the trained
  length); ``generate`` still slides a ``context_length`` window so the model only ever sees the
  lengths it was trained on. See :mod:`tokvec.generate`.

Shape legend: b = batch, s = new tokens, t = cached + new tokens, d = d_model, V = vocab_size,
h = heads, L = n_layers.
"""

from __future__ import annotations

import dataclasses
import math
import os
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode
from torch.utils.checkpoint import checkpoint

from ..errors import TokvecTypeError, TokvecValueError
from .aliases import register_alias_hooks
from .attention import CausalSelfAttention, KVCache
from .block import Block, make_input_embedding, make_norm
from .cache import PreallocatedKVCache
from .config import ModelConfig
from .sampling import DEFAULT_TEMPERATURE, generate

IGNORE_INDEX = -100  # targets equal to this add nothing to the loss (F.cross_entropy's default)


class _SkipInit(TorchFunctionMode):
    """While :meth:`GPT.empty` builds a model, ``torch.nn.init``'s fillers do nothing: its weights are
    read next, and a random fill writes (faults in) every page of memory the read then overwrites."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if getattr(func, "__module__", None) == "torch.nn.init":
            return args[0] if args else kwargs["tensor"]
        return func(*args, **kwargs)


class GPT(nn.Module):
    """The language model: ``logits, loss = model(ids, targets)``; ``model.generate(ids, 100)``."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        if not isinstance(config, ModelConfig):
            raise TokvecTypeError(
                f"GPT takes a ModelConfig, got {type(config).__name__}; "
                f"build one with ModelConfig(vocab_size=...) or ModelConfig.preset('tiny', ...)"
            )
        self.config = config.validate()
        config.check_memory(what="a GPT")  # n_layers=10**12 is refused here, not after eating the RAM
        self.embed = make_input_embedding(config)
        # one positional module shared by the input stage and every attention layer
        self.blocks = nn.ModuleList(Block(config, self.embed.positional, i) for i in range(config.n_layers))
        self.norm = make_norm(config)
        self.lm_head = nn.Linear(config.d_model, config.vocab_size, bias=False)
        self._init_weights()
        if config.tie_embeddings:
            self.lm_head.weight = self.embed.token.weight  # (V, d): one table reads and writes tokens
        register_alias_hooks(self)  # state_dict() holds each shared tensor once (safetensors-ready)
        # activation checkpointing (training only): each block's activations are recomputed in the
        # backward pass instead of kept, trading ~1/3 more compute for memory; set by the trainer
        self.grad_checkpoint = False

    def _init_weights(self) -> None:
        """GPT-2: every linear N(0, 0.02), biases 0; the two projections per block that write into
        the residual stream N(0, 0.02/sqrt(2L)), so the stream's variance does not grow with depth.
        Token (and learned position) tables are N(0, 0.02) from their own constructors."""
        residual_std = 0.02 / math.sqrt(2 * self.config.n_layers)
        for name, module in self.named_modules():
            if isinstance(module, nn.Linear):
                std = residual_std if name.endswith(("attn.proj", "mlp.proj")) else 0.02
                nn.init.normal_(module.weight, mean=0.0, std=std)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    def set_dropout(self, p: float) -> "GPT":
        """Change the dropout probability everywhere (embedding, attention weights and output, each
        block's MLP) in place, and in ``config``; the weights are untouched. Returns the model.

        What fine-tuning with another dropout needs, without building a second model beside this one."""
        self.config = dataclasses.replace(self.config, dropout=p).validate()  # a bad p fails here
        for module in self.modules():
            if isinstance(module, nn.Dropout):
                module.p = p
            elif isinstance(module, CausalSelfAttention):
                module.dropout = p  # the attention weights' dropout (a float given to the kernel)
        return self

    @classmethod
    def empty(cls, config: ModelConfig, *, device: str | torch.device = "cpu") -> "GPT":
        """A GPT whose parameters are allocated on ``device`` but NOT initialised: to load weights into.

        Skips the random init (seconds for gpt2-124m): the model is built on ``device`` with
        ``torch.nn.init``'s fillers turned off, so every parameter is fresh, untouched memory (no
        page of it faulted in before the weights are read into it). Whatever is computed rather
        than loaded (rope and sinusoidal tables) is computed as in ``GPT(config)``; a tied head is
        tied. (Not the meta device and ``to_empty``: building on meta imports ``torch._dynamo``,
        ~2 s, for its meta kernels of ``arange`` and the random fills.)"""
        with torch.device(device), _SkipInit():
            return cls(config)

    # -- forward --------------------------------------------------------------------------------
    def hidden(self, ids: Tensor, *, cache: KVCache | None = None, checked: bool = False) -> Tensor:
        """The final-norm hidden states. ids: (b, s) -> (b, s, d). With ``cache`` the ids are the
        new tokens and take positions ``cache.length ..``; their keys/values are appended to it.
        ``checked``: see :meth:`forward`."""
        x = self._embed(ids, cache, checked)
        recompute = self.grad_checkpoint and self.training and cache is None and torch.is_grad_enabled()
        for block in self.blocks:
            # the non-reentrant variant restores the RNG state, so dropout masks match on recompute
            x = checkpoint(block, x, use_reentrant=False) if recompute else block(x, cache=cache)
        return self.norm(x)

    def forward(
        self, ids: Tensor, targets: Tensor | None = None, *, cache: KVCache | None = None, checked: bool = False
    ) -> tuple[Tensor, Tensor | None]:
        """ids: (b, s) -> (logits (b, s, V), loss).

        targets: (b, s) next-token ids, ``-100`` where no loss is wanted; loss is the mean cross
        entropy over the other positions (a scalar), or None without targets.
        cache: a :meth:`new_cache` to append to (generation); ids are then the new tokens only.
        checked: ids and targets are known to be in [0, vocab_size) (batches of a token file that was
            validated when it was opened): skip the range checks, whose reductions are read back to
            the host (a device sync per call on a GPU). Types and shapes are still checked.
        """
        logits = self.lm_head(self.hidden(ids, cache=cache, checked=checked))  # (b, s, V)
        if targets is None:
            return logits, None
        self._check_targets(targets, ids, check_range=not checked)
        loss = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=IGNORE_INDEX)
        return logits, loss

    @torch.no_grad()
    def attention_weights(self, ids: Tensor, *, layers: int | None = None) -> list[Tensor]:
        """Every layer's attention pattern. ids: (b, s) -> [(b, h, s, s)] * L (rows sum to 1).

        Taken from the model's own attention modules (the same code path as forward, written out).
        ``layers``: run only the first ``layers`` blocks (layer 0's pattern costs one block, not L).
        Call ``model.eval()`` first when dropout > 0: in training mode dropout changes what later layers see.
        """
        x = self._embed(ids, None)
        weights = []
        for block in self.blocks[:layers]:
            x, w = block(x, need_weights=True)
            weights.append(w)
        return weights

    def _embed(self, ids: Tensor, cache: KVCache | None, checked: bool = False) -> Tensor:
        """ids: (b, s) -> (b, s, d) with positions offset by the cache length."""
        if isinstance(ids, Tensor) and ids.dim() == 2:
            offset = cache.length if cache is not None else 0
            self._check_length(ids.shape[1], offset)
            if offset:
                positions = torch.arange(offset, offset + ids.shape[1], device=ids.device)
                return self.embed(ids, positions=positions, checked=checked)
        return self.embed(ids, checked=checked)  # InputEmbedding names a bad type, rank or id

    def _check_length(self, s: int, offset: int) -> None:
        limit = self.config.context_length
        if not self.embed.positional.extrapolates and offset + s > limit:
            cached = f" after {offset} cached tokens" if offset else ""
            raise TokvecValueError(
                f"sequence of {s} tokens{cached} is longer than context_length {limit} "
                f"(the {self.config.positional!r} positional table has {limit} rows); "
                f"crop the input to the last {limit} tokens, or use model.generate which slides a window"
            )

    def _check_targets(self, targets: Tensor, ids: Tensor, *, check_range: bool = True) -> None:
        if not isinstance(targets, Tensor) or targets.is_floating_point() or targets.dtype == torch.bool:
            raise TokvecTypeError(
                f"targets must be an integer tensor of token ids, got "
                f"{getattr(targets, 'dtype', type(targets).__name__)}"
            )
        if targets.shape != ids.shape:
            raise TokvecValueError(f"targets must have the shape of ids {tuple(ids.shape)}, got {tuple(targets.shape)}")
        if not check_range:
            return
        valid = targets[targets != IGNORE_INDEX]
        if valid.numel():
            lo, hi = torch.aminmax(valid)
            if int(lo) < 0 or int(hi) >= self.config.vocab_size:
                bad = int(lo) if int(lo) < 0 else int(hi)
                raise TokvecValueError(
                    f"target id {bad} is out of range for vocab_size {self.config.vocab_size}; "
                    f"targets must be in [0, {self.config.vocab_size - 1}] or {IGNORE_INDEX}"
                )

    # -- accounting -----------------------------------------------------------------------------
    def num_parameters(self, non_embedding: bool = False) -> int:
        """Number of parameters (a tied table counted once).

        ``non_embedding=True`` leaves out tables that are only looked up, never multiplied: the
        position table (learned) and the token table when it is NOT tied to the LM head. A tied
        table stays in: it is the head's matmul weight (nanoGPT counts it the same way). This is
        the N of :meth:`flops_per_token`.
        """
        params = {id(p): p for p in self.parameters()}
        if non_embedding:
            lookups = list(self.embed.positional.parameters())
            if not self.config.tie_embeddings:
                lookups.append(self.embed.token.weight)
            for p in lookups:
                params.pop(id(p), None)
        return sum(p.numel() for p in params.values())

    def flops_per_token(self, seq_len: int | None = None) -> int:
        """Training FLOPs per token (forward + backward) at ``seq_len`` (default context_length):

            6·N + 12·L·d·T        (Kaplan et al. 2020 §2.1; PaLM, Chowdhery et al. 2022, App. B)

        N = num_parameters(non_embedding=True): each weight does one multiply-add (2 FLOPs) per
        token forward and two backward. 12·L·d·T: the attention scores q·k and the weighted sum
        over v, 2·2·d·T per layer forward, times 3 for forward + backward. Inference is a third.
        """
        t = self.config.context_length if seq_len is None else seq_len
        c = self.config
        return 6 * self.num_parameters(non_embedding=True) + 12 * c.n_layers * c.d_model * t

    def new_cache(self) -> KVCache:
        """An empty KV cache for incremental decoding: one (k, v) pair per layer, filled by forward.

        Its buffers are sized for context_length positions once (see :mod:`tokvec.model.cache`);
        use it under ``torch.no_grad()``.
        """
        return PreallocatedKVCache(self.config.n_layers, self.config.context_length)

    # -- generation -----------------------------------------------------------------------------
    @torch.no_grad()
    def generate(
        self,
        ids: Tensor,
        max_new_tokens: int,
        *,
        temperature: float = DEFAULT_TEMPERATURE,
        top_k: int | None = None,
        top_p: float | None = None,
        repetition_penalty: float = 1.0,
        eos_id: int | None = None,
        stop: list[str] | str | None = None,
        tokenizer: Any = None,
        seed: int | None = None,
        use_cache: bool = True,
    ) -> Tensor:
        """Continue ``ids``: (b, s) or (s,) -> the same rank with up to ``max_new_tokens`` ids appended.

        See :func:`tokvec.generate.generate` for every option (``stop`` strings need ``tokenizer``).
        """
        return generate(
            self,
            ids,
            max_new_tokens,
            temperature=temperature,
            top_k=top_k,
            top_p=top_p,
            repetition_penalty=repetition_penalty,
            eos_id=eos_id,
            stop=stop,
            tokenizer=tokenizer,
            seed=seed,
            use_cache=use_cache,
        )

    @classmethod
    def from_pretrained(
        cls,
        directory: str | os.PathLike,
        *,
        dtype: torch.dtype = torch.float32,
        device: str | torch.device = "cpu",
        progress: Callable[[int, int], None] | None = None,
    ) -> "GPT":
        """The model of a local Hugging Face directory (GPT-2, Llama, Mistral, Qwen2; safetensors
        weights), in eval mode. See :mod:`tokvec.model.hf`; ``tokvec import`` makes it a run.

        ``progress(done_bytes, total_bytes)`` is called as the weights are read."""
        from pathlib import Path

        from . import hf

        hf_config = hf.read_hf_config(directory)
        config = hf.config_from_hf(hf_config, source=str(Path(directory) / "config.json"))
        index = hf.SafetensorsIndex(directory)  # before building: a pickle-only directory fails fast
        model = cls.empty(config)
        if dtype != torch.float32:  # parameters only: rope keeps complex and float64 tables as buffers
            for p in model.parameters():
                p.data = p.data.to(dtype)
        total, done = sum(e[4] for e in index.entries.values()), [0]

        def advance(n: int) -> None:
            done[0] += n
            progress(done[0], total)

        try:
            hf.load_hf_weights(model, index, hf_config["model_type"], advance if progress is not None else None)
        finally:
            index.close()
        return model.to(device).eval()

    def extra_repr(self) -> str:
        return f"parameters={self.num_parameters():,}"
