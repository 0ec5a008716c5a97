"""tokvec's version: the one place it is written (pyproject.toml reads it from here at build time).

A plain string, not ``importlib.metadata.version("tokvec")``: that lookup costs several times a bare
interpreter's start (docs/benchmarks.md), and ``tokvec --version`` should cost little more than the start.
"""

__version__ = "0.1.0"


def version() -> str:
    """tokvec's version string, e.g. ``"0.1.0"``."""
    return __version__
