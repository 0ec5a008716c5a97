"""Reading a run directory back: its validated config, its loss log and the trained model.

``open_run`` is what the plots, the report and the CLI's ``--run`` options share; the files
themselves (and how they are committed atomically) are described in :mod:`tokvec.runs.checkpoint`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import FormatError
from .checkpoint import load_run, read_run_config


@dataclass
class RunData:
    """What a report is built from: a loaded model and tokenizer, the run's config dict and metrics."""

    model: Any
    tokenizer: Any
    config: dict
    metrics: list[dict] | None = None
    path: Path | None = None
    extra: dict = field(default_factory=dict)


def check_run_dir(path: str | os.PathLike) -> dict:
    """Refuse a path that is not a tokvec run directory, saying what is wrong; return its config dict."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no run directory at {path}; train one with `tokvec train --out {path}`")
    if not path.is_dir():
        raise FormatError(f"{path} is a file, not a run directory; pass the directory `tokvec train --out` wrote")
    return read_run_config(path)


def open_run(path: str | os.PathLike) -> RunData:
    """Load a run directory: model (eval mode), tokenizer, config and metrics (None when absent)."""
    path = Path(path)
    check_run_dir(path)
    model, tokenizer, config = load_run(path)
    model.eval()
    metrics_path = path / "metrics.jsonl"
    metrics = read_metrics(metrics_path) if metrics_path.is_file() and metrics_path.stat().st_size else None
    return RunData(model=model, tokenizer=tokenizer, config=config, metrics=metrics, path=path)


def read_metrics(path: str | os.PathLike) -> list[dict]:
    """Loss records of a ``metrics.jsonl`` (one JSON object a line with step, split, loss)."""
    path = Path(path)
    if path.is_dir():
        path = path / "metrics.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"no metrics file at {path} (a training run writes metrics.jsonl)")
    records = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                if line.endswith("\n"):
                    raise FormatError(f"{path} line {number} is not JSON ({e.msg}): {line.strip()[:80]!r}") from None
                continue  # a last line cut short by a crash mid-write: ignore it
            missing = [key for key in ("step", "split", "loss") if not isinstance(record, dict) or key not in record]
            if missing:
                raise FormatError(f"{path} line {number} lacks {', '.join(missing)}: {line.strip()[:80]!r}")
            records.append(record)
    if not records:
        raise FormatError(f"{path} holds no loss records yet; train for at least one logged step")
    return records
