"""The one compiled part of tokvec: the BPE trainer (src/tokvec/tokenizers/_native/).

Everything else is declared in pyproject.toml. The extension is optional: without a C compiler the
install still succeeds and BPE training uses rustbpe (``engine="auto"``), at about a third of the speed.
"""

from setuptools import Extension, setup

NATIVE = "src/tokvec/tokenizers/_native/"

setup(
    ext_modules=[
        Extension(
            "tokvec.tokenizers._bpe_native",
            sources=[NATIVE + "module.c", NATIVE + "pretok.c", NATIVE + "train.c"],
            depends=[NATIVE + "pretok.h", NATIVE + "train.h", NATIVE + "unicode_classes.h"],
            extra_compile_args=["-O2", "-std=c11"],
            optional=True,
        )
    ]
)
