"""Devices and precisions: the resolver, the device-gated fast paths, training on a chosen device
without per-step syncs, mixed precision, activation checkpointing, torch.compile.

This machine has no GPU: every device-dependent branch is reached by handing the code another
machine's :class:`Inventory`, or a tensor on the ``meta`` device (a device type that is not the CPU).
"""

from __future__ import annotations

import json
import math
from unittest import mock

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tokvec.data import load_token_file, write_token_file
from tokvec.device import (
    Inventory,
    Precision,
    cpu_flags,
    describe_environment,
    resolve_device,
    resolve_precision,
    to_device,
)
from tokvec.errors import DeviceError, FormatError, TokvecValueError
from tokvec.model import GPT, CausalSelfAttention, ModelConfig
from tokvec.model.fast import banded, decode
from tokvec.positional import build
from tokvec.runs import checkpoint as ckpt
from tokvec.runs.train import TrainConfig, train
from tokvec.tokenizers import CharTokenizer

CPU_ONLY = Inventory(cuda=0, mps=False, system="Linux")
TWO_GPUS = Inventory(cuda=2, mps=False, system="Linux", cuda_bf16=(True, False))
A_MAC = Inventory(cuda=0, mps=True, system="Darwin")
TEXT = ("First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n\n") * 16


# -- resolving a device ------------------------------------------------------------------------
def test_auto_prefers_cuda_then_mps_then_cpu():
    assert resolve_device("auto", inventory=TWO_GPUS) == torch.device("cuda", 0)
    assert resolve_device("auto", inventory=A_MAC) == torch.device("mps")
    assert resolve_device("auto", inventory=CPU_ONLY) == torch.device("cpu")
    assert resolve_device(None, inventory=CPU_ONLY) == torch.device("cpu")
    assert resolve_device("auto") == torch.device("cpu")  # this machine, probed


def test_explicit_devices():
    assert resolve_device("cpu", inventory=TWO_GPUS) == torch.device("cpu")
    assert resolve_device("cuda", inventory=TWO_GPUS) == torch.device("cuda", 0)
    assert resolve_device("CUDA:1", inventory=TWO_GPUS) == torch.device("cuda", 1)
    assert resolve_device(torch.device("cuda", 1), inventory=TWO_GPUS) == torch.device("cuda", 1)
    assert resolve_device("mps", inventory=A_MAC) == torch.device("mps")
    assert TWO_GPUS.devices() == ["cpu", "cuda:0", "cuda:1"] and A_MAC.devices() == ["cpu", "mps"]


def test_missing_devices_name_what_is_there(error_says):
    with error_says(DeviceError, "--device cuda", "no CUDA device", "available: cpu", "--device auto"):
        resolve_device("cuda", inventory=CPU_ONLY)
    with error_says(DeviceError, "--device cuda:2", "cuda:0 .. cuda:1", "available: cpu, cuda:0, cuda:1"):
        resolve_device("cuda:2", inventory=TWO_GPUS)
    with error_says(DeviceError, "--device mps", "Linux", "macOS on Apple silicon", "available: cpu"):
        resolve_device("mps", inventory=CPU_ONLY)
    with error_says(DeviceError, "'tpu'", "auto, cpu, cuda, cuda:N or mps", "cpu, cuda:0, cuda:1"):
        resolve_device("tpu", inventory=TWO_GPUS)
    assert issubclass(DeviceError, ValueError)


# -- precision ---------------------------------------------------------------------------------
def test_auto_precision_follows_the_hardware():
    cpu = torch.device("cpu")
    p = resolve_precision("auto", cpu, inventory=Inventory(cpu_flags=frozenset({"avx512f"})))
    assert (p.name, p.autocast_dtype, p.param_dtype) == ("fp32", None, torch.float32)
    assert "no AVX512-BF16 or AMX" in p.reason
    p = resolve_precision("auto", cpu, inventory=Inventory(cpu_flags=frozenset({"avx512_bf16"})))
    assert p.name == "fp32" and "AVX512-BF16 but no AMX" in p.reason
    p = resolve_precision("auto", cpu, inventory=Inventory(cpu_flags=frozenset({"amx_tile", "amx_bf16"})))
    assert (p.name, p.autocast_dtype) == ("bf16", torch.bfloat16) and "AMX" in p.reason
    assert resolve_precision("auto", torch.device("cuda", 0), inventory=TWO_GPUS).name == "bf16"
    assert resolve_precision("auto", torch.device("cuda", 1), inventory=TWO_GPUS).name == "fp32"  # pre-Ampere
    assert resolve_precision("auto", torch.device("mps"), inventory=A_MAC).name == "fp32"


def test_explicit_precisions(error_says):
    assert resolve_precision("fp16", "cuda:0") == Precision("fp16", torch.float16, torch.float32)
    assert resolve_precision("fp16", "cuda:0").scaled and not resolve_precision("bf16", "cpu").scaled
    assert resolve_precision("bf16-pure", "cpu") == Precision("bf16-pure", None, torch.bfloat16)
    with error_says(DeviceError, "--precision fp16", "CUDA", "the device is cpu", "--precision bf16 or fp32"):
        resolve_precision("fp16", "cpu")
    with error_says(DeviceError, "'half'", "auto, fp32, bf16, fp16, bf16-pure"):
        resolve_precision("half", "cpu")


def test_autocast_context_per_precision():
    cpu = torch.device("cpu")
    a, b = torch.randn(4, 4), torch.randn(4, 4)
    with resolve_precision("bf16", cpu).autocast(cpu):
        assert (a @ b).dtype == torch.bfloat16
    with resolve_precision("fp32", cpu).autocast(cpu):
        assert (a @ b).dtype == torch.float32


def test_cpu_flags_from_cpuinfo_text():
    text = (
        "processor\t: 0\nflags\t\t: fpu sse avx2 avx512f avx512_bf16 amx_tile amx_bf16 ht\n"
        "processor\t: 1\nflags\t\t: fpu sse avx2 avx512f avx512_bf16 amx_tile amx_bf16 ht\n"
    )
    assert cpu_flags(text) == {"avx2", "avx512f", "avx512_bf16", "amx_tile", "amx_bf16"}
    assert cpu_flags("no flags line here") == frozenset()


def test_describe_environment_reports_auto_choices_and_versions():
    import tiktoken

    env = describe_environment(Inventory(cuda=0, system="Linux", cpu_flags=frozenset({"avx512f"})))
    assert env["torch"] == torch.__version__ and env["tiktoken"] == tiktoken.__version__
    assert env["devices"] == ["cpu"] and env["auto_device"] == "cpu"
    assert env["auto_device_reason"] == "no CUDA or MPS device found"
    assert env["auto_precision"] == "fp32" and "no AVX512-BF16 or AMX" in env["auto_precision_reason"]
    assert env["cpu_flags"] == ["avx512f"] and env["torch_threads"] == torch.get_num_threads()
    json.dumps(env)  # one JSON object: pasteable into a bug report


def test_to_device_on_the_cpu_is_the_same_tensor():
    x = torch.arange(6).view(2, 3)
    assert to_device(x, torch.device("cpu")) is x


# -- the fast paths pick by device type ----------------------------------------------------------
def test_the_private_kernel_guard_picks_by_device_type_and_dtype(monkeypatch):
    assert banded.cpu_kernel("cpu", torch.float32) and banded.cpu_kernel("cpu", torch.float64)
    for device_type in ("cuda", "mps", "xpu", "meta"):
        assert not banded.cpu_kernel(device_type, torch.float32)
    assert not banded.cpu_kernel("cpu", torch.bfloat16)
    monkeypatch.setattr(banded, "_flash", None)  # a torch build without the private op
    assert not banded.cpu_kernel("cpu", torch.float32)
    assert decode.onednn_switch("cpu") and not decode.onednn_switch("cuda") and not decode.onednn_switch("mps")


@pytest.mark.parametrize("name", ["alibi", "t5", "relative-keys"])
def test_a_non_cpu_tensor_takes_the_public_sdpa_path(name):
    """Same layer on the CPU and on another device type (meta: shapes only): the banded / masked
    private kernel on the first, F.scaled_dot_product_attention with a float mask on the second.
    (Shaw's value term has no SDPA form: off the CPU it is written out, see the test below.)"""
    options = {"values": False} if name == "relative-keys" else {}
    pos = build(name.replace("-keys", ""), d_model=32, n_heads=4, head_dim=8, **options)
    att = CausalSelfAttention(32, 4, positional=pos).eval()
    kernel = "masked_attention" if name == "alibi" else "relative_attention"
    for device, private in (("cpu", True), ("meta", False)):
        att = att.to(device)
        with (
            torch.no_grad(),
            mock.patch.object(banded, kernel, wraps=getattr(banded, kernel)) as fast,
            mock.patch(
                "tokvec.model.attention.F.scaled_dot_product_attention", wraps=F.scaled_dot_product_attention
            ) as sdpa,
        ):
            y = att(torch.randn(1, 600, 32, device=device))
        assert y.shape == (1, 600, 32) and y.device.type == device
        assert (fast.called, sdpa.called) == (private, not private), device


def test_decoding_turns_onednn_off_for_cpu_tensors_only():
    seen = []
    dec = decode.Decoder(GPT(ModelConfig(vocab_size=11, d_model=16, n_layers=1, n_heads=2, context_length=8)))
    before = torch.backends.mkldnn.enabled
    with mock.patch.object(
        decode.Decoder, "_step", lambda self, ids, cache: seen.append(torch.backends.mkldnn.enabled)
    ):
        dec.step(torch.zeros(1, 1, dtype=torch.long), cache=None)
        dec.step(torch.zeros(1, 1, dtype=torch.long, device="meta"), cache=None)
    assert seen == [False, before] and torch.backends.mkldnn.enabled == before


@pytest.mark.parametrize(
    "name", ["none", "sinusoidal", "learned", "rope", "alibi", "relative", "relative-keys", "t5", "xl"]
)
def test_the_generic_path_equals_the_reference_for_every_scheme(name, monkeypatch):
    """With the private kernel unavailable (a CUDA tensor, or a build without it) every scheme runs on
    public F.scaled_dot_product_attention and gives the written-out attention's output and gradients."""
    monkeypatch.setattr(banded, "_flash", None)
    options = {"values": False} if name == "relative-keys" else {}
    scheme = "relative" if name == "relative-keys" else name
    torch.manual_seed(0)
    pos = build(scheme, d_model=32, n_heads=4, head_dim=8, max_len=700, **options)
    with torch.no_grad():
        for p in pos.parameters():
            p.normal_(0.0, 0.5)
    att = CausalSelfAttention(32, 4, positional=pos)
    x = torch.randn(2, 600, 32)  # T5 and Shaw would take the banded kernel at this length
    with (
        mock.patch.object(banded, "relative_attention") as relative,
        mock.patch.object(banded, "masked_attention") as masked,
    ):
        y = att(x)
    assert not relative.called and not masked.called
    params = list(att.parameters())  # input-level schemes (sinusoidal, learned) have none in use here
    grads = torch.autograd.grad(y.square().mean(), params, allow_unused=True, materialize_grads=True)
    y_ref = att(x, need_weights=True)[0]
    grads_ref = torch.autograd.grad(y_ref.square().mean(), params, allow_unused=True, materialize_grads=True)
    torch.testing.assert_close(y, y_ref, atol=1e-5, rtol=1e-5)
    for g, r in zip(grads, grads_ref):
        torch.testing.assert_close(g, r, atol=1e-5, rtol=1e-4)


# -- the model: checked batches, activation checkpointing --------------------------------------
def tiny_model(**overrides) -> GPT:
    torch.manual_seed(0)
    return GPT(
        ModelConfig(
            **{**dict(vocab_size=23, d_model=32, n_layers=2, n_heads=2, context_length=16, dropout=0.1), **overrides}
        )
    )


def test_checked_batches_skip_the_range_reductions(error_says):
    model = tiny_model()
    x = torch.randint(0, 23, (3, 16))
    with mock.patch("tokvec.embedding.torch.aminmax", wraps=torch.aminmax) as aminmax:
        model(x, x)
        assert aminmax.call_count == 2  # ids and targets: each a read-back (a sync on a GPU)
        aminmax.reset_mock()
        model(x, x, checked=True)
        assert aminmax.call_count == 0
    with error_says(TokvecValueError, "token id 23", "(0, 0)", "vocab_size 23"):
        model(torch.full((1, 4), 23), checked=False)


def test_grad_checkpoint_gives_the_same_loss_and_gradients():
    x = torch.randint(0, 23, (3, 16))
    results = []
    for recompute in (False, True):
        model = tiny_model().train()
        model.grad_checkpoint = recompute
        torch.manual_seed(5)  # the same dropout masks: checkpoint() replays the RNG in the recompute
        with mock.patch("tokvec.model.gpt.checkpoint", wraps=torch.utils.checkpoint.checkpoint) as cp:
            _, loss = model(x, x)
            loss.backward()
        assert cp.call_count == (2 if recompute else 0)  # one per block
        results.append((loss.detach(), [p.grad.clone() for p in model.parameters()]))
    (loss_a, grads_a), (loss_b, grads_b) = results
    torch.testing.assert_close(loss_b, loss_a, rtol=0, atol=0)
    for a, b in zip(grads_a, grads_b):
        torch.testing.assert_close(b, a, rtol=1e-6, atol=1e-7)


# -- token files are range-checked once, when loaded ------------------------------------------
def test_a_token_file_with_an_id_past_the_vocabulary_is_refused(tmp_path, error_says):
    tok = CharTokenizer.train([TEXT])
    (tmp_path / "a.txt").write_text(TEXT, encoding="utf-8")
    write_token_file(tok, tmp_path / "a.txt", tmp_path / "ids.bin")
    ids = load_token_file(tmp_path / "ids.bin")
    biggest = int(ids.max())
    side = tmp_path / "ids.bin.json"
    info = json.loads(side.read_text())
    side.write_text(json.dumps({**info, "vocab_size": biggest}))  # the sidecar now claims fewer ids
    first = int(np.argmax(np.asarray(ids) >= biggest))
    with error_says(
        FormatError, f"token id {biggest}", f"index {first}", f"vocab_size {biggest}", f"[0, {biggest - 1}]"
    ):
        load_token_file(tmp_path / "ids.bin")
    side.write_text(json.dumps({**info, "vocab_size": "many"}))
    with pytest.raises(FormatError, match=r"vocab_size.*'many'"):
        load_token_file(tmp_path / "ids.bin")


# -- training on a device, at a precision -------------------------------------------------------
def tiny(tmp_path, **overrides) -> TrainConfig:
    tmp_path.mkdir(parents=True, exist_ok=True)
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(TEXT, encoding="utf-8")
    fields = dict(
        corpus=str(corpus),
        tokenizer="char",
        d_model=32,
        n_layers=2,
        n_heads=2,
        context_length=16,
        batch_size=4,
        max_steps=6,
        eval_interval=3,
        eval_batches=2,
        lr=3e-3,
        seed=7,
        threads=1,
        out=str(tmp_path / "run"),
    )
    return TrainConfig(**{**fields, **overrides})


def test_training_reads_the_loss_back_only_at_log_steps(tmp_path):
    """No range reductions in the hot loop (the token file was checked once), and the loss reaches
    the host every log_interval steps (and at evals), yet every step's loss is reported."""
    seen = []
    with mock.patch("tokvec.embedding.torch.aminmax", wraps=torch.aminmax) as aminmax:
        result = train(
            tiny(tmp_path, max_steps=10, eval_interval=5, log_interval=4),
            progress=lambda step, total, info: seen.append((step, "loss" in info)),
        )
    assert aminmax.call_count == 0
    assert seen == [
        (1, False),
        (2, False),
        (3, False),
        (4, True),
        (5, True),
        (6, False),
        (7, False),
        (8, True),
        (9, False),
        (10, True),
    ]
    assert len(result.losses) == 10 and all(math.isfinite(v) for v in result.losses)


def test_training_on_a_device_this_machine_lacks_fails_before_work(tmp_path, error_says):
    with error_says(DeviceError, "--device cuda", "available: cpu"):
        train(tiny(tmp_path, device="cuda"))
    with pytest.raises(DeviceError, match=r"--precision fp16 needs a CUDA device"):
        train(tiny(tmp_path, precision="fp16", out=str(tmp_path / "fp16")))
    with error_says(TokvecValueError, "'fp8'", "auto, fp32, bf16, fp16, bf16-pure"):
        train(tiny(tmp_path, precision="fp8"))
    with error_says(TokvecValueError, "--bf16", "precision 'fp32'"):
        train(tiny(tmp_path, precision="fp32", bf16=True))


def test_explicit_cpu_and_auto_train_the_same_run(tmp_path):
    a = train(tiny(tmp_path / "a", device="cpu", precision="fp32"))
    b = train(tiny(tmp_path / "b"))  # auto: the CPU and fp32 on this machine
    assert a.losses == b.losses
    assert next(b.model.parameters()).device.type == "cpu"


@pytest.mark.parametrize("precision", ["bf16", "bf16-pure"])
def test_low_precision_runs_save_loadable_float32_checkpoints_and_resume(tmp_path, precision):
    result = train(tiny(tmp_path, precision=precision, max_steps=3))
    assert all(math.isfinite(v) for v in result.losses)
    weights = next(result.model.parameters())
    assert weights.dtype == (torch.bfloat16 if precision == "bf16-pure" else torch.float32)
    model, _, config = ckpt.load_run(tmp_path / "run", device="auto")
    assert config["train"]["precision"] == precision
    assert all(p.dtype == torch.float32 for p in model.parameters())
    saved = dict(model.named_parameters())
    for name, p in result.model.named_parameters():  # the float32 copy holds the bf16 values exactly
        torch.testing.assert_close(saved[name], p.float(), rtol=0, atol=0)
    resumed = train(TrainConfig.for_resume(str(tmp_path / "run"), max_steps=5))
    assert resumed.step == 5 and all(math.isfinite(v) for v in resumed.losses)


def test_grad_checkpoint_trains_the_same_curve(tmp_path):
    a = train(tiny(tmp_path / "a", max_steps=4))
    b = train(tiny(tmp_path / "b", max_steps=4, grad_checkpoint=True))
    assert b.losses == pytest.approx(a.losses, rel=1e-6)


@pytest.mark.slow
def test_compile_trains_the_same_loss_as_eager(tmp_path):
    """torch.compile on the CPU (a C++ toolchain builds the kernels): the same loss to 1e-4 over a few steps."""
    pytest.importorskip("torch._inductor")
    eager = train(tiny(tmp_path / "eager", max_steps=4, eval_interval=4))
    compiled = train(tiny(tmp_path / "compiled", max_steps=4, eval_interval=4, compile=True))
    assert compiled.losses == pytest.approx(eager.losses, abs=1e-4)
    assert compiled.val_loss == pytest.approx(eager.val_loss, abs=1e-4)


# -- the command line -------------------------------------------------------------------------
def test_cli_env_reports_devices_flags_and_auto_choices(cli):
    code, out, _ = cli("env")
    assert code == 0
    rows = dict(
        line.split(None, 1) if not line.startswith("auto") else (line[:14].strip(), line[14:].strip())
        for line in out.strip().splitlines()
    )
    assert rows["torch"].startswith(torch.__version__) and rows["devices"] == "cpu"
    assert rows["auto device"] == "cpu (no CUDA or MPS device found)"
    assert rows["auto precision"].startswith("fp32 (")
    assert rows["bpe"] == "trains with native (tokvec's C trainer)"  # the C trainer is built in tests
    code, out, _ = cli("env", "--json")
    env = json.loads(out)
    assert code == 0 and env["auto_device"] == "cpu" and env["torch"] == torch.__version__
    assert env["bpe_engine"] == "native"
    assert set(env["cpu_flags"]) <= {
        "avx2",
        "avx512f",
        "avx512_bf16",
        "avx512_fp16",
        "amx_tile",
        "amx_bf16",
        "amx_fp16",
    }


def test_cli_device_errors_are_one_line(cli):
    code, _, err = cli("embed", "你好", "--device", "cuda")
    assert code == 2 and err.strip().splitlines() == [
        "tokvec: error: --device cuda asks for CUDA, but this machine has no CUDA device (or this PyTorch build "
        "has no CUDA support); available: cpu; use --device auto"
    ]
    code, _, err = cli("embed", "你好", "--device", "mps")
    assert code == 2 and "--device mps is not available on this Linux machine" in err and len(err.splitlines()) == 1
    code, _, err = cli("train", "--precision", "fp16")
    assert code == 2 and "--precision fp16 needs a CUDA device" in err and "use --precision bf16 or fp32" in err


def test_cli_commands_take_a_device_and_say_what_auto_chose(cli, tmp_path):
    (tmp_path / "corpus.txt").write_text(TEXT, encoding="utf-8")
    run = tmp_path / "run"
    code, out, err = cli(
        "train",
        "--corpus",
        tmp_path / "corpus.txt",
        "--d-model",
        "32",
        "--layers",
        "1",
        "--heads",
        "2",
        "--context",
        "16",
        "--batch-size",
        "4",
        "--max-steps",
        "4",
        "--eval-interval",
        "2",
        "--threads",
        "1",
        "--precision",
        "bf16",
        "--grad-checkpoint",
        "--out",
        run,
    )
    assert code == 0, err
    assert "tokvec train: device cpu (auto: no CUDA or MPS device found)" in err and "done: step 4" in out
    assert json.loads((run / "config.json").read_text())["train"]["precision"] == "bf16"
    code, out, err = cli("generate", "--run", run, "--prompt", "First", "-n", "5", "--seed", "1", "--device", "cpu")
    assert code == 0 and out.startswith("First") and "auto" not in err
    code, out, err = cli("trace", "Speak", "--run", run)
    assert code == 0 and "tokvec trace: device cpu (auto:" in err and "input vectors" in out
    code, _, err = cli(
        "plot", "attention", "--run", run, "--text", "Speak", "--out", tmp_path / "a.png", "--device", "cpu"
    )
    assert code == 0 and (tmp_path / "a.png").stat().st_size > 0


def test_the_fp16_loop_scales_the_loss_and_unscales_before_clipping(tmp_path, monkeypatch):
    """fp16 is refused on a CPU, but the loop's gradient-scaler branch is device-agnostic: run it on the
    CPU (CPU autocast has float16 and torch.amp.GradScaler("cpu") exists) by handing the loop fp16."""
    import tokvec.runs.train as train_module

    monkeypatch.setattr(
        train_module, "resolve_precision", lambda spec, device: Precision("fp16", torch.float16, torch.float32)
    )
    made = []
    real = torch.amp.GradScaler
    monkeypatch.setattr(torch.amp, "GradScaler", lambda device: made.append(real(device)) or made[-1])
    result = train(tiny(tmp_path, max_steps=4, eval_interval=4))
    assert len(made) == 1 and made[0].get_scale() > 1.0  # the loss was scaled (65536, halved on overflow)
    assert len(result.losses) == 4 and all(math.isfinite(v) for v in result.losses)
    assert next(result.model.parameters()).dtype == torch.float32  # fp32 master weights
