"""Fast paths beside the reference model: banded/fused attention and the one-token decode step.

Each is tested equal to the reference path in :mod:`tokvec.model.attention` / :mod:`tokvec.model.block`.
"""
