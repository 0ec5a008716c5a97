"""tokvec's training against a nanoGPT-style reference (benchmarks/parity_nanogpt.py), component by
component and step by step, on a small model. The 2000-iteration comparison is the benchmark's."""

import importlib.util
import math
import sys
from pathlib import Path

import pytest
import torch

HARNESS = Path(__file__).resolve().parents[1] / "benchmarks" / "parity_nanogpt.py"
SMALL = dict(
    block_size=16,
    batch_size=4,
    n_layer=2,
    n_head=2,
    n_embd=32,
    max_iters=30,
    lr_decay_iters=30,
    learning_rate=1e-3,
    min_lr=1e-4,
    warmup_iters=5,
    beta1=0.9,
    beta2=0.99,
    weight_decay=0.1,
    grad_clip=1.0,
    eval_iters=2,
)


@pytest.fixture(scope="module")
def parity():
    spec = importlib.util.spec_from_file_location("parity_nanogpt", HARNESS)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look themselves up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def corpus(tmp_path):
    text = "".join(f"{i} little pigs, {i * 7 % 13} wolves; the house of straw fell.\n" for i in range(400))
    path = tmp_path / "corpus.txt"
    path.write_text(text, encoding="utf-8")
    return path


def test_schedule_is_nanogpts_at_every_iteration(parity):
    # nanoGPT's get_lr: warmup lr*(it+1)/(warmup+1); cosine to min_lr at lr_decay_iters
    assert parity.check_schedule(2000, 100, 1e-3, 1e-4) == 0.0
    assert parity.get_lr(0, learning_rate=1e-3, min_lr=1e-4, warmup_iters=100, lr_decay_iters=2000) == 1e-3 / 101
    assert parity.get_lr(1050, learning_rate=1e-3, min_lr=1e-4, warmup_iters=100, lr_decay_iters=2000) == pytest.approx(
        1e-4 + 0.5 * 9e-4
    )


def test_weight_decay_goes_to_the_same_tensors(parity):
    from tokvec import GPT, ModelConfig

    model = GPT(ModelConfig(vocab_size=40, context_length=16, d_model=32, n_layers=2, n_heads=2, bias=False))
    ours, theirs = parity.decay_groups(model)
    # every matrix and both tables; no LayerNorm gain (nanoGPT: p.dim() >= 2)
    assert ours == theirs and len(ours) == 2 + 4 * 2
    assert "transformer.wpe.weight" in ours and not any("ln" in n for n in ours)


def test_init_matches_nanogpts_per_tensor(parity):
    stds = dict((name, (a, b)) for name, a, b in parity.init_stds(200, {**SMALL, "n_embd": 128, "n_layer": 4}))
    scaled = 0.02 / math.sqrt(2 * 4)  # nanoGPT's c_proj
    for name, (ours, theirs) in stds.items():
        want = 0.0 if "ln" in name else scaled if name.endswith("c_proj.weight") else 0.02
        assert ours == pytest.approx(want, rel=0.05, abs=1e-9), name
        assert theirs == pytest.approx(want, rel=0.05, abs=1e-9), name


def test_sampler_draws_from_the_same_range(parity):
    (lo, hi), (rlo, rhi) = parity.sampler_starts(500, 16, 12, 400)
    # both: starts uniform in [0, n - block_size) = [0, 483]; 4,800 draws reach both ends
    assert (lo, hi) == (0, 483) and (rlo, rhi) == (0, 483)


@pytest.mark.slow
def test_train_equals_the_reference_loop_step_by_step(parity, corpus, one_thread):
    ours, ref = parity.step_by_step(str(corpus), SMALL, steps=30, dtype=torch.float64)
    assert len(ours) == len(ref) == 30
    assert ours[-1] < ours[0] - 0.2  # it trained (3.55 -> 3.16 here)
    for step, (a, b) in enumerate(zip(ours, ref), start=1):
        assert a == pytest.approx(b, rel=1e-10), f"step {step}"


@pytest.mark.slow
def test_step_by_step_catches_a_changed_recipe(parity, corpus, one_thread):
    """The comparison is sharp: without gradient clipping on the reference side the losses part."""
    ours, ref = parity.step_by_step(str(corpus), SMALL, steps=30, dtype=torch.float64, reference={"grad_clip": 1e9})
    assert max(abs(a - b) / b for a, b in zip(ours, ref)) > 1e-6
