"""What the explorer serves: the runs and tokenizer files named on the command line, each under an id.

The page addresses a source by its id only; paths stay on the server. A run is loaded through
:func:`tokvec.runs.rundir.open_run` (the loader every run command uses), a tokenizer file through
:func:`tokvec.load_tokenizer`.
"""

from __future__ import annotations

import os
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from ..errors import TokvecError
from ..runs.rundir import RunData, open_run
from ..tokenizers import load_tokenizer
from ..viz import token_strings
from ..viz.report import run_val_text


@dataclass
class Source:
    """One run (model + tokenizer) or one tokenizer file, under ``id``."""

    id: str
    name: str
    tokenizer: Any
    run: RunData | None = None
    _strings: list[str] | None = field(default=None, repr=False)
    _val: tuple[str | None, str] | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def model(self):
        return None if self.run is None else self.run.model

    @property
    def kind(self) -> str:
        return "run" if self.run is not None else "tokenizer"

    def token_strings(self) -> list[str]:
        """Every id's string, built once (a 100k BPE vocabulary takes a moment)."""
        with self._lock:
            if self._strings is None:
                self._strings = token_strings(self.tokenizer)
            return self._strings

    def val_text(self) -> tuple[str | None, str]:
        """The run's validation text (rebuilt from its corpus once) and where it came from."""
        with self._lock:
            if self._val is None:
                if self.run is None or self.run.path is None:
                    self._val = (None, "a tokenizer file has no validation text")
                else:
                    try:
                        self._val = (
                            run_val_text(self.run.config, self.tokenizer, self.run.path),
                            "the run's validation split",
                        )
                    except (TokvecError, OSError) as e:
                        self._val = (None, f"not available: {e}")
            return self._val

    def describe(self) -> dict[str, Any]:
        """What ``GET /api/runs`` lists for this source."""
        info: dict[str, Any] = {
            "id": self.id,
            "name": self.name,
            "kind": self.kind,
            "tokenizer": getattr(self.tokenizer, "kind", type(self.tokenizer).__name__),
            "vocab_size": self.tokenizer.vocab_size,
        }
        if self.run is not None:
            cfg = self.model.config
            info.update(
                context_length=int(cfg.context_length),
                n_layers=int(cfg.n_layers),
                n_heads=int(cfg.n_heads),
                d_model=int(cfg.d_model),
                positional=str(cfg.positional),
                step=self.run.config.get("step"),
            )
        return info


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-.") or "source"


def _unique(name: str, taken: set[str]) -> str:
    slug, n = _slug(name), 2
    candidate = slug
    while candidate in taken:
        candidate, n = f"{slug}-{n}", n + 1
    taken.add(candidate)
    return candidate


def load_sources(runs: Sequence[str | os.PathLike] = (), tokenizers: Sequence[str | os.PathLike] = ()) -> list[Source]:
    """Open every run directory and tokenizer file; ids are their names made URL-safe and unique."""
    sources: list[Source] = []
    taken: set[str] = set()
    for path in runs:
        path = Path(path)
        data = open_run(path)
        name = path.resolve().name or str(path)
        sources.append(Source(_unique(name, taken), name, data.tokenizer, run=data))
    for path in tokenizers:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no tokenizer file at {path}")
        sources.append(Source(_unique(path.stem, taken), path.name, load_tokenizer(path)))
    return sources
