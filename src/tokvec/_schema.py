"""Typed reading of the JSON files tokvec loads: every file is untrusted input.

One small reader for every format (run config.json, metrics.jsonl, tokenizer and vocabulary JSON,
token-file sidecars, classifier runs, HF ``tokenizer.json``). A :class:`Doc` wraps one JSON object
and hands out fields by type and range; anything else raises one :class:`~tokvec.errors.FormatError`
line naming the file, the key and what was expected::

    >>> doc = Doc({"step": -5}, "runs/x/config.json")
    >>> doc.int("step", lo=0)
    Traceback (most recent call last):
    tokvec.errors.FormatError: runs/x/config.json: 'step' must be an integer >= 0, got -5; ...

Why not pydantic: the formats are few and flat, the checks that matter are ranges and cross-field
facts (ids below a count, a sha256 per file) that read as plain code, and pydantic reports a list of
errors over several lines where tokvec promises one line with the fix. The failure modes a schema
library does not cover either -- nesting deeper than Python's recursion limit, integers longer than
its int-string limit, invalid UTF-8 -- are caught once here, in :func:`parse_json`.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from .errors import FormatError

MISSING: Any = object()  # "no default": the key is required
DEFAULT_FIX = "the file was edited or damaged; restore it, or write it again with tokvec"


def shown(value: Any, limit: int = 60) -> str:
    """A short, safe rendering of a bad value for an error message (type and a cut repr)."""
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, int):
        if abs(value) >= 10**18:
            return f"an integer of {len(str(abs(value)))} digits" if abs(value) < 10**4000 else "a huge integer"
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        text = repr(value)
        return f"the string {text[:limit]}{'...' if len(text) > limit else ''}"
    if isinstance(value, Mapping):
        return f"an object with {len(value)} key{'s' * (len(value) != 1)}"
    if isinstance(value, list):
        return f"a list of {len(value)}"
    return type(value).__name__


def parse_json(text: str | bytes, source: str) -> Any:
    """``json.loads`` that turns every way a file can be broken into one FormatError naming it."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as e:
            raise FormatError(
                f"{source} is not UTF-8 text (invalid byte at offset {e.start}); is it a JSON file? {DEFAULT_FIX}"
            ) from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise FormatError(
            f"{source} is not valid JSON (line {e.lineno}, column {e.colno}: {e.msg}); {DEFAULT_FIX}"
        ) from None
    except RecursionError:
        raise FormatError(
            f"{source} nests arrays or objects deeper than Python can read "
            f"(over {_recursion_limit()} levels; tokvec's files nest a few levels); {DEFAULT_FIX}"
        ) from None
    except ValueError as e:  # Python's int-string conversion limit (an integer of > 4300 digits)
        if "digits" not in str(e):
            raise
        import sys

        raise FormatError(
            f"{source} holds an integer of more than {sys.get_int_max_str_digits()} digits, "
            f"too long to be any count or id; {DEFAULT_FIX}"
        ) from None


def read_json_file(path: str | os.PathLike) -> Any:
    """Read and parse one JSON file (bytes first, so invalid UTF-8 is named with its offset)."""
    path = Path(path)
    return parse_json(path.read_bytes(), str(path))


def _recursion_limit() -> int:
    import sys

    return sys.getrecursionlimit()


class Doc:
    """One JSON object of a file, read field by field with types and ranges checked.

    ``source`` names the file (and line) in messages; ``where`` is the path of keys down to this
    object (``model`` in ``model.n_layers``); ``fix`` ends every message.
    """

    def __init__(self, data: Any, source: str, *, where: str = "", fix: str = DEFAULT_FIX) -> None:
        self.source, self.where, self.fix = source, where, fix
        if not isinstance(data, Mapping):
            raise self.error(None, "a JSON object", data, whole=True)
        self.data = data

    # -- errors ---------------------------------------------------------------------------------
    def key_path(self, key: str | None) -> str:
        return ".".join(p for p in (self.where, key) if p)

    def error(self, key: str | None, expected: str, got: Any = MISSING, *, whole: bool = False) -> FormatError:
        name = self.key_path(key)
        if got is MISSING:
            return FormatError(f"{self.source}: {name!r} is missing (expected {expected}); {self.fix}")
        what = f"{name!r} must be" if name else "the file must hold" if whole else "the value must be"
        return FormatError(f"{self.source}: {what} {expected}, got {shown(got)}; {self.fix}")

    def missing(self, keys: Iterable[str]) -> None:
        """Refuse the object when any of ``keys`` is absent (names them all)."""
        absent = [k for k in keys if k not in self.data]
        if absent:
            names = ", ".join(repr(self.key_path(k)) for k in absent)
            raise FormatError(f"{self.source}: {names} {'is' if len(absent) == 1 else 'are'} missing; {self.fix}")

    # -- fields ---------------------------------------------------------------------------------
    def raw(self, key: str, default: Any = MISSING, expected: str = "a value") -> Any:
        if key not in self.data:
            if default is MISSING:
                raise self.error(key, expected)
            return default
        return self.data[key]

    def int(self, key: str, *, lo: int | None = None, hi: int | None = None, default: Any = MISSING) -> Any:
        value = self.raw(key, default, _range_text("an integer", lo, hi))
        if value is default and key not in self.data:
            return value
        return check_int(value, lo=lo, hi=hi, fail=lambda expected: self.error(key, expected, value))

    def float(
        self, key: str, *, lo: float | None = None, hi: float | None = None, finite: bool = True, default: Any = MISSING
    ) -> Any:
        value = self.raw(key, default, _range_text("a number", lo, hi))
        if value is default and key not in self.data:
            return value
        return check_float(value, lo=lo, hi=hi, finite=finite, fail=lambda expected: self.error(key, expected, value))

    def str(
        self,
        key: str,
        *,
        choices: Iterable[str] | None = None,
        nonempty: bool = False,
        max_len: int | None = None,
        default: Any = MISSING,
    ) -> Any:
        value = self.raw(key, default, "a string")
        if value is default and key not in self.data:
            return value
        choices = None if choices is None else tuple(choices)
        expected = (
            f"one of {', '.join(map(repr, choices))}"
            if choices is not None
            else "a non-empty string"
            if nonempty
            else "a string"
        )
        if not isinstance(value, str) or (choices is not None and value not in choices) or (nonempty and not value):
            raise self.error(key, expected, value)
        if max_len is not None and len(value) > max_len:
            raise self.error(key, f"a string of at most {max_len} characters", value)
        return value

    def bool(self, key: str, *, default: Any = MISSING) -> Any:
        value = self.raw(key, default, "true or false")
        if value is default and key not in self.data:
            return value
        if not isinstance(value, bool):
            raise self.error(key, "true or false", value)
        return value

    def optional(self, key: str, read: Callable[[str], Any]) -> Any:
        """``read(key)`` unless the key is absent or null."""
        return None if self.data.get(key) is None else read(key)

    def obj(self, key: str, *, default: Any = MISSING) -> "Doc":
        value = self.raw(key, default, "a JSON object")
        if not isinstance(value, Mapping):
            raise self.error(key, "a JSON object", value)
        return Doc(value, self.source, where=self.key_path(key), fix=self.fix)

    def list(self, key: str, *, max_len: int | None = None, default: Any = MISSING) -> Any:
        value = self.raw(key, default, "a list")
        if value is default and key not in self.data:
            return value
        if not isinstance(value, list):
            raise self.error(key, "a list", value)
        if max_len is not None and len(value) > max_len:
            raise self.error(key, f"a list of at most {max_len} items", value)
        return value

    def str_list(self, key: str, *, nullable_items: bool = False, unique: bool = False, default: Any = MISSING) -> Any:
        """A list of strings (``None`` items allowed when ``nullable_items``)."""
        items = self.list(key, default=default)
        if items is default and key not in self.data:
            return items
        for i, item in enumerate(items):
            if not (isinstance(item, str) or (nullable_items and item is None)):
                raise self.error(f"{key}[{i}]", "a string" + (" or null" if nullable_items else ""), item)
        if unique:
            seen: dict[str, int] = {}
            for i, item in enumerate(items):
                if item is not None and item in seen:
                    raise self.error(f"{key}[{i}]", f"unique (it repeats item {seen[item]})", item)
                if item is not None:
                    seen[item] = i
        return items

    def int_map(self, key: str, *, lo: int | None = None, hi: int | None = None, default: Any = MISSING) -> Any:
        """An object of string -> integer in ``[lo, hi]`` (special tokens -> ids, ...)."""
        value = self.raw(key, default, "a JSON object of name -> integer")
        if value is default and key not in self.data:
            return value
        if not isinstance(value, Mapping):
            raise self.error(key, "a JSON object of name -> integer", value)
        out = {}
        for name, item in value.items():
            out[name] = check_int(
                item, lo=lo, hi=hi, fail=lambda expected, n=name, v=item: self.error(f"{key}[{n!r}]", expected, v)
            )
        return out


# -- values --------------------------------------------------------------------------------------
def _range_text(kind: str, lo: Any, hi: Any) -> str:
    if lo is not None and hi is not None:
        return f"{kind} in [{lo}, {hi}]"
    if lo is not None:
        return f"{kind} >= {lo}"
    if hi is not None:
        return f"{kind} <= {hi}"
    return kind


def check_int(value: Any, *, lo: int | None = None, hi: int | None = None, fail: Callable[[str], Exception]) -> int:
    """``value`` if it is an int (not a bool) in ``[lo, hi]``; else ``raise fail(expected)``."""
    expected = _range_text("an integer", lo, hi)
    if isinstance(value, bool) or not isinstance(value, int):
        raise fail(expected)
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise fail(expected)
    return value


def check_float(
    value: Any,
    *,
    lo: float | None = None,
    hi: float | None = None,
    finite: bool = True,
    fail: Callable[[str], Exception],
) -> float:
    """``value`` if it is a number (not a bool), finite when asked, in ``[lo, hi]``."""
    expected = _range_text("a finite number" if finite else "a number", lo, hi)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise fail(expected)
    if isinstance(value, int) and abs(value) > 1e300:
        raise fail(expected)
    if finite and not math.isfinite(value):
        raise fail(expected)
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise fail(expected)
    return float(value)


def read_json_lines(path: str | os.PathLike, *, skip_torn_tail: bool = True) -> list[tuple[int, Any]]:
    """``(line number, parsed value)`` of every non-empty line of a JSON-lines file.

    A last line without its newline that does not parse is a write a crash cut short: skipped when
    ``skip_torn_tail``. Any other bad line raises, naming the file and line."""
    path = Path(path)
    raw = path.read_bytes()
    lines = raw.split(b"\n")
    out = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            out.append((number, parse_json(line, f"{path} line {number}")))
        except FormatError as e:
            if skip_torn_tail and number == len(lines):  # no newline after it: torn by a crash
                continue
            quoted = line.decode("utf-8", "replace").strip()[:80]
            raise FormatError(f"{str(e).rsplit('; ', 1)[0]}: {quoted!r}; {DEFAULT_FIX}") from None
    return out


def metric_record(record: Any, source: str) -> dict:
    """One line of ``metrics.jsonl`` checked: step, split, loss (NaN allowed: a diverged eval), and the
    optional lr, tokens_per_s, elapsed_s as numbers. Extra keys are kept."""
    doc = Doc(record, source)
    doc.int("step", lo=0, hi=2**62)
    doc.str("split", nonempty=True, max_len=64)
    doc.float("loss", finite=False)
    for key in ("lr", "tokens_per_s", "elapsed_s"):
        if key in doc.data:
            doc.float(key, finite=False)
    return dict(record)


__all__ = [
    "Doc",
    "metric_record",
    "MISSING",
    "parse_json",
    "read_json_file",
    "read_json_lines",
    "check_int",
    "check_float",
    "shown",
    "DEFAULT_FIX",
]
