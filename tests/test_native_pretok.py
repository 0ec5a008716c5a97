"""The C pre-tokeniser (tokenizers/_native/pretok.c) against the reference: ``regex.findall`` on the
named patterns (tiktoken 0.14's regexes), on random text built to hit every rule, hand-picked edge
cases and two whole corpora."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import regex
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tokvec.tokenizers.patterns import PATTERNS

native = pytest.importorskip(
    "tokvec.tokenizers._bpe_native", reason="the C extension is not built (needs a C compiler: pip install -e .)"
)

ROOT = Path(__file__).resolve().parents[1]
NATIVE_DIR = ROOT / "src" / "tokvec" / "tokenizers" / "_native"
DATA = ROOT.parent / "shared" / "data"  # the corpora live beside the repository
CODES = {"gpt2": native.GPT2, "cl100k": native.CL100K, "o200k": native.O200K}
NAMES = list(CODES)

# Characters and strings that stress the rules: ASCII letters of the contractions in both cases,
# apostrophes (' and the typographic ’, which is punctuation), digits of several scripts, every kind
# of whitespace \s covers (and CR/LF), punctuation incl. the "/" o200k takes after it, letters of
# each case class (Lu, Ll, Lt ǅ, Lm ʰ, Lo 中 沈), a combining mark (M: a prefix character and a
# letter-run character in o200k), non-BMP letters and digits, emoji, U+017F (a case variant of s).
ALPHABET = [
    *"aAbBsSdDmMtTlLvVeErRxZ",
    "'", "\u2019", *"0123456789", "\u0663", "\U0001d7d8", "\u00b2",
    " ", "  ", "\t", "\r", "\n", "\r\n", "\x0b", "\x0c", "\x85", "\xa0", "\u2028", "\u3000",
    *".,!?-/()\"", "//", "\x00", "\x1f",
    "\u01c5", "\u02b0", "\u4e2d", "\u6c88", "\u0301", "\U0001d400", "\U0001f642", "\U0001f44d\U0001f3fd",
    "\u017f", "'S", "'LL", "'ll", "'Ve", "'re", "'D", "'M", "'t", "HTTPServer", "helloWorld", "iPhone",
]  # fmt: skip
stress_text = st.lists(st.sampled_from(ALPHABET), max_size=24).map("".join)


def reference(name: str, text: str) -> list[str]:
    return regex.findall(PATTERNS[name], text)


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=stress_text)
def test_split_equals_regex_on_stress_text(name, text):
    assert native.split(text, CODES[name]) == reference(name, text)


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=300, deadline=None)
@given(text=st.text(max_size=40))
def test_split_equals_regex_on_any_text(name, text):
    assert native.split(text, CODES[name]) == reference(name, text)


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=200, deadline=None)
@given(text=st.one_of(st.text(max_size=60), stress_text))
def test_pieces_tile_the_text(name, text):
    pieces = native.split(text, CODES[name])
    assert "".join(pieces) == text
    assert all(pieces)  # no empty piece: every call moves forward
    assert native.count_pieces(text, CODES[name]) == len(pieces)


EDGE_CASES = [
    "",
    " ", "   ", "\n", "\n\n", "\r\n", " \n ", "\t\t", "\u3000\u3000", "\n  ", "  \n", " \r\n \r\n ",
    "a ", "a  ", "a \n", "a  \n", "a\n", "a \n ", "hello world   ", "x\u00a0\u00a0",
    "a   b", "a \n b", "a\t\t b", "a \u3000b", "a\n\nb", "a\r\n\r\nb", "x \r\n  y", "!\r\n", "!\r\n\r\nx",
    "'s", "'S", "'ll go", "don't", "DON'T", "it'S", "I'LL", "we'Re", "'", "''", "''s", "'x", " 's",
    "a'\u017f", "'\u017f", "end's", "o'clock", "rock'n'roll", "'dd", "'lll",
    "1", "123", "1234", "12345", "1234567", " 1234", "a1234b", "\u0663\u0663\u0663\u0663", "\u00b2\u00b3\u00b9\u00bd",
    "\U0001d7d8\U0001d7d9\U0001d7da\U0001d7db",
    "helloWorld", "HTTPServer", "XMLHttpRequest", "iPhone", "ABC", "ABC def", "getHTTPResponseCode",
    "\u01c5ungla", "\u02b0A", "A\u02b0", "A\u02b0b", "\u4e2dA", "A\u4e2d", "e\u0301", "\u0301", "\u0301a", "A\u0301",
    " \u0301", "!!\u0301", "a\u0301b", "\u0301\u0301", "\u3000\u4e2d", "\tabc", "\nabc",
    "!/a", ".\n/", "!\n/x", "a//b", "http://x.y/z", "/a", " /", "!/ /", "</div>\n/",
    "\U0001f642\U0001f642 ok", "x\x00y", "e.g. \u201cquoted\u201d", "\u2019s", "I\u2019m",
]  # fmt: skip


@pytest.mark.parametrize("name", NAMES)
def test_split_equals_regex_on_edge_cases(name):
    for text in EDGE_CASES:
        assert native.split(text, CODES[name]) == reference(name, text), repr(text)


# What the reference gives where the patterns surprise (regex 2026.11, written out by hand from it).
@pytest.mark.parametrize(
    ("name", "text", "pieces"),
    [
        ("gpt2", "'S'LL", ["'", "S", "'", "LL"]),  # gpt2's contractions are case-sensitive
        ("cl100k", "'S'LL", ["'S", "'LL"]),
        ("cl100k", "a'\u017f", ["a", "'\u017f"]),  # (?i) folds U+017F LONG S to s
        ("o200k", "a'\u017f", ["a'\u017f"]),
        ("o200k", "HTTPServer", ["HTTPServer"]),  # an upper run, then the lower run after its last letter
        ("o200k", "helloWorld", ["hello", "World"]),
        ("o200k", "DON'T", ["DON'T"]),
        ("o200k", "\u02b0A", ["\u02b0", "A"]),  # Lm is upper and lower: U* gives it back to W+
        ("o200k", "!/a", ["!/", "a"]),
        ("o200k", ".\n/", [".\n/"]),
        ("cl100k", ".\n/", [".\n", "/"]),
        ("o200k", "\n  ", ["\n", "  "]),  # no `\s++$` in o200k: the run stops after its last newline
        ("cl100k", "\n  ", ["\n  "]),
        ("cl100k", "a  \n", ["a", "  \n"]),
        ("gpt2", "a   b", ["a", "  ", " b"]),
        ("cl100k", "1234567", ["123", "456", "7"]),
        ("cl100k", " 1234", [" ", "123", "4"]),
        ("o200k", "!!\u0301", ["!!\u0301"]),
    ],
)
def test_split_surprising_cases(name, text, pieces):
    assert reference(name, text) == pieces  # the reference still says so
    assert native.split(text, CODES[name]) == pieces


@pytest.mark.parametrize("name", ["gpt2", "cl100k"])
def test_end_anchor_never_matches_before_a_final_newline(name):
    """Python's `$` also matches just before a final "\\n"; after the possessive `\\s++` it cannot:
    the run has taken that newline. A non-possessive `\\s+$` would give the same pieces here too,
    since greedy `\\s+` first tries the whole run and `$` holds at the very end."""
    for text in ["a \n", "a\t\n", "a \u3000\n", "a\n", "a \n\n"]:
        assert regex.search(r"\s++$", text).end() == len(text)
        assert native.split(text, CODES[name]) == reference(name, text) == ["a", text[1:]]


def test_contraction_letters_fold_as_the_c_code_assumes():
    """pretok.c's letter_end knows the (?i) variants of the contraction letters: the ASCII pair, and
    U+017F for s. Check that against the regex module over every code point."""
    everything = "".join(map(chr, range(0x110000)))
    for letter in "sdmtlver":
        found = {m.group() for m in regex.finditer(f"(?i:{letter})", everything)}
        assert found == {letter, letter.upper()} | ({"\u017f"} if letter == "s" else set()), letter


def test_unicode_table_is_current():
    """unicode_classes.h is what gen_unicode_classes.py makes from the installed regex module."""
    spec = importlib.util.spec_from_file_location("gen_unicode_classes", NATIVE_DIR / "gen_unicode_classes.py")
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    committed = (NATIVE_DIR / "unicode_classes.h").read_text()
    made = gen.render()
    # the first line names the regex version it came from; a new regex with the same tables is fine
    assert committed.split("\n", 1)[1] == made.split("\n", 1)[1], (
        "unicode_classes.h is stale: run python src/tokvec/tokenizers/_native/gen_unicode_classes.py"
    )


def test_split_refuses_an_unknown_pattern():
    with pytest.raises(ValueError, match="got 3"):
        native.split("a", 3)
    with pytest.raises(ValueError, match="got -1"):
        native.count_pieces("a", -1)


def test_lone_surrogate_is_pythons_encode_error():
    with pytest.raises(UnicodeEncodeError):
        native.split("a\ud800b", native.GPT2)


def corpus(filename: str) -> str:
    if not (DATA / filename).is_file():
        pytest.skip(f"corpus {filename} not found (expected beside the repository in ../shared/data)")
    return (DATA / filename).read_text(encoding="utf-8")


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("filename", ["tinyshakespeare.txt", "tang-poems.txt"])
def test_split_equals_regex_on_corpus(name, filename):
    """The whole corpus, in chunks of ~256 KB cut after a newline (so a failure names its place)."""
    text = corpus(filename)
    start = 0
    while start < len(text):
        end = text.find("\n", start + 256 * 1024)
        end = len(text) if end < 0 else end + 1
        chunk = text[start:end]
        assert native.split(chunk, CODES[name]) == reference(name, chunk), f"chunk at character {start}"
        start = end
