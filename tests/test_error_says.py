"""The error_says fixture (conftest.py) fails a test whose error lacks a fact, whatever the wording."""

import re
import warnings

import pytest

from tokvec.errors import TokenIdError


def _raise():
    raise TokenIdError("token id 70000 at position (0, 3) is out of range for vocab_size 65536")


def test_passes_when_every_fact_is_there_in_any_order(error_says):
    with error_says(TokenIdError, "vocab_size 65536", "70000", re.compile(r"\(\d, \d\)")) as info:
        _raise()
    assert isinstance(info.value, TokenIdError)


def test_fails_naming_the_missing_fact(error_says):
    with pytest.raises(AssertionError, match="vocab_size 1024"):
        with error_says(TokenIdError, "70000", "vocab_size 1024"):
            _raise()


def test_fails_when_nothing_is_raised_or_another_error_is(error_says):
    with pytest.raises(pytest.fail.Exception):
        with error_says(TokenIdError, "70000"):
            pass
    with pytest.raises(KeyError):
        with error_says(TokenIdError, "70000"):
            raise KeyError("70000")


def test_warnings_too(error_says):
    with error_says(UserWarning, "2 pieces", warns=True):
        warnings.warn("2 pieces are unknown", UserWarning)
    with pytest.raises(AssertionError, match="3 pieces"):
        with error_says(UserWarning, "3 pieces", warns=True):
            warnings.warn("2 pieces are unknown", UserWarning)
