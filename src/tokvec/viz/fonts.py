"""Find a font that draws Chinese (and Japanese, Korean) glyphs, so token labels are not boxes.

matplotlib's default DejaVu Sans has no CJK glyphs: a label like "王" renders as an empty box with
only a warning on stderr. tokvec looks for a CJK-capable font through ``matplotlib.font_manager``,
uses it as a per-glyph fallback after DejaVu Sans, and records which font it used (or that none was
found) on every figure, so nobody is left staring at boxes without knowing why.

Install one on Debian/Ubuntu with ``apt-get install fonts-noto-cjk`` (``make test`` does it when root).
"""

from __future__ import annotations

import os
import re
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from typing import Iterator

# Families known to cover CJK, best first. Chinese (SC) first: tokvec's Chinese corpora are the common case.
PREFERRED = (
    "Noto Sans CJK SC",
    "Noto Sans CJK TC",
    "Noto Sans CJK JP",
    "Noto Sans CJK KR",
    "Source Han Sans SC",
    "Source Han Sans CN",
    "Source Han Sans",
    "WenQuanYi Zen Hei",
    "WenQuanYi Micro Hei",
    "Noto Serif CJK SC",
    "Droid Sans Fallback",
    "AR PL UMing CN",
    "AR PL UKai CN",
    "SimHei",
    "Microsoft YaHei",
    "PingFang SC",
    "Hiragino Sans GB",
    "Heiti SC",
    "Arial Unicode MS",
)
PROBE = "你好嗎王"  # a font must carry all of these to count as CJK-capable
BASE_FAMILY = "DejaVu Sans"  # matplotlib's bundled font: always present, covers Latin, Greek, arrows
INSTALL_HINT = "install a CJK font (Debian/Ubuntu: apt-get install fonts-noto-cjk) for Chinese labels"

_CJK = re.compile(r"[\u2e80-\u9fff\uac00-\ud7af\uf900-\ufaff\uff00-\uffef\U00020000-\U0003ffff]")


@dataclass(frozen=True)
class FontInfo:
    """The CJK font tokvec draws with: ``name`` and ``path``, or both None when none was found."""

    name: str | None
    path: str | None

    @property
    def found(self) -> bool:
        return self.name is not None

    def describe(self) -> str:
        """One line for a user: which font, or that none was found and how to fix it."""
        if self.found:
            return f"CJK font: {self.name} ({self.path})"
        return f"no CJK font found: Chinese/Japanese/Korean labels would draw as boxes; {INSTALL_HINT}"


def has_cjk(text: str) -> bool:
    """True when ``text`` holds a CJK ideograph, kana, hangul or full-width form."""
    return bool(_CJK.search(text))


def _covers(path: str, probe: str) -> bool:
    from matplotlib.ft2font import FT2Font

    try:
        charmap = FT2Font(path).get_charmap()
    except Exception:  # an unreadable font file is simply not a candidate
        return False
    return all(ord(c) in charmap for c in probe)


def _search(font_list) -> FontInfo:
    by_name: dict[str, str] = {}
    for entry in font_list:
        if entry.style == "normal" and entry.weight in (400, "normal", "regular"):
            by_name.setdefault(entry.name, entry.fname)
    for entry in font_list:  # bold-only installs still count
        by_name.setdefault(entry.name, entry.fname)
    candidates = [n for n in PREFERRED if n in by_name]
    candidates += sorted(n for n in by_name if "CJK" in n and n not in candidates)
    for name in candidates:
        if _covers(by_name[name], PROBE):
            return FontInfo(name, by_name[name])
    return FontInfo(None, None)


@lru_cache(maxsize=1)
def find_cjk_font() -> FontInfo:
    """The best CJK-capable font matplotlib can use, looked up once per process.

    When matplotlib's font cache predates a font install (fonts added after its first run), the
    system font directories are rescanned once before giving up.
    """
    from matplotlib import font_manager

    info = _search(font_manager.fontManager.ttflist)
    if info.found:
        return info
    known = {os.path.realpath(f.fname) for f in font_manager.fontManager.ttflist}
    on_disk = {os.path.realpath(p) for p in font_manager.findSystemFonts()}
    if on_disk - known:  # stale cache: fonts were installed after matplotlib built it
        info = _search(font_manager.FontManager().ttflist)  # a fresh scan of the system font directories
        if info.found:
            font_manager.fontManager.addfont(info.path)
    return info


def font_families() -> list[str]:
    """Font family list for text: DejaVu Sans first, then the CJK font (matplotlib falls back per glyph)."""
    info = find_cjk_font()
    return [BASE_FAMILY, info.name] if info.found else [BASE_FAMILY]


@contextmanager
def cjk_text() -> Iterator[FontInfo]:
    """Within this block, new matplotlib text draws CJK glyphs with the CJK font (when one exists).

    Text objects copy the concrete family list when created, so a figure built inside the block keeps
    its fonts when saved later.
    """
    import matplotlib

    info = find_cjk_font()
    with matplotlib.rc_context({"font.family": font_families(), "axes.unicode_minus": False}):
        yield info
