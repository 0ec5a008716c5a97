"""Pre-tokenisation patterns: the regex that cuts text into pieces before BPE merges bytes inside each.

BPE never merges across two pieces, so the pattern decides what a token can span (a word with its
leading space, a run of up to 3 digits, ...). The named patterns are the exact regexes tiktoken uses
(``tiktoken_ext/openai_public.py``, tiktoken 0.14); tests check them against it.

>>> import regex
>>> regex.findall(PATTERNS["cl100k"], "I'll pay 12345 now!\\n")
['I', "'ll", ' pay', ' ', '123', '45', ' now', '!\\n']
"""

from __future__ import annotations

from ..errors import TokvecValueError

GPT2 = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++|\s++$|\s+(?!\S)|\s"""
CL100K = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+"""
    r"""|\s++$|\s*[\r\n]|\s+(?!\S)|\s"""
)
O200K = "|".join(
    [
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""\p{N}{1,3}""",
        r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
        r"""\s*[\r\n]+""",
        r"""\s+(?!\S)""",
        r"""\s+""",
    ]
)

PATTERNS: dict[str, str] = {"gpt2": GPT2, "cl100k": CL100K, "o200k": O200K}

# A text with letters of several scripts, digits, marks, emoji, CR/LF and punctuation: a user pattern
# must cover all of it, since tiktoken silently drops text its pattern does not match.
_COVERAGE_SAMPLE = (
    "Hello, World! It's 2024.\r\n\t小沈阳江西演唱会邀请了，naïve e\u0301 🙂👍🏽 x\x00y  /* a_b */ \n\n  end  "
)


def resolve_pattern(pattern: str) -> tuple[str, str]:
    """``pattern`` (a name in PATTERNS or a regex) -> (name or "custom", regex string).

    A custom regex must compile with the ``regex`` module (tiktoken's syntax: ``\\p{L}``, possessive
    quantifiers) and match every character of a mixed-script sample text.
    """
    if not isinstance(pattern, str) or not pattern:
        raise TokvecValueError(f"pattern must be one of {', '.join(PATTERNS)} or a regex string, got {pattern!r}")
    if pattern in PATTERNS:
        return pattern, PATTERNS[pattern]
    if pattern.lower() in PATTERNS:
        return pattern.lower(), PATTERNS[pattern.lower()]
    for name, regex_str in PATTERNS.items():
        if pattern == regex_str:
            return name, regex_str
    import regex

    try:
        compiled = regex.compile(pattern)
    except regex.error as e:
        raise TokvecValueError(
            f"pattern {pattern!r} is neither a known name ({', '.join(PATTERNS)}) nor a valid regex: {e}"
        ) from None
    covered = "".join(compiled.findall(_COVERAGE_SAMPLE))
    if covered != _COVERAGE_SAMPLE:
        dropped = sorted(set(_COVERAGE_SAMPLE) - set(covered)) or ["(some characters)"]
        raise TokvecValueError(
            f"pattern {pattern!r} does not match every character (it skips e.g. {''.join(dropped[:8])!r}); "
            f"tiktoken drops unmatched text, so decode(encode(s)) would lose it. End the pattern with "
            f"an alternative that matches anything, e.g. '|\\s+|[\\s\\S]'"
        )
    return "custom", pattern


def for_oniguruma(pat_str: str) -> str:
    """The same pattern for HF tokenizers' regex engine (Oniguruma, Ruby syntax), used in training.

    Ruby reads ``X{1,3}+`` as ``(X{1,3})+`` (a repeat of a repeat), not as a possessive ``{1,3}``
    the way tiktoken's fancy-regex does; cl100k's ``\\p{N}{1,3}+`` would then put 4+ digits in one
    piece. Dropping the ``+`` is exact whenever nothing after the repeat could backtrack into it,
    which holds for the named patterns (tests compare the two engines' pieces on random text).
    """
    import re

    return re.sub(r"(\{\d+(?:,\d*)?\})\+", r"\1", pat_str)
