"""The recipes of docs/architecture.md, followed step by step: if a recipe goes stale, this fails."""

import sys
import types

import pytest
import torch
import typer

from tokvec import GPT, ModelConfig, load_tokenizer
from tokvec.positional import PositionalEncoding, build, registry
from tokvec.positional.base import check_positive_int
from tokvec.tokenizers import base as tokenizer_base
from tokvec.tokenizers.vocab_tokenizer import VocabTokenizer
from tokvec.vocab import DEFAULT_SPECIALS


# -- add a positional scheme ----------------------------------------------------------------------
class StepPositionalEncoding(PositionalEncoding):
    """Toy additive scheme: position p adds p / 4 to every dimension."""

    name = "step"
    acts_on = "input"

    def __init__(self, d_model: int, max_len: int = 1024):
        super().__init__()
        self.d_model = check_positive_int("d_model", d_model)

    def table(self, seq_len: int, offset: int = 0) -> torch.Tensor:
        return self.pe(torch.arange(offset, offset + seq_len))

    def pe(self, positions: torch.Tensor) -> torch.Tensor:
        """positions: (s,) or (b, s) -> (s, d_model) or (b, s, d_model)."""
        return (positions.float() / 4).unsqueeze(-1).expand(*positions.shape, self.d_model)


@pytest.fixture
def step_scheme(monkeypatch):
    # step 1: the file src/tokvec/positional/step.py, stood in for by a module of that name
    module = types.ModuleType("tokvec.positional.step")
    module.StepPositionalEncoding = StepPositionalEncoding
    monkeypatch.setitem(sys.modules, "tokvec.positional.step", module)
    # step 2: one line in SCHEMES
    monkeypatch.setitem(registry.SCHEMES, "step", "step:StepPositionalEncoding")


def test_recipe_add_a_positional_scheme(step_scheme):
    assert "step" in registry.available()
    pe = build("step", d_model=4, n_heads=2, head_dim=2, max_len=16)
    assert isinstance(pe, StepPositionalEncoding) and pe.table(3, offset=2)[:, 0].tolist() == [0.5, 0.75, 1.0]
    # step 3: a model config names it, and the model trains with it
    torch.manual_seed(0)
    model = GPT(ModelConfig(vocab_size=11, d_model=8, n_layers=1, n_heads=2, context_length=8, positional="step"))
    ids = torch.randint(0, 11, (2, 8))
    logits, loss = model(ids, ids)
    assert logits.shape == (2, 8, 11)
    loss.backward()
    assert model.embed.token.weight.grad is not None


# -- add a tokenizer ------------------------------------------------------------------------------
def vowel_pieces(text: str) -> list[str]:
    """Cut after every vowel: "banana bandana" -> ba, na, na, " ba", nda, na."""
    pieces, piece = [], ""
    for ch in text:
        piece += ch
        if ch in "aeiou":
            pieces.append(piece)
            piece = ""
    return pieces + ([piece] if piece else [])


def test_recipe_add_a_tokenizer(tmp_path, monkeypatch):
    monkeypatch.setattr(tokenizer_base, "_KINDS", dict(tokenizer_base._KINDS))  # forget it after the test

    @tokenizer_base.register_tokenizer("vowel")  # step 1
    class VowelTokenizer(VocabTokenizer):
        """Toy: a piece ends after every vowel ("banana" -> ba, na, na)."""

        @classmethod
        def train(cls, texts, *, specials=DEFAULT_SPECIALS):  # step 2
            return cls(cls._train_vocab(texts, vowel_pieces, min_freq=1, max_size=None, specials=specials))

        def _split(self, text):
            return vowel_pieces(text)

        def _join(self, pieces):
            return "".join(pieces)

    tok = VowelTokenizer.train(["banana bandana"])
    assert tok.tokens("banana") == ["ba", "na", "na"]
    ids = tok.encode("banana")
    assert tok.decode(ids) == "banana" and ids[1] == ids[2]
    tok.save(tmp_path / "vowel.json")
    back = load_tokenizer(tmp_path / "vowel.json")
    assert type(back) is VowelTokenizer and back.encode("banana") == ids


# -- add a CLI command ----------------------------------------------------------------------------
def test_recipe_add_a_cli_command(cli, monkeypatch):
    from tokvec.cli import app, out
    from tokvec.errors import TokvecValueError

    monkeypatch.setattr(app, "registered_commands", list(app.registered_commands))  # forget it after the test

    @app.command("shout")  # step 2
    def shout(
        text: str = typer.Argument(..., help="Text to shout."),
        times: int = typer.Option(1, "--times", help="How often."),
    ) -> None:
        """Print TEXT in capitals."""
        if times < 1:
            raise TokvecValueError(f"--times must be >= 1, got {times}")
        out.print(" ".join([text.upper()] * times))

    code, printed, _ = cli("shout", "你好 hello", "--times", "2")
    assert code == 0 and printed == "你好 HELLO 你好 HELLO\n"
    code, _, err = cli("shout", "x", "--times", "0")  # step 3: one line, exit 2
    assert code == 2 and err == "tokvec: error: --times must be >= 1, got 0\n"
    # step 5: the fast `tokvec --help` page does not list it yet, which test_cli_startup's comparison catches
    from tokvec.__main__ import COMMANDS

    assert "shout" in typer.main.get_command(app).commands and "shout" not in dict(COMMANDS)
