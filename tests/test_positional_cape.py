"""CAPE (Likhomanenko et al. 2021): sinusoidal in eval, per-sequence augmented positions in training."""

import math

import pytest
import torch

from tokvec import GPT, InputEmbedding, ModelConfig
from tokvec.errors import TokvecTypeError, TokvecValueError
from tokvec.positional import CAPEPositionalEncoding, SinusoidalPositionalEncoding, build, sinusoidal_table
from tokvec.positional.sinusoidal import sinusoids

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def _pair(**options):
    """An InputEmbedding with CAPE and one with sinusoidal, sharing the token table."""
    torch.manual_seed(0)
    cape = InputEmbedding(13, 16, positional="cape", positional_options=options)
    sin = InputEmbedding(13, 16, positional="sinusoidal")
    sin.token.load_state_dict(cape.token.state_dict())
    return cape, sin


def test_defaults_are_the_papers_text_settings():
    cape = build("cape", d_model=16)
    assert isinstance(cape, CAPEPositionalEncoding) and cape.acts_on == "input"
    assert (cape.global_shift, cape.local_shift, cape.global_scaling) == (5.0, 0.5, 1.03)


def test_eval_equals_sinusoidal_exactly():
    cape, sin = _pair()
    cape.eval(), sin.eval()
    ids = torch.randint(0, 13, (3, 40))
    assert torch.equal(cape(ids), sin(ids))
    at = torch.arange(7, 47)  # positions after 7 cached tokens
    assert torch.equal(cape(ids, positions=at), sin(ids, positions=at))
    assert torch.equal(cape.positional.table(10, offset=3), sinusoidal_table(10, 16, offset=3))


def test_fractional_positions_follow_the_sinusoid_formula():
    # PE(p)[2i] = sin(p / 10000^(2i/d)), PE(p)[2i+1] = cos(...), at a position between two integers
    d, p = 8, 2.5
    got = sinusoids(torch.tensor([p], dtype=torch.float64), d)[0]
    want = [f(p / 10000 ** (2 * (j // 2) / d)) for j, f in zip(range(d), [math.sin, math.cos] * (d // 2))]
    torch.testing.assert_close(got, torch.tensor(want, dtype=torch.float64), rtol=0, atol=1e-12)
    assert torch.equal(sinusoids(torch.arange(5, dtype=torch.float64), d).float(), sinusoidal_table(5, d))


def test_training_positions_stay_in_bounds_and_differ_between_sequences():
    cape = CAPEPositionalEncoding(16, global_shift=5.0, local_shift=0.5, global_scaling=1.03)
    gen = torch.Generator().manual_seed(1234)
    draws = [cape.draw(8, 64, generator=gen) for _ in range(50)]
    shift = torch.cat([d.shift for d in draws])
    local = torch.cat([d.local for d in draws])
    scale = torch.cat([d.scale for d in draws])
    assert shift.shape == (400, 1) and local.shape == (400, 64) and scale.shape == (400, 1)
    assert shift.abs().max() <= 5.0 and local.abs().max() <= 0.5
    assert scale.min() >= 1 / 1.03 and scale.max() <= 1.03
    # the bounds are used, not just respected: 400 uniform draws come within 2% of each end
    assert shift.max() > 4.9 and shift.min() < -4.9 and scale.max() > 1.029 and scale.min() < 1 / 1.029
    # positions = λ (p + Δ + ε), one Δ and λ per sequence; the order is kept (|ε| <= 1/2)
    positions = torch.arange(64)
    augmented = draws[0].apply(positions)
    torch.testing.assert_close(augmented[3], draws[0].scale[3] * (positions + draws[0].shift[3] + draws[0].local[3]))
    assert torch.all(augmented[:, 1:] >= augmented[:, :-1])
    assert len({round(float(s), 12) for s in draws[0].shift}) == 8  # 8 sequences, 8 different shifts


def test_training_adds_the_sinusoids_of_the_drawn_positions_reproducibly():
    cape, sin = _pair()
    cape.train()
    ids = torch.randint(0, 13, (4, 12))
    cape.positional.generator = torch.Generator().manual_seed(7)
    got = cape(ids)
    draw = cape.positional.draw(4, 12, generator=torch.Generator().manual_seed(7))
    want = cape.token(ids) + sinusoids(draw.apply(torch.arange(12)), 16).float()
    torch.testing.assert_close(got, want, rtol=0, atol=1e-6)
    # each sequence sees its own positions; a second batch draws new ones
    per_sequence = got - cape.token(ids)  # (b, s, d): the position vectors added
    assert not torch.allclose(per_sequence[0], per_sequence[1])
    assert not torch.allclose(cape(ids), got)
    # with every augmentation off, training is sinusoidal again
    plain, sin = _pair(global_shift=0.0, local_shift=0.0, global_scaling=1.0)
    plain.train()
    torch.testing.assert_close(plain(ids), sin(ids), rtol=0, atol=1e-6)


def test_global_rng_reproduces_the_draws_like_dropout():
    cape, _ = _pair()
    cape.train()
    ids = torch.randint(0, 13, (2, 6))
    torch.manual_seed(3)
    first = cape(ids)
    torch.manual_seed(3)
    assert torch.equal(cape(ids), first)


def test_given_positions_are_augmented_per_sequence(error_says):
    cape = CAPEPositionalEncoding(8, global_shift=0.0, local_shift=0.0, global_scaling=1.0).train()
    x = torch.zeros(2, 3, 8)
    at = torch.tensor([[4, 5, 6], [10, 11, 12]])
    torch.testing.assert_close(cape.add_(x.clone(), at), sinusoidal_table(13, 8)[at])
    with error_says(TokvecValueError, "(4,)", "(3,) or (2, 3)"):
        cape.add_(x.clone(), torch.arange(4))


def test_no_parameters_and_the_gradient_path_of_sinusoidal():
    cape = CAPEPositionalEncoding(16).train()
    assert list(cape.parameters()) == [] and cape.state_dict() == {}
    grads = []
    for scheme in (SinusoidalPositionalEncoding(16), cape):
        x = torch.randn(2, 5, 16, requires_grad=True)
        y = scheme(x)
        (y * 3).sum().backward()  # y = x + pe with pe a constant: dy/dx = 1
        grads.append(x.grad)
    assert torch.equal(grads[0], torch.full((2, 5, 16), 3.0)) and torch.equal(grads[1], grads[0])


def test_gpt_with_cape_trains_and_matches_sinusoidal_in_eval():
    torch.manual_seed(0)
    model = GPT(ModelConfig(vocab_size=11, context_length=16, d_model=32, n_layers=1, n_heads=2, positional="cape"))
    ids = torch.randint(0, 11, (3, 16))
    _, loss = model(ids, ids)
    loss.backward()
    assert math.isfinite(float(loss.detach()))
    model.eval()
    twin = GPT(
        ModelConfig(vocab_size=11, context_length=16, d_model=32, n_layers=1, n_heads=2, positional="sinusoidal")
    ).eval()
    twin.load_state_dict(model.state_dict())
    with torch.no_grad():
        assert torch.equal(model(ids)[0], twin(ids)[0])
        cache = model.new_cache()  # eval with a KV cache: cached positions continue where the prefix ended
        parts = [model(ids[:, :9], cache=cache)[0]] + [model(ids[:, i : i + 1], cache=cache)[0] for i in range(9, 16)]
    torch.testing.assert_close(torch.cat(parts, dim=1), twin(ids)[0], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "option,value,facts",
    [
        ("local_shift", 0.7, ("local_shift", "[0, 0.5]", "got 0.7", "half a step")),
        ("global_shift", -1.0, ("global_shift", "[0, inf]", "got -1.0")),
        ("global_scaling", 0.9, ("global_scaling", "[1, inf]", "got 0.9")),
        ("global_scaling", float("nan"), ("global_scaling", "[1, inf]", "got nan")),
        ("global_shift", "5", ("global_shift", "[0, inf]", "got '5'")),
    ],
)
def test_bad_options_name_the_value_and_the_limit(option, value, facts, error_says):
    with error_says(TokvecValueError, *facts):
        build("cape", d_model=16, **{option: value})


def test_options_are_checked_by_the_model_config_and_generator_type(error_says):
    with pytest.raises(TokvecValueError, match=r"'cape'"):
        ModelConfig(vocab_size=11, positional="cape", positional_options={"shift": 3}).validate()
    with error_says(TokvecTypeError, "torch.Generator or None", "got int"):
        CAPEPositionalEncoding(8).draw(1, 2, generator=7)


@pytest.mark.slow
def test_under_torch_compile_draws_stay_random_and_eval_stays_sinusoidal():
    cape, sin = _pair()
    compiled = torch.compile(cape, backend="aot_eager")  # dynamo + autograd tracing, no codegen (seconds)
    ids = torch.randint(0, 13, (2, 8))
    cape.train()
    a, b = compiled(ids), compiled(ids)
    assert not torch.allclose(a, b)  # the draw is not baked into the graph as a constant
    cape.eval(), sin.eval()
    torch.testing.assert_close(compiled(ids), sin(ids), rtol=0, atol=0)


def test_a_resumed_cape_run_draws_what_the_uninterrupted_run_drew(tmp_path):
    """The draws come from torch's CPU generator, whose state a checkpoint saves: resume is exact."""
    from tokvec.runs.train import TrainConfig, train

    (tmp_path / "corpus.txt").write_text("the quick brown fox jumps over the lazy dog. " * 40, encoding="utf-8")

    def config(out):
        return TrainConfig(
            corpus=str(tmp_path / "corpus.txt"),
            tokenizer="char",
            positional="cape",
            d_model=32,
            n_layers=1,
            n_heads=2,
            context_length=16,
            batch_size=4,
            max_steps=8,
            eval_interval=4,
            eval_batches=1,
            lr=3e-3,
            seed=7,
            threads=1,
            out=str(tmp_path / out),
        )

    full = train(config("full"))

    def stop_after_5(step, total, info):
        if step == 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(config("cut"), progress=stop_after_5)
    resumed = train(TrainConfig.for_resume(str(tmp_path / "cut")))
    assert resumed.start_step == 5 and resumed.losses == full.losses[5:]
