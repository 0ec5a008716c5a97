"""Errors raised by tokvec.

Every error a user can cause derives from :class:`TokvecError`, so a caller (and the CLI) can catch
them all at once, and from the matching builtin (``ValueError`` / ``TypeError``), so code that
already catches those keeps working. Messages name the bad value, the limit and the fix.
"""

from __future__ import annotations


class TokvecError(Exception):
    """Base class of every error tokvec raises on purpose."""


class TokvecValueError(TokvecError, ValueError):
    """A value is out of its allowed range or set."""


class TokvecTypeError(TokvecError, TypeError):
    """A value has the wrong type (float ids, a 3-D id tensor, ...)."""


class FormatError(TokvecValueError):
    """A file is not in the format (or version) tokvec expects."""


class TokenIdError(TokvecValueError):
    """A token id is outside ``[0, vocab_size)``."""


class UnknownTokenError(TokvecValueError, KeyError):
    """A token is not in a vocabulary that has no ``<unk>`` to fall back on."""

    def __str__(self) -> str:  # KeyError would repr() the message; show it plainly
        return str(self.args[0]) if self.args else ""


class DistributedError(TokvecError, RuntimeError):
    """A process of a distributed job died or stopped answering (a collective failed or timed out)."""


class OutputPathError(TokvecValueError):
    """An output path would destroy an input, or cannot be written the way tokvec writes files."""


class RunDirError(TokvecValueError):
    """A run directory holds something this command must not overwrite (another kind of run, or a
    finished run without ``--resume``/``--force``)."""


class RunLockedError(TokvecError, RuntimeError):
    """Another process is writing the same run directory (it holds the run's lock)."""

    def __init__(self, message: str, *, pid: int | None = None) -> None:
        super().__init__(message)
        self.pid = pid


class TokvecWarning(UserWarning):
    """Something the user should know that does not stop the work (the CLI prints it as one line)."""
