"""Runs: training (language model and classifier), checkpoints and run directories, distributed
training, and experiments that train several models (the positional length-extrapolation compare).

Import the modules themselves (``from tokvec.runs.train import train``); this package re-exports
nothing, so that ``tokvec.runs.train`` always names the module.
"""
