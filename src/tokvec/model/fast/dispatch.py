"""Which attention path a positional scheme allows, read from the scheme's class.

Shared by the reference attention (:mod:`tokvec.model.attention`) and the decode step
(:mod:`tokvec.model.fast.decode`), so neither has to import the other.
"""

from __future__ import annotations

from ...positional import PositionalEncoding


def _adds_scores(pos: PositionalEncoding) -> bool:
    """Whether the scheme overrides score_bias or score_term (otherwise attention can stay causal-fused)."""
    cls = type(pos)
    return cls.score_bias is not PositionalEncoding.score_bias or cls.score_term is not PositionalEncoding.score_term


def _has_score_term(pos: PositionalEncoding) -> bool:
    return type(pos).score_term is not PositionalEncoding.score_term
