"""Vocabulary files of other tools: ``.tiktoken`` rank files (read, write) and HF ``tokenizer.json``
(byte-level BPE, read).

A ``.tiktoken`` file is one ``base64(token bytes) rank`` per line and nothing else: it holds neither
the pre-tokenisation pattern nor the special tokens. A file named after one of tiktoken's encodings
(``cl100k_base.tiktoken``, ``o200k_base``, ``r50k_base``, ``p50k_base``, ``gpt2``) gets that
encoding's pattern and specials, read from tiktoken's registry (:mod:`.tiktoken_names`); any other
name gets the cl100k pattern and no specials -- use ``BPETokenizer.from_tiktoken(path, pattern=...,
special_tokens=...)`` to say otherwise.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from pathlib import Path
from typing import Any, Mapping

from .._io import atomic_open
from ..errors import FormatError


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte -> printable character map (HF ``ByteLevel``): ``0x20`` (space) -> ``"Ġ"``.

    >>> bytes_to_unicode()[ord(" ")], bytes_to_unicode()[ord("a")]
    ('Ġ', 'a')
    """
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


_B2U = bytes_to_unicode()
_U2B = {c: b for b, c in _B2U.items()}


def bytes_to_printable(token: bytes) -> str:
    return "".join(_B2U[b] for b in token)


def printable_to_bytes(text: str, *, where: str = "token") -> bytes:
    try:
        return bytes(_U2B[c] for c in text)
    except KeyError as e:
        raise FormatError(f"{where} {text!r} holds {e.args[0]!r}, which is not a byte-level BPE character") from None


MAX_RANK = 2**32 - 2  # tiktoken's Rank is a u32 (and u32::MAX marks "no rank")


# -- .tiktoken ------------------------------------------------------------------------------------
_TIKTOKEN_LINE = re.compile(rb"^[A-Za-z0-9+/=]+ [0-9]+$")


def looks_like_tiktoken(path: Path) -> bool:
    """A ``.tiktoken`` suffix, or a non-JSON file whose first line is ``base64 rank``."""
    if path.suffix.lower() == ".tiktoken":
        return True
    if path.suffix.lower() == ".json":
        return False
    try:
        with open(path, "rb") as f:
            first = f.readline(4096).strip()
    except OSError:
        return False
    return bool(_TIKTOKEN_LINE.match(first))


def read_tiktoken(path: str | os.PathLike) -> dict[bytes, int]:
    """``{token bytes: rank}`` from a ``.tiktoken`` file; a bad line raises FormatError quoting it."""
    path = Path(path)
    ranks: dict[bytes, int] = {}
    seen_ranks: set[int] = set()
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, start=1):
            line = raw.strip()
            if not line:
                continue
            parts = line.split()
            try:
                if len(parts) != 2:
                    raise ValueError("expected 2 fields")
                token = base64.b64decode(parts[0], validate=True)
                if not parts[1].isdigit() or len(parts[1]) > 10:
                    raise ValueError("rank is not a small non-negative integer")
                rank = int(parts[1])
            except (ValueError, binascii.Error):
                shown = raw.decode("utf-8", "replace").rstrip("\r\n")
                raise FormatError(
                    f"{path} line {lineno}: {shown[:80]!r} is not '<base64 token> <rank>' with rank an integer "
                    f"in [0, {MAX_RANK}] (a .tiktoken file has one such pair per line)"
                ) from None
            if rank > MAX_RANK or not token:
                what = f"rank {rank} is above {MAX_RANK} (tiktoken ranks are 32-bit)" if token else "the token is empty"
                raise FormatError(f"{path} line {lineno}: {what}; fix or remove that line")
            if token in ranks or rank in seen_ranks:
                raise FormatError(f"{path} line {lineno}: token {token!r} or rank {rank} appears twice")
            ranks[token] = rank
            seen_ranks.add(rank)
    if not ranks:
        raise FormatError(f"{path} holds no tokens; a .tiktoken file has one '<base64 token> <rank>' per line")
    return ranks


def write_tiktoken(path: str | os.PathLike, ranks: Mapping[bytes, int]) -> None:
    """Write ``ranks`` as a ``.tiktoken`` file (rank order), atomically."""
    with atomic_open(path, "wb") as f:
        for token, rank in sorted(ranks.items(), key=lambda kv: kv[1]):
            f.write(base64.b64encode(token) + b" " + str(rank).encode() + b"\n")


# -- HF tokenizer.json --------------------------------------------------------------------------
def is_hf_tokenizer_json(data: Any) -> bool:
    return isinstance(data, Mapping) and isinstance(data.get("model"), Mapping) and "format" not in data


def _find(node: Any, type_name: str) -> list[Mapping]:
    """Every component of ``type_name`` in a pre_tokenizer/decoder tree (Sequence or single)."""
    if not isinstance(node, Mapping):
        return []
    if node.get("type") == "Sequence":
        key = "pretokenizers" if "pretokenizers" in node else "decoders"
        children = node.get(key)
        return [m for child in children for m in _find(child, type_name)] if isinstance(children, list) else []
    return [node] if node.get("type") == type_name else []


def read_hf_bpe(path: Path, data: Mapping) -> tuple[dict[bytes, int], str, dict[str, int]]:
    """(ranks, pattern, special tokens) from a HF byte-level BPE ``tokenizer.json``.

    HF ids become tiktoken ranks unchanged, which is exact when ids follow merge order (true for a
    vocabulary the HF trainer made, and for GPT-2's); other layouts are refused.
    """
    from .._schema import Doc
    from .patterns import PATTERNS, for_oniguruma

    doc = Doc(data, str(path), fix="is it a tokenizer.json that Hugging Face tokenizers wrote?")
    model = doc.obj("model")
    kind = model.data.get("type") or (
        "BPE"
        if "merges" in model.data
        else "WordPiece"
        if "continuing_subword_prefix" in model.data
        else "Unigram"
        if isinstance(model.data.get("vocab"), list)
        else "unknown"
    )
    if kind != "BPE":
        raise FormatError(
            f"{path} is a Hugging Face {str(kind)[:40]} tokenizer; tokvec reads only byte-level BPE "
            f"tokenizer.json files (GPT-2 style)"
        )
    pre = data.get("pre_tokenizer")
    byte_level = _find(pre, "ByteLevel")
    if not byte_level:
        found = pre.get("type") if isinstance(pre, Mapping) else None
        raise FormatError(
            f"{path} is a BPE tokenizer but not byte-level (pre_tokenizer {str(found)[:40]!r}, e.g. "
            f"SentencePiece-style Metaspace); tokvec reads byte-level BPE only"
        )
    if data.get("normalizer"):
        norm = data["normalizer"]
        raise FormatError(
            f"{path} has a normalizer ({str(norm.get('type') if isinstance(norm, Mapping) else norm)[:40]!r}); "
            f"tokvec's byte-level BPE encodes raw text, so its ids would differ"
        )
    for option in ("dropout", "continuing_subword_prefix", "end_of_word_suffix"):
        if model.data.get(option):
            raise FormatError(
                f"{path}: BPE option {option}={str(model.data[option])[:40]!r} is not supported by tokvec"
            )
    if byte_level[0].get("add_prefix_space"):
        raise FormatError(f"{path}: ByteLevel add_prefix_space=true is not supported (it changes the text)")
    splits = _find(pre, "Split")
    if splits:
        pattern = splits[0].get("pattern", {})
        pat_str = pattern.get("Regex") if isinstance(pattern, Mapping) else None
        if not isinstance(pat_str, str) or not pat_str:
            raise FormatError(f"{path}: the Split pre-tokenizer has no Regex pattern tokvec can use")
        # tokvec's own export writes a named pattern in Oniguruma syntax: read it back as that name
        pat_str = next((p for p in PATTERNS.values() if for_oniguruma(p) == pat_str), pat_str)
    elif byte_level[0].get("use_regex", True):
        pat_str = PATTERNS["gpt2"]
    else:
        raise FormatError(f"{path}: ByteLevel without a regex and no Split pre-tokenizer; no pattern to use")
    vocab = model.int_map("vocab", lo=0, hi=MAX_RANK)
    # Added tokens (specials like <|endoftext|>) are matched in raw text before BPE: tiktoken's
    # special tokens. The HF trainer also lists them in model.vocab; they are not byte tokens.
    added = doc.list("added_tokens", default=None) or []
    specials = {}
    for n, entry in enumerate(added):
        item = Doc(entry, str(path), where=f"added_tokens[{n}]", fix=doc.fix)
        specials[item.str("content", nonempty=True)] = item.int("id", lo=0, hi=MAX_RANK)
    vocab = {t: i for t, i in vocab.items() if specials.get(t) != i}
    ranks = {printable_to_bytes(tok, where=f"{path}: vocab token"): i for tok, i in vocab.items()}
    merges = model.list("merges", default=None) or []
    for n, merge in enumerate(merges):
        if not (
            (isinstance(merge, str) and " " in merge)
            or (isinstance(merge, list) and len(merge) == 2 and all(isinstance(m, str) for m in merge))
        ):
            raise model.error(f"merges[{n}]", "'a b' or [a, b] (two tokens)", merge)
    _check_merge_order(path, vocab, merges)
    return ranks, pat_str, specials


def _check_merge_order(path: Path, vocab: Mapping[str, int], merges: list) -> None:
    last = -1
    seen: set[str] = set()
    for n, merge in enumerate(merges):
        a, b = merge.split(" ", 1) if isinstance(merge, str) else merge
        token = a + b
        if token in seen:
            continue
        seen.add(token)
        i = vocab.get(token)
        if i is None:
            raise FormatError(f"{path}: merge #{n} {a!r} + {b!r} makes {token!r}, which is not in the vocab")
        if i < last:
            raise FormatError(
                f"{path}: merge #{n} makes {token!r} with id {i}, below an earlier merge's id {last}; "
                f"tokvec needs ids in merge order (as the HF trainer writes them)"
            )
        last = i
