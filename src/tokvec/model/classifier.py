"""A sequence classifier on the same embeddings and blocks as the language model.

    ids (b, s) ──InputEmbedding──▶ N × Block ──norm──▶ pool over s ──linear──▶ logits (b, n_classes)

The blocks are the causal ones of :class:`~tokvec.model.GPT` (so a trained LM's weights load into
them unchanged). Pooling, with that in mind:

- ``"mean"`` (default): the mean of the hidden vectors of the non-padding tokens. Each token has
  seen only what came before it, but the mean covers every prefix, so the whole text counts.
- ``"last"``: the hidden vector of the last non-padding token: the only one that has seen the whole
  text (GPT-2's sequence-classification head).
- ``"first"``: the first token (BERT's ``[CLS]``). Under causal attention it sees only itself, so it
  classifies by the first token alone; it is here for comparison with the classic tutorials.

Pad on the right (``padding_mask`` True at padding, after the text): under causal attention real
tokens then never attend to padding, and the result does not depend on how much padding there is.

Shape legend: b = batch, s = seq, d = d_model, C = n_classes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import TokvecTypeError, TokvecValueError
from .aliases import register_alias_hooks
from .block import Block, make_input_embedding, make_norm
from .config import ModelConfig

POOLINGS = ("mean", "last", "first")


class SequenceClassifier(nn.Module):
    """``logits, loss = clf(ids, labels, padding_mask=...)``: one label per sequence."""

    def __init__(self, config: ModelConfig, n_classes: int, *, pooling: str = "mean") -> None:
        super().__init__()
        if not isinstance(config, ModelConfig):
            raise TokvecTypeError(f"SequenceClassifier takes a ModelConfig, got {type(config).__name__}")
        if isinstance(n_classes, bool) or not isinstance(n_classes, int) or n_classes < 2:
            raise TokvecValueError(f"n_classes must be an integer >= 2, got {n_classes!r}")
        if pooling not in POOLINGS:
            raise TokvecValueError(f"unknown pooling {pooling!r}; choose one of {', '.join(POOLINGS)}")
        self.config, self.n_classes, self.pooling = config.validate(), n_classes, pooling
        config.check_memory(what="a classifier")
        self.embed = make_input_embedding(config)
        self.blocks = nn.ModuleList(Block(config, self.embed.positional, i) for i in range(config.n_layers))
        self.norm = make_norm(config)
        self.head = nn.Linear(config.d_model, n_classes)
        self.dropout = nn.Dropout(config.dropout)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, mean=0.0, std=0.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
        register_alias_hooks(self)

    def forward(
        self, ids: Tensor, labels: Tensor | None = None, *, padding_mask: Tensor | None = None
    ) -> tuple[Tensor, Tensor | None]:
        """ids: (b, s) -> (logits (b, C), loss). labels: (b,) in [0, C). padding_mask: (b, s) bool,
        True at padding (right padding; every row needs at least one real token)."""
        if (
            isinstance(ids, Tensor)
            and ids.dim() == 2
            and self.config.positional == "learned"
            and ids.shape[1] > self.config.context_length
        ):
            raise TokvecValueError(
                f"sequence of {ids.shape[1]} tokens is longer than context_length "
                f"{self.config.context_length}; truncate the texts"
            )
        x = self.embed(ids, padding_mask=padding_mask)  # checks ids and the mask's shape
        for block in self.blocks:
            x = block(x)
        h = self.norm(x)  # (b, s, d)
        keep = torch.ones(ids.shape, dtype=torch.bool, device=h.device) if padding_mask is None else ~padding_mask
        lengths = keep.sum(dim=1)  # (b,)
        if bool((lengths == 0).any()):
            row = int((lengths == 0).nonzero()[0])
            raise TokvecValueError(f"row {row} is all padding; every sequence needs at least one real token")
        if self.pooling == "mean":
            pooled = (h * keep.unsqueeze(-1)).sum(dim=1) / lengths.unsqueeze(1)  # (b, d)
        elif self.pooling == "last":
            pooled = h[torch.arange(h.shape[0], device=h.device), lengths - 1]  # (b, d)
        else:
            pooled = h[:, 0]  # (b, d)
        logits = self.head(self.dropout(pooled))  # (b, C)
        if labels is None:
            return logits, None
        if not isinstance(labels, Tensor) or labels.is_floating_point() or labels.shape != (ids.shape[0],):
            raise TokvecValueError(
                f"labels must be an integer tensor of shape ({ids.shape[0]},), one class per "
                f"row, got {getattr(labels, 'dtype', type(labels).__name__)} "
                f"{tuple(getattr(labels, 'shape', ()))}"
            )
        if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= self.n_classes):
            bad = int(labels.min()) if int(labels.min()) < 0 else int(labels.max())
            raise TokvecValueError(
                f"label {bad} is out of range for n_classes {self.n_classes}; "
                f"labels must be in [0, {self.n_classes - 1}]"
            )
        return logits, F.cross_entropy(logits, labels)

    def load_lm(self, lm: nn.Module) -> "SequenceClassifier":
        """Copy a trained GPT's embeddings, blocks and final norm in (same config). Returns self."""
        own = self.state_dict()
        theirs = {k: v for k, v in lm.state_dict().items() if k in own and not k.startswith("head.")}
        missing = sorted(k for k in own if k not in theirs and not k.startswith("head."))
        if missing:
            raise TokvecValueError(
                f"the language model lacks {len(missing)} weights this classifier needs "
                f"(first: {missing[0]}); build both from the same ModelConfig"
            )
        for k, v in theirs.items():
            if v.shape != own[k].shape:
                raise TokvecValueError(
                    f"weight {k} has shape {tuple(v.shape)} in the language model but "
                    f"{tuple(own[k].shape)} here; build both from the same ModelConfig"
                )
        self.load_state_dict({**own, **theirs})
        return self
