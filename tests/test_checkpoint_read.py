"""Reading run weights (tokvec._tensorread, checkpoint.load_run / load_weights / load_optimizer): the
bytes go from the file straight into the model's parameters, hashed in the same pass; tensors come
back identical for every dtype and model shape; damaged files keep their messages; the memory bound
holds by construction (one pass, 1 MiB reads, no copy of the file, no random init)."""

import hashlib
import json
import struct
import tracemalloc

import pytest
import torch
from safetensors.torch import load_file

from tokvec._tensorread import CHUNK, TensorFile
from tokvec.errors import FormatError
from tokvec.model import GPT, ModelConfig
from tokvec.positional import available
from tokvec.runs import checkpoint as ckpt
from tokvec.runs.tensorfile import save_tensors
from tokvec.tokenizers import CharTokenizer

TEXT = "to be or not to be, that is the question. "
DTYPES = [
    torch.bool,
    torch.uint8,
    torch.int8,
    torch.int16,
    torch.uint16,
    torch.int32,
    torch.uint32,
    torch.int64,
    torch.uint64,
    torch.float16,
    torch.bfloat16,
    torch.float32,
    torch.float64,
    torch.float8_e4m3fn,
    torch.float8_e5m2,
    torch.complex64,
]


def same(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Bit for bit (NaN payloads and float8 included)."""
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    if not a.numel():
        return True
    return torch.equal(a.contiguous().reshape(-1).view(torch.uint8), b.contiguous().reshape(-1).view(torch.uint8))


def mixed() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    out = {f"t.{str(dt).split('.')[-1]}": (torch.randn(3, 5, generator=g) * 9).to(dt) for dt in DTYPES}
    out |= {"scalar": torch.tensor(3.5), "empty": torch.zeros(0, 4), "big": torch.randn(700, 1000, generator=g)}
    return out


def write_raw(path, header: dict, data: bytes = b"") -> None:
    blob = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(blob)) + blob + data)


# -- the reader ------------------------------------------------------------------------------------
def test_every_dtype_reads_back_bit_for_bit_and_the_digest_is_the_files(tmp_path):
    tensors = mixed()
    written = save_tensors(tmp_path / "x.safetensors", tensors, metadata={"k": "v"})
    reference = load_file(tmp_path / "x.safetensors")  # the library's reading of the same file
    with TensorFile(tmp_path / "x.safetensors") as f:
        assert f.metadata == {"k": "v"} and set(f.entries) == set(tensors)
        fresh = {name: torch.empty(e.shape, dtype=e.dtype) for name, e in f.entries.items()}
        digest = f.load({name: [t] for name, t in fresh.items()})
    assert digest == written["sha256"] == hashlib.sha256((tmp_path / "x.safetensors").read_bytes()).hexdigest()
    for name, t in tensors.items():
        assert same(fresh[name], t) and same(fresh[name], reference[name]), name


def test_a_destination_of_another_dtype_or_layout_is_cast_and_every_destination_is_filled(tmp_path):
    g = torch.Generator().manual_seed(1)
    w = torch.randn(600, 900, generator=g)  # > CHUNK bytes: several staged slices
    save_tensors(tmp_path / "w.safetensors", {"w": w})
    as_bf16 = torch.empty(600, 900, dtype=torch.bfloat16)
    strided = torch.empty(900, 600).t()  # not contiguous
    again = torch.empty(600, 900, dtype=torch.float64)
    with TensorFile(tmp_path / "w.safetensors") as f:
        f.load({"w": [as_bf16, strided, again]})
        transposed = torch.empty(900, 600)
        f.copy_into("w", transposed, transposed=True, block_bytes=100_000)
    assert torch.equal(as_bf16, w.bfloat16()) and torch.equal(strided, w.bfloat16().float())
    assert torch.equal(again, w.bfloat16().double()) and torch.equal(transposed, w.t())
    with TensorFile(tmp_path / "w.safetensors") as f:
        strided_first = torch.empty(900, 600).t()
        f.load({"w": [strided_first]})
    assert torch.equal(strided_first, w)


@pytest.mark.parametrize(
    "header, data, facts",
    [
        (
            {"w": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]}},
            b"\0" * 8,
            ["'w'", "16 bytes", "truncated"],
        ),
        ({"w": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 12]}}, b"\0" * 16, ["'w'", "0..12", "16 bytes"]),
        ({"w": {"dtype": "Q4", "shape": [2], "data_offsets": [0, 2]}}, b"\0" * 2, ["'w'", "'Q4'", "F32"]),
        ({"w": {"dtype": "F32", "shape": [True], "data_offsets": [0, 4]}}, b"\0" * 4, ["'w'", "malformed"]),
        ({"w": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}}, b"\0" * 4, ["'w'", "malformed"]),
        ({"w": {"dtype": "F32", "shape": [2]}}, b"\0" * 8, ["'w'", "malformed"]),
        (
            {
                "a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]},
            },
            b"\0" * 12,
            ["'a'", "'b'", "overlap", "0..8", "4..12"],
        ),
        ({"__metadata__": {"step": 3}}, b"", ["__metadata__", "strings"]),
        ([1, 2], b"", ["not a safetensors file", "not a JSON object"]),
    ],
)
def test_a_bad_header_is_refused_naming_the_file_and_the_tensor(tmp_path, error_says, header, data, facts):
    write_raw(tmp_path / "bad.safetensors", header, data)
    with error_says(FormatError, "bad.safetensors", *facts):
        TensorFile(tmp_path / "bad.safetensors")


def test_garbage_is_not_a_safetensors_file(tmp_path, error_says):
    (tmp_path / "g.safetensors").write_bytes(b"\xff" * 64)
    with error_says(FormatError, "g.safetensors", "not a safetensors file", "header length"):
        TensorFile(tmp_path / "g.safetensors")
    (tmp_path / "g.safetensors").write_bytes(struct.pack("<Q", 9) + b"{not json")
    with error_says(FormatError, "g.safetensors", "not JSON"):
        TensorFile(tmp_path / "g.safetensors")


def test_bytes_no_tensor_claims_are_hashed_too(tmp_path):
    """A gap between tensors and bytes after the last: part of the file, so part of its sha256."""
    header = {
        "a": {"dtype": "U8", "shape": [2], "data_offsets": [0, 2]},
        "b": {"dtype": "U8", "shape": [2], "data_offsets": [5, 7]},
    }
    write_raw(tmp_path / "gap.safetensors", header, b"\x01\x02GAP\x03\x04TAIL")
    a, b = torch.empty(2, dtype=torch.uint8), torch.empty(2, dtype=torch.uint8)
    with TensorFile(tmp_path / "gap.safetensors") as f:
        digest = f.load({"a": [a], "b": [b]})
    assert digest == hashlib.sha256((tmp_path / "gap.safetensors").read_bytes()).hexdigest()
    assert a.tolist() == [1, 2] and b.tolist() == [3, 4]


# -- runs: identical tensors -----------------------------------------------------------------------
def _run(tmp_path, cfg: ModelConfig, dtype=torch.float32, seed=0):
    tok = CharTokenizer.train([TEXT])
    torch.manual_seed(seed)
    model = GPT(dataclasses_replace(cfg, vocab_size=tok.vocab_size))
    for p in model.parameters():  # parameters only: rope's complex table stays a complex buffer
        p.data = p.data.to(dtype)
    ckpt.save_run(tmp_path, model=model, tokenizer=tok, model_config=model.config.to_dict(), train_config={}, step=3)
    return model


def dataclasses_replace(cfg, **kw):
    import dataclasses

    return dataclasses.replace(cfg, **kw)


BASE = ModelConfig(vocab_size=2, context_length=16, d_model=32, n_layers=2, n_heads=4)
SHAPES = {
    **{f"positional={name}": dataclasses_replace(BASE, positional=name) for name in available()},
    "gqa-untied-llama": dataclasses_replace(
        BASE, positional="rope", norm="rmsnorm", activation="swiglu", n_kv_heads=2, tie_embeddings=False, bias=False
    ),
    "qkv-bias": dataclasses_replace(BASE, positional="rope", bias=False, qkv_bias=True, n_kv_heads=1),
}


@pytest.mark.parametrize("shape", list(SHAPES))
def test_a_saved_run_loads_with_identical_tensors_and_logits(tmp_path, shape):
    model = _run(tmp_path, SHAPES[shape]).eval()
    loaded, _, _ = ckpt.load_run(tmp_path)
    want, got = model.state_dict(), loaded.state_dict()
    assert got.keys() == want.keys()
    assert all(same(got[k], want[k]) for k in want)
    assert (loaded.lm_head.weight is loaded.embed.token.weight) == model.config.tie_embeddings
    x = torch.arange(12).remainder(model.config.vocab_size).unsqueeze(0)
    assert torch.equal(loaded(x)[0], model(x)[0])


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float64])
def test_weights_of_any_stored_dtype_load_as_stored_or_cast(tmp_path, dtype):
    cfg = dataclasses_replace(BASE, positional="learned")
    model = _run(tmp_path, cfg, dtype=dtype)
    same_dtype = GPT.empty(model.config)
    for p in same_dtype.parameters():
        p.data = p.data.to(dtype)
    ckpt.load_weights(tmp_path, same_dtype)  # straight into memory of the stored dtype
    assert all(same(same_dtype.state_dict()[k], v) for k, v in model.state_dict().items())
    loaded = ckpt.load_run(tmp_path)[0]  # a float32 model: cast on the way in, as load_state_dict casts
    assert all(same(loaded.state_dict()[k], v.float()) for k, v in model.state_dict().items())


def test_a_file_that_does_not_fit_names_the_tensor_and_both_shapes(tmp_path, error_says):
    _run(tmp_path, BASE)
    config = json.loads((tmp_path / "config.json").read_text())

    def with_model(**changes):
        config["model"].update(changes)
        (tmp_path / "config.json").write_text(json.dumps(ckpt.seal_config(config)))

    with_model(d_ff=64)
    with error_says(
        ckpt.CheckpointError, "model.safetensors", "config.json", "blocks.0.mlp.fc.weight", "[128, 32]", "[64, 32]"
    ):
        ckpt.load_run(tmp_path)
    with_model(d_ff=None, n_layers=3)
    with error_says(ckpt.CheckpointError, "model.safetensors", "'blocks.2.", "missing", "more"):
        ckpt.load_run(tmp_path)
    with_model(n_layers=1)
    with error_says(ckpt.CheckpointError, "model.safetensors", "'blocks.1.", "not in the model"):
        ckpt.load_run(tmp_path)
    # the same file damaged as well: the damage is what is reported
    data = bytearray((tmp_path / "model.safetensors").read_bytes())
    data[-3] ^= 0xFF
    (tmp_path / "model.safetensors").write_bytes(bytes(data))
    with error_says(ckpt.CheckpointError, "model.safetensors", "corrupted", "sha256", "restore it from a backup"):
        ckpt.load_run(tmp_path)


def test_a_stored_alias_fills_an_untied_model_and_a_bad_alias_map_is_refused(tmp_path, error_says):
    tied = _run(tmp_path, BASE)
    untied = GPT(dataclasses_replace(tied.config, tie_embeddings=False))
    # the tied model's hooks stored the table once and no alias: an untied model misses its head
    with error_says(ckpt.CheckpointError, "model.safetensors", "'lm_head.weight'", "missing"):
        ckpt.load_weights(tmp_path, untied)
    path = tmp_path / "model.safetensors"
    with TensorFile(path) as f:
        tensors = {name: torch.empty(e.shape, dtype=e.dtype) for name, e in f.entries.items()}
        f.load({name: [t] for name, t in tensors.items()})
    for aliases, ok in (({"lm_head.weight": "embed.token.embedding.weight"}, True), ({"x": "nowhere"}, False)):
        written = save_tensors(path, tensors, metadata={"format": "tokvec.model", "aliases": json.dumps(aliases)})
        config = json.loads((tmp_path / "config.json").read_text())
        config["files"]["model.safetensors"] = written
        (tmp_path / "config.json").write_text(json.dumps(ckpt.seal_config(config)))
        if ok:
            ckpt.load_weights(tmp_path, untied)
            assert torch.equal(untied.lm_head.weight, tied.embed.token.weight)
            assert torch.equal(untied.embed.token.weight, tied.embed.token.weight)
        else:
            with error_says(ckpt.CheckpointError, "model.safetensors", "aliases"):
                ckpt.load_weights(tmp_path, untied)


# -- runs: damaged files, pending files ------------------------------------------------------------
def _flip(path, at=-10):
    data = bytearray(path.read_bytes())
    data[at] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage", ["flip", "garbage header", "stale"])
def test_a_damaged_final_file_falls_back_to_the_committed_pending_one(tmp_path, damage):
    model = _run(tmp_path, BASE)
    final, pending = tmp_path / "model.safetensors", tmp_path / ".model.safetensors.pending"
    pending.write_bytes(final.read_bytes())  # a crash after the commit, before the rename
    if damage == "flip":  # the final file is read into the model first, then found wrong
        _flip(final)
    elif damage == "garbage header":
        final.write_bytes(b"\xff" * final.stat().st_size)
    else:  # the previous checkpoint's file: a valid file of the same size with other values
        other = _run(tmp_path / "other", BASE, seed=1)
        final.write_bytes((tmp_path / "other" / "model.safetensors").read_bytes())
        assert not torch.equal(other.embed.token.weight, model.embed.token.weight)
    loaded = ckpt.load_run(tmp_path)[0]
    assert all(same(loaded.state_dict()[k], v) for k, v in model.state_dict().items())


def test_both_files_damaged_is_the_corrupted_error(tmp_path, error_says):
    _run(tmp_path, BASE)
    final, pending = tmp_path / "model.safetensors", tmp_path / ".model.safetensors.pending"
    pending.write_bytes(final.read_bytes())
    _flip(final)
    _flip(pending, -20)
    with error_says(ckpt.CheckpointError, str(final), "corrupted", "sha256", "config.json", "restore it from a backup"):
        ckpt.load_run(tmp_path)
    final.write_bytes(final.read_bytes()[:-5])
    with error_says(ckpt.CheckpointError, str(final), "truncated", "config.json"):
        ckpt.load_run(tmp_path)
    final.unlink()
    pending.unlink()
    with error_says(ckpt.CheckpointError, str(final), "missing", "incomplete"):
        ckpt.load_run(tmp_path)


def test_optimizer_state_round_trips_through_the_reader(tmp_path):
    tok = CharTokenizer.train([TEXT])
    cfg = dataclasses_replace(BASE, vocab_size=tok.vocab_size)
    torch.manual_seed(0)
    model = GPT(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    x = torch.tensor([tok.encode(TEXT[:16])])
    for _ in range(2):
        opt.zero_grad()
        model(x, x)[1].backward()
        opt.step()
    ckpt.save_run(
        tmp_path, model=model, tokenizer=tok, model_config=cfg.to_dict(), train_config={}, step=2, optimizer=opt
    )
    _flip(tmp_path / "optimizer.safetensors")
    fresh = torch.optim.AdamW(GPT(cfg).parameters(), lr=1e-2)
    with pytest.raises(ckpt.CheckpointError, match=r"optimizer.safetensors is corrupted \(\d+ bytes, sha256"):
        ckpt.load_optimizer(tmp_path, fresh)
    _flip(tmp_path / "optimizer.safetensors")  # flipped back
    ckpt.load_optimizer(tmp_path, fresh)
    a, b = opt.state_dict()["state"], fresh.state_dict()["state"]
    assert a.keys() == b.keys()
    assert all(same(a[p][k], b[p][k]) for p in a for k in a[p])


# -- the memory bound, by construction -------------------------------------------------------------
BIG = ModelConfig(vocab_size=2, context_length=64, d_model=256, n_layers=3, n_heads=4, positional="learned")


def test_load_run_reads_each_byte_once_in_bounded_reads_with_no_copy_of_the_file(tmp_path, monkeypatch):
    _run(tmp_path, BIG)
    size = (tmp_path / "model.safetensors").stat().st_size
    assert size > 8 * CHUNK
    reads = []
    fill = TensorFile._fill

    def counted(self, offset, view, name):
        reads.append((offset, len(view)))
        return fill(self, offset, view, name)

    monkeypatch.setattr(TensorFile, "_fill", counted)
    filled = []  # elements given random values: the weights' init would fill every one
    for method in ("normal_", "uniform_"):
        real = getattr(torch.Tensor, method)

        def recorded(self, *args, real=real, **kwargs):
            filled.append(self.numel())
            return real(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, method, recorded)
    tracemalloc.start()
    try:
        model = ckpt.load_run(tmp_path)[0]
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # one pass: the data after the header, each byte once, in order, never more than CHUNK at a time
    with TensorFile(tmp_path / "model.safetensors") as f:
        start = f.data_start
    data_reads = [r for r in reads if r[0] >= start]
    assert sum(n for _, n in data_reads) == size - start
    assert [o for o, _ in data_reads] == sorted(o for o, _ in data_reads)
    assert max(n for _, n in data_reads) <= CHUNK
    # no bytes object of the file (Python allocations stay far below its size; the old reader held 1x)
    assert peak < size / 8, (peak, size)
    # no weight was randomly initialised first (GPT.empty): nothing was filled at random
    assert sum(filled) == 0, filled
    GPT(model.config)  # (and the recorder does see an init: most parameters filled at random)
    assert sum(filled) > model.num_parameters() // 2
    assert model.num_parameters() * 4 <= size


def test_load_optimizer_holds_no_copy_of_the_file(tmp_path):
    tok = CharTokenizer.train([TEXT])
    cfg = dataclasses_replace(BIG, vocab_size=tok.vocab_size)
    model = GPT(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    model(torch.zeros(1, 4, dtype=torch.long), torch.zeros(1, 4, dtype=torch.long))[1].backward()
    opt.step()
    ckpt.save_run(
        tmp_path, model=model, tokenizer=tok, model_config=cfg.to_dict(), train_config={}, step=1, optimizer=opt
    )
    size = (tmp_path / "optimizer.safetensors").stat().st_size
    fresh = torch.optim.AdamW(model.parameters(), lr=1e-2)
    tracemalloc.start()
    try:
        ckpt.load_optimizer(tmp_path, fresh)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert size > 8 * CHUNK and peak < size / 8, (peak, size)


def test_a_resume_from_a_damaged_checkpoint_stops_before_training(tmp_path, error_says):
    from tokvec import TrainConfig, train

    (tmp_path / "corpus.txt").write_text(TEXT * 20, encoding="utf-8")
    config = dict(
        corpus=str(tmp_path / "corpus.txt"),
        d_model=16,
        n_layers=1,
        n_heads=2,
        context_length=16,
        batch_size=4,
        threads=1,
        seed=7,
        eval_interval=2,
        out=str(tmp_path / "run"),
    )
    train(TrainConfig(**config, max_steps=2))
    _flip(tmp_path / "run" / "model.safetensors")
    before = {p.name: p.read_bytes() for p in (tmp_path / "run").iterdir() if not p.name.startswith(".")}
    with error_says(ckpt.CheckpointError, "model.safetensors", "corrupted", "restore it from a backup"):
        train(TrainConfig.for_resume(str(tmp_path / "run"), max_steps=4))
    after = {p.name: p.read_bytes() for p in (tmp_path / "run").iterdir() if not p.name.startswith(".")}
    assert after == before  # no step was taken, no checkpoint written from the half-read model
