r"""Write a tokvec tokenizer as a Hugging Face ``tokenizer.json`` that ``AutoTokenizer`` loads, same ids.

- Byte-level BPE: a ``BPE`` model (the ranks as the vocabulary; every split of a token into two
  tokens of lower rank as a merge, ordered by the rank made, as tiktoken's rule "merge the pair
  whose result ranks lowest" reads in HF's merge order), ``ignore_merges`` (a whole piece that is a
  token stays one, as tiktoken does), and the pre-tokenizer of Llama 3: a ``Split`` on tokvec's
  regex (in Oniguruma syntax) then ``ByteLevel`` without its own regex. Specials are added tokens.
- Char and word tokenizers: a ``WordLevel`` model over the vocabulary with ``<unk>``, after a
  ``Split`` that cuts text exactly as tokvec does (one code point; :data:`WORD_PATTERN` spelled with
  explicit classes, since Oniguruma's ``\w`` and ``\s`` are not Python's). A normalization becomes
  the HF normalizer of the same name. A user segmenter (jieba) cannot be exported.

``tokenizer_config.json`` names the special tokens and ``PreTrainedTokenizerFast``, so no custom
code is needed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import TokvecValueError

if TYPE_CHECKING:  # the tokenizer classes import this module (save_hf); it needs their attributes only
    from .base import Tokenizer

# Python's str.isspace() characters (what `\s` matches in Python's re with str patterns)
_PY_SPACE = (
    "\\t\\n\\x{0B}\\x{0C}\\r\\x{1C}-\\x{1F} \\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}"
    "\\x{2028}\\x{2029}\\x{202F}\\x{205F}\\x{3000}"
)
# Python's \w: str.isalnum() or "_": letters (L*) and characters with a numeric value (N*)
_PY_WORD = "\\p{L}\\p{N}_"


def _oniguruma_class(python_class: str) -> str:
    """The CJK class of word.py (Python escapes \\uXXXX, \\UXXXXXXXX) in Oniguruma's \\x{...} syntax."""
    out = []
    for ch in python_class:
        out.append(ch if ch == "-" else f"\\x{{{ord(ch):X}}}")
    return "".join(out)


def _word_split_regex(cjk_class: str) -> str:
    """WORD_PATTERN (``[CJK]|[^\\W CJK]+|\\s+|[^\\w\\s]``) with explicit classes for Oniguruma;
    ``cjk_class`` is word.py's CJK (Python escapes)."""
    cjk = _oniguruma_class(cjk_class)
    return f"[{cjk}]|[[{_PY_WORD}]&&[^{cjk}]]+|[{_PY_SPACE}]+|[^{_PY_WORD}{_PY_SPACE}]"


def bpe_merges(ranks: dict[bytes, int]) -> list[tuple[bytes, bytes]]:
    """Every (left, right) with left + right a token and both parts tokens of lower rank, ordered by
    the rank of left + right (then of left, right): HF's merge priority equal to tiktoken's rank rule.

    >>> bpe_merges({b"a": 0, b"b": 1, b"ab": 2, b"abb": 3, b"bb": 4})
    [(b'a', b'b'), (b'ab', b'b')]
    """
    merges = []
    for token, rank in ranks.items():
        if len(token) < 2:
            continue
        splits = [
            (token[:i], token[i:])
            for i in range(1, len(token))
            if ranks.get(token[:i], rank) < rank and ranks.get(token[i:], rank) < rank
        ]
        splits.sort(key=lambda lr: (ranks[lr[0]], ranks[lr[1]]))
        merges += [(rank, left, right) for left, right in splits]
    merges.sort(key=lambda m: m[0])
    return [(left, right) for _, left, right in merges]


def _added(content: str, token_id: int) -> dict[str, Any]:
    return {
        "id": token_id,
        "content": content,
        "single_word": False,
        "lstrip": False,
        "rstrip": False,
        "normalized": False,
        "special": True,
    }


def to_hf_json(tokenizer: Tokenizer) -> dict[str, Any]:
    """The ``tokenizer.json`` object of ``tokenizer`` (BPE, char or word: by its ``kind``)."""
    from .interop import bytes_to_printable
    from .patterns import for_oniguruma

    base: dict[str, Any] = {"version": "1.0", "truncation": None, "padding": None, "post_processor": None}
    kind = getattr(tokenizer, "kind", None)
    if kind == "bpe":
        ranks = tokenizer.ranks
        vocab = {bytes_to_printable(t): r for t, r in sorted(ranks.items(), key=lambda kv: kv[1])}
        merges = [[bytes_to_printable(a), bytes_to_printable(b)] for a, b in bpe_merges(ranks)]
        specials = sorted(tokenizer.special_tokens.items(), key=lambda kv: kv[1])
        return {
            **base,
            "added_tokens": [_added(t, i) for t, i in specials],
            "normalizer": None,
            "pre_tokenizer": {
                "type": "Sequence",
                "pretokenizers": [
                    {
                        "type": "Split",
                        "pattern": {"Regex": for_oniguruma(tokenizer.pat_str)},
                        "behavior": "Isolated",
                        "invert": False,
                    },
                    {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False},
                ],
            },
            "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
            "model": {
                "type": "BPE",
                "dropout": None,
                "unk_token": None,
                "continuing_subword_prefix": None,
                "end_of_word_suffix": None,
                "fuse_unk": False,
                "byte_fallback": False,
                "ignore_merges": True,
                "vocab": vocab,
                "merges": merges,
            },
        }
    if kind in ("char", "word"):
        if kind == "word" and tokenizer.segmenter_name:
            raise TokvecValueError(
                f"this word tokenizer splits with the segmenter {tokenizer.segmenter_name!r}, "
                f"a Python function a tokenizer.json cannot hold; export a tokenizer trained "
                f"without one, or use tokvec's own format"
            )
        if kind == "word" and not tokenizer.keep_whitespace:
            raise TokvecValueError(
                "this word tokenizer drops whitespace (keep_whitespace=False) and joins words "
                "with its own spacing rule, which a tokenizer.json decoder cannot express; "
                "train it with keep_whitespace=True to export"
            )
        vocab = tokenizer.vocab
        unk = vocab.lookup_tokens([tokenizer.unk_id])[0] if tokenizer.unk_id is not None else None
        if unk is None:
            raise TokvecValueError("a WordLevel tokenizer.json needs an <unk> token; train with <unk> among specials")
        tokens = vocab.lookup_tokens(list(range(len(vocab))))
        pattern = "[\\s\\S]" if kind == "char" else _word_split_regex(tokenizer.CJK)
        norm = tokenizer.normalization
        return {
            **base,
            "added_tokens": [_added(tokens[i], i) for i in sorted(vocab.special_ids)],
            "normalizer": {"type": norm} if norm else None,
            "pre_tokenizer": {"type": "Split", "pattern": {"Regex": pattern}, "behavior": "Isolated", "invert": False},
            "decoder": {"type": "Fuse"},
            "model": {"type": "WordLevel", "vocab": {t: i for i, t in enumerate(tokens)}, "unk_token": unk},
        }
    raise TokvecValueError(f"{type(tokenizer).__name__} has no Hugging Face export; BPE, char and word tokenizers do")


def tokenizer_config(tokenizer: Tokenizer, *, model_max_length: int | None = None) -> dict[str, Any]:
    """``tokenizer_config.json``: the fast tokenizer class and the special tokens by role."""
    names = {}
    for role, token_id in (
        ("bos_token", tokenizer.bos_id),
        ("eos_token", tokenizer.eos_id),
        ("pad_token", tokenizer.pad_id),
        ("unk_token", tokenizer.unk_id),
    ):
        if token_id is not None:
            names[role] = _token_text(tokenizer, token_id)
    config: dict[str, Any] = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "clean_up_tokenization_spaces": False,
        "add_bos_token": False,
        "add_eos_token": False,
        **names,
    }
    if model_max_length is not None:
        config["model_max_length"] = model_max_length
    return config


def _token_text(tokenizer: Tokenizer, token_id: int) -> str:
    specials = getattr(tokenizer, "special_tokens", None)
    if specials is not None:  # BPE
        return next(t for t, i in specials.items() if i == token_id)
    return tokenizer.vocab.lookup_tokens([token_id])[0]
