"""Hugging Face causal LMs <-> tokvec GPT: config mapping, tensor names and shapes, lazy weight reading.

Two families map onto a :class:`~tokvec.model.GPT` parameter for parameter:

    | HF model_type          | tokvec config                                                        |
    | ---------------------- | -------------------------------------------------------------------- |
    | gpt2                   | learned positions, layernorm (bias), gelu_new, tied head            |
    | llama, mistral, qwen2  | rope (halves layout, rope_theta), rmsnorm, swiglu, n_kv_heads (GQA)  |

Weights differ in layout only: GPT-2's ``Conv1D`` stores (in, out), a Linear (out, in); Llama keeps
q, k, v and gate, up as separate matrices that tokvec holds as one ``qkv`` and one ``fc`` (rows
concatenated). A tensor is read from its safetensors file into the parameter already allocated
(positioned reads, in row blocks when it must be transposed or cast), so an import holds one copy of
the weights plus one block. Going out, :func:`hf_tensors` yields one HF tensor at a time for a
streamed writer.

Nothing here picks directories or writes files: ``GPT.from_pretrained`` reads a directory with it, and
:mod:`tokvec.runs.hf` turns directories into runs and back.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import torch
from torch import Tensor

from .._tensorread import TensorFile
from ..errors import FormatError, TokvecValueError
from .config import ModelConfig

MODEL_TYPES = ("gpt2", "llama", "mistral", "qwen2")
ARCHITECTURES = {
    "gpt2": "GPT2LMHeadModel",
    "llama": "LlamaForCausalLM",
    "mistral": "MistralForCausalLM",
    "qwen2": "Qwen2ForCausalLM",
}
ROPE_TYPES = ("default", "linear", "yarn")  # HF rope types with a tokvec scaling of the same formula
EXPORT_PRESETS = (
    "GPT-2: positional learned + norm layernorm + activation gelu or gelu_new + bias "
    "(the presets tiny, small, gpt2-124m); Llama: positional rope + norm rmsnorm + activation "
    "swiglu (any preset with --positional rope --norm rmsnorm --activation swiglu)"
)
_IGNORED = ("attn.bias", "attn.masked_bias", "rotary_emb.inv_freq")  # buffers old checkpoints carry
_BLOCK_BYTES = 32 << 20  # copy a tensor in row blocks of about this size (the transient memory of an import)


class HFModelError(FormatError):
    """A Hugging Face model directory tokvec cannot import (unsupported type or field, bad tensor)."""


# -- config ------------------------------------------------------------------------------------------
def read_hf_config(directory: str | os.PathLike) -> dict:
    """The ``config.json`` of a Hugging Face model directory, checked to be a JSON object."""
    path = Path(directory) / "config.json"
    if not path.is_file():
        raise HFModelError(
            f"{directory} has no config.json; a Hugging Face model directory holds config.json "
            f"and model.safetensors (save_pretrained writes both)"
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise HFModelError(f"{path} is not valid JSON ({e})") from None
    if not isinstance(data, dict):
        raise HFModelError(f"{path} must hold a JSON object, got {type(data).__name__}")
    return data


def is_hf_directory(path: str | os.PathLike) -> bool:
    """A directory whose config.json is a Hugging Face model config (it has a model_type)."""
    config = Path(path) / "config.json"
    if not config.is_file():
        return False
    try:
        data = json.loads(config.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return False
    return isinstance(data, dict) and "model_type" in data and "format" not in data


def config_from_hf(hf: Mapping[str, Any], *, source: str = "config.json") -> ModelConfig:
    """The tokvec :class:`ModelConfig` of a HF ``config.json``; every unsupported field is named at once."""
    model_type = hf.get("model_type")
    if model_type not in MODEL_TYPES:
        raise HFModelError(
            f"{source}: model_type {model_type!r} is not supported; tokvec imports "
            f"{', '.join(MODEL_TYPES)} ({', '.join(ARCHITECTURES.values())})"
        )
    problems: list[str] = []
    if model_type == "gpt2":
        fields = _gpt2_fields(hf, problems)
    else:
        fields = _llama_fields(hf, model_type, problems)
    if problems:
        raise HFModelError(
            f"{source} ({model_type}) cannot be imported: "
            + "; ".join(problems)
            + f". tokvec imports {', '.join(MODEL_TYPES)} without those features"
        )
    try:
        return ModelConfig(**fields)
    except TokvecValueError as e:
        raise HFModelError(f"{source}: {e}") from None


def _need(hf: Mapping[str, Any], key: str, problems: list[str]) -> Any:
    value = hf.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        problems.append(f"{key} must be a positive integer, got {value!r}")
        return 1
    return value


def _gpt2_fields(hf: Mapping[str, Any], problems: list[str]) -> dict[str, Any]:
    act = hf.get("activation_function", "gelu_new")
    activation = {"gelu_new": "gelu_new", "gelu_pytorch_tanh": "gelu_new", "gelu": "gelu"}.get(act)
    if activation is None:
        problems.append(f"activation_function {act!r} (supported: gelu_new, gelu_pytorch_tanh, gelu)")
    if hf.get("scale_attn_weights", True) is not True:
        problems.append("scale_attn_weights=false (tokvec always scales scores by 1/sqrt(head_dim))")
    if hf.get("scale_attn_by_inverse_layer_idx"):
        problems.append("scale_attn_by_inverse_layer_idx=true")
    if hf.get("add_cross_attention"):
        problems.append("add_cross_attention=true (an encoder-decoder)")
    return dict(
        vocab_size=_need(hf, "vocab_size", problems),
        context_length=_need(hf, "n_positions", problems),
        d_model=_need(hf, "n_embd", problems),
        n_layers=_need(hf, "n_layer", problems),
        n_heads=_need(hf, "n_head", problems),
        d_ff=hf.get("n_inner"),
        dropout=0.0,
        positional="learned",
        norm="layernorm",
        activation=activation or "gelu_new",
        bias=True,
        tie_embeddings=bool(hf.get("tie_word_embeddings", True)),
        norm_eps=float(hf.get("layer_norm_epsilon", 1e-5)),
    )


def _llama_fields(hf: Mapping[str, Any], model_type: str, problems: list[str]) -> dict[str, Any]:
    d, heads = _need(hf, "hidden_size", problems), _need(hf, "num_attention_heads", problems)
    if hf.get("hidden_act", "silu") != "silu":
        problems.append(f"hidden_act {hf.get('hidden_act')!r} (supported: silu, i.e. SwiGLU)")
    if hf.get("head_dim") not in (None, d // heads):
        problems.append(f"head_dim {hf.get('head_dim')} != hidden_size / num_attention_heads = {d // heads}")
    if hf.get("pretraining_tp", 1) != 1:
        problems.append(f"pretraining_tp {hf.get('pretraining_tp')} (supported: 1)")
    if hf.get("partial_rotary_factor", 1.0) != 1.0:
        problems.append(f"partial_rotary_factor {hf.get('partial_rotary_factor')} (supported: 1.0)")
    sliding = hf.get("use_sliding_window", True) and hf.get("sliding_window") is not None
    if model_type == "qwen2":
        sliding = bool(hf.get("use_sliding_window", False)) or "sliding_attention" in (hf.get("layer_types") or ())
    if sliding:
        problems.append(f"sliding_window {hf.get('sliding_window')} is active (tokvec attends to the whole context)")
    for moe in ("num_local_experts", "num_experts", "moe_intermediate_size"):
        if hf.get(moe):
            problems.append(f"{moe}={hf[moe]} (mixture of experts)")
    if model_type == "qwen2":
        bias, qkv_bias = False, True
    else:
        attention_bias, mlp_bias = bool(hf.get("attention_bias", False)), bool(hf.get("mlp_bias", False))
        if attention_bias != mlp_bias:
            problems.append(
                f"attention_bias={attention_bias} with mlp_bias={mlp_bias} (tokvec has biases on all linears or none)"
            )
        bias, qkv_bias = attention_bias, None
    context = _need(hf, "max_position_embeddings", problems)
    return dict(
        vocab_size=_need(hf, "vocab_size", problems),
        context_length=context,
        d_model=d,
        n_layers=_need(hf, "num_hidden_layers", problems),
        n_heads=heads,
        n_kv_heads=hf.get("num_key_value_heads") or heads,
        d_ff=_need(hf, "intermediate_size", problems),
        dropout=0.0,
        positional="rope",
        positional_options=_rope_options(hf, context, problems),
        norm="rmsnorm",
        activation="swiglu",
        bias=bias,
        qkv_bias=qkv_bias,
        tie_embeddings=bool(hf.get("tie_word_embeddings", False)),
        norm_eps=float(hf.get("rms_norm_eps", 1e-6)),
    )


def _rope_options(hf: Mapping[str, Any], context: int, problems: list[str]) -> dict[str, Any]:
    """tokvec rope options from ``rope_theta`` + ``rope_scaling`` (transformers 4) or ``rope_parameters`` (5)."""
    params = hf.get("rope_parameters") or hf.get("rope_scaling") or {}
    if not isinstance(params, Mapping):
        problems.append(f"rope_scaling/rope_parameters must be an object, got {params!r}")
        params = {}
    theta = params.get("rope_theta", hf.get("rope_theta", 10000.0))
    options: dict[str, Any] = {"base": float(theta), "layout": "halves"}
    rope_type = params.get("rope_type", params.get("type", "default"))
    if rope_type not in ROPE_TYPES:
        problems.append(f"rope type {rope_type!r} (supported: {', '.join(ROPE_TYPES)})")
    elif rope_type != "default":
        options.update(scaling=rope_type, factor=float(params.get("factor", 1.0)))
        if rope_type == "yarn":
            options["original_max_len"] = int(params.get("original_max_position_embeddings") or context)
            for key, default in (("beta_fast", 32), ("beta_slow", 1)):
                if params.get(key, default) != default:
                    problems.append(f"yarn {key}={params[key]} (supported: {default})")
            for key in ("attention_factor", "mscale", "mscale_all_dim"):
                if params.get(key) is not None:
                    problems.append(f"yarn {key}={params[key]} (supported: unset)")
    return options


def export_problems(config: ModelConfig) -> tuple[str | None, list[str]]:
    """(HF model_type this config exports as, or None; the fields that block the export)."""
    c = config
    if c.positional == "learned":
        blocking = [
            f"{name} {value!r} (GPT-2 needs {need})"
            for name, value, need, ok in (
                ("norm", c.norm, "layernorm", c.norm == "layernorm"),
                ("activation", c.activation, "gelu or gelu_new", c.activation in ("gelu", "gelu_new")),
                ("bias", c.bias, "true", c.bias is True),
                ("qkv_bias", c.qkv_bias, "null or true", c.qkv_bias in (None, True)),
                ("n_kv_heads", c.n_kv_heads, f"null or {c.n_heads}", c.kv_heads == c.n_heads),
            )
            if not ok
        ]
        return (None if blocking else "gpt2"), blocking
    if c.positional == "rope":
        options = dict(c.positional_options)
        scaling = options.get("scaling", "none")
        blocking = [
            f"{name} {value!r} (Llama needs {need})"
            for name, value, need, ok in (
                ("norm", c.norm, "rmsnorm", c.norm == "rmsnorm"),
                ("activation", c.activation, "swiglu", c.activation == "swiglu"),
                ("rope scaling", scaling, "none, linear or yarn", scaling in ("none", "linear", "yarn")),
            )
            if not ok
        ]
        if c.qkv_bias and not c.bias:
            return (None if blocking else "qwen2"), blocking
        if c.qkv_bias is False and c.bias:
            blocking.append("bias true with qkv_bias false (Llama has q/k/v biases whenever it has biases)")
        return (None if blocking else "llama"), blocking
    return None, [f"positional {c.positional!r} (GPT-2 needs learned, Llama rope)"]


def config_to_hf(
    config: ModelConfig, *, bos_id: int | None = None, eos_id: int | None = None, pad_id: int | None = None
) -> dict[str, Any]:
    """The HF ``config.json`` of a tokvec config; an error names the blocking fields and what exports."""
    model_type, blocking = export_problems(config)
    if model_type is None:
        raise TokvecValueError(
            f"this model cannot be exported to Hugging Face: {'; '.join(blocking)}. What exports: {EXPORT_PRESETS}"
        )
    c = config
    common = {
        "architectures": [ARCHITECTURES[model_type]],
        "model_type": model_type,
        "vocab_size": c.vocab_size,
        "tie_word_embeddings": c.tie_embeddings,
        "bos_token_id": bos_id,
        "eos_token_id": eos_id,
        "pad_token_id": pad_id,
        "torch_dtype": "float32",
        "dtype": "float32",
    }
    if model_type == "gpt2":
        return {
            **common,
            "n_positions": c.context_length,
            "n_embd": c.d_model,
            "n_layer": c.n_layers,
            "n_head": c.n_heads,
            "n_inner": c.d_ff,
            "activation_function": c.activation,
            "resid_pdrop": c.dropout,
            "embd_pdrop": c.dropout,
            "attn_pdrop": c.dropout,
            "layer_norm_epsilon": c.norm_eps,
            "scale_attn_weights": True,
            "use_cache": True,
        }
    options = dict(c.positional_options)
    rope: dict[str, Any] = {"rope_type": "default", "rope_theta": float(options.get("base", 10000.0))}
    if options.get("scaling", "none") != "none":
        rope.update(rope_type=options["scaling"], factor=float(options.get("factor", 1.0)))
        if options["scaling"] == "yarn":
            rope["original_max_position_embeddings"] = options.get("original_max_len") or c.context_length
    hf = {
        **common,
        "hidden_size": c.d_model,
        "intermediate_size": c.hidden_dim,
        "num_hidden_layers": c.n_layers,
        "num_attention_heads": c.n_heads,
        "num_key_value_heads": c.kv_heads,
        "hidden_act": "silu",
        "max_position_embeddings": c.context_length,
        "rms_norm_eps": c.norm_eps,
        "attention_dropout": c.dropout,
        "rope_theta": rope["rope_theta"],
        "rope_scaling": None if rope["rope_type"] == "default" else rope,
        "rope_parameters": rope,
        "head_dim": c.head_dim,
        "use_cache": True,
    }
    if model_type == "llama":
        hf.update(attention_bias=c.bias, mlp_bias=c.bias, pretraining_tp=1)
    else:
        hf.update(use_sliding_window=False, sliding_window=None, max_window_layers=c.n_layers)
    return hf


# -- tensor plans --------------------------------------------------------------------------------------
# A plan row: tokvec parameter name -> the HF tensors whose rows (after an optional transpose) are
# concatenated into it, in order; ``permute`` reorders the output rows (rope layouts, see below).
class _Piece:
    __slots__ = ("name", "shape", "transposed")

    def __init__(self, name: str, shape: tuple[int, ...], transposed: bool = False) -> None:
        self.name, self.shape, self.transposed = name, shape, transposed


def _plan(config: ModelConfig, model_type: str, prefix: str = "") -> dict[str, list[_Piece]]:
    """tokvec state-dict name -> the HF tensors (name, stored shape) it is made of."""
    c = config
    d, f, kv, V = c.d_model, c.hidden_dim, c.kv_heads * c.head_dim, c.vocab_size
    plan: dict[str, list[_Piece]] = {}
    if model_type == "gpt2":
        t = prefix
        plan["embed.token.embedding.weight"] = [_Piece(f"{t}wte.weight", (V, d))]
        plan["embed.positional.weight"] = [_Piece(f"{t}wpe.weight", (c.context_length, d))]
        for i in range(c.n_layers):
            h, b = f"{t}h.{i}.", f"blocks.{i}."
            plan |= {
                b + "norm1.weight": [_Piece(h + "ln_1.weight", (d,))],
                b + "norm1.bias": [_Piece(h + "ln_1.bias", (d,))],
                b + "attn.qkv.weight": [_Piece(h + "attn.c_attn.weight", (d, 3 * d), True)],
                b + "attn.qkv.bias": [_Piece(h + "attn.c_attn.bias", (3 * d,))],
                b + "attn.proj.weight": [_Piece(h + "attn.c_proj.weight", (d, d), True)],
                b + "attn.proj.bias": [_Piece(h + "attn.c_proj.bias", (d,))],
                b + "norm2.weight": [_Piece(h + "ln_2.weight", (d,))],
                b + "norm2.bias": [_Piece(h + "ln_2.bias", (d,))],
                b + "mlp.fc.weight": [_Piece(h + "mlp.c_fc.weight", (d, f), True)],
                b + "mlp.fc.bias": [_Piece(h + "mlp.c_fc.bias", (f,))],
                b + "mlp.proj.weight": [_Piece(h + "mlp.c_proj.weight", (f, d), True)],
                b + "mlp.proj.bias": [_Piece(h + "mlp.c_proj.bias", (d,))],
            }
        plan["norm.weight"] = [_Piece(f"{t}ln_f.weight", (d,))]
        plan["norm.bias"] = [_Piece(f"{t}ln_f.bias", (d,))]
    else:
        plan["embed.token.embedding.weight"] = [_Piece("model.embed_tokens.weight", (V, d))]
        qkv_bias = c.bias if c.qkv_bias is None else c.qkv_bias
        for i in range(c.n_layers):
            h, b = f"model.layers.{i}.", f"blocks.{i}."
            plan[b + "norm1.weight"] = [_Piece(h + "input_layernorm.weight", (d,))]
            plan[b + "attn.qkv.weight"] = [
                _Piece(h + "self_attn.q_proj.weight", (d, d)),
                _Piece(h + "self_attn.k_proj.weight", (kv, d)),
                _Piece(h + "self_attn.v_proj.weight", (kv, d)),
            ]
            if qkv_bias:
                plan[b + "attn.qkv.bias"] = [
                    _Piece(h + "self_attn.q_proj.bias", (d,)),
                    _Piece(h + "self_attn.k_proj.bias", (kv,)),
                    _Piece(h + "self_attn.v_proj.bias", (kv,)),
                ]
            plan[b + "attn.proj.weight"] = [_Piece(h + "self_attn.o_proj.weight", (d, d))]
            plan[b + "norm2.weight"] = [_Piece(h + "post_attention_layernorm.weight", (d,))]
            plan[b + "mlp.fc.weight"] = [
                _Piece(h + "mlp.gate_proj.weight", (f, d)),
                _Piece(h + "mlp.up_proj.weight", (f, d)),
            ]
            plan[b + "mlp.proj.weight"] = [_Piece(h + "mlp.down_proj.weight", (d, f))]
            if c.bias:
                plan[b + "attn.proj.bias"] = [_Piece(h + "self_attn.o_proj.bias", (d,))]
                plan[b + "mlp.fc.bias"] = [_Piece(h + "mlp.gate_proj.bias", (f,)), _Piece(h + "mlp.up_proj.bias", (f,))]
                plan[b + "mlp.proj.bias"] = [_Piece(h + "mlp.down_proj.bias", (d,))]
        plan["norm.weight"] = [_Piece("model.norm.weight", (d,))]
    if not c.tie_embeddings:
        plan["lm_head.weight"] = [_Piece("lm_head.weight", (V, d))]
    return plan


def _rope_rows(config: ModelConfig, rows: int) -> Tensor | None:
    """Row order taking an interleaved-rope q or k (rows, .) to the halves layout, or None when the run
    already uses halves. Per head: pairs (0,1),(2,3).. -> (0, hd/2),(1, hd/2+1).., i.e. the even
    dimensions first, then the odd ones; q.k is unchanged since q and k move together."""
    if config.positional != "rope" or dict(config.positional_options).get("layout", "interleaved") == "halves":
        return None
    hd = config.head_dim
    per_head = torch.cat([torch.arange(0, hd, 2), torch.arange(1, hd, 2)])
    return torch.cat([per_head + j * hd for j in range(rows // hd)])


# -- reading (import) ---------------------------------------------------------------------------------
_DTYPES = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16, "F64": torch.float64}


class SafetensorsIndex:
    """The tensors of a HF directory's ``model.safetensors`` or of the shards its
    ``model.safetensors.index.json`` names, read on demand with positioned reads.

    Each file's header is parsed and checked (dtype, shape, byte range inside the file, no overlap)
    up front by :class:`tokvec._tensorread.TensorFile`; bytes are read only when a tensor is copied,
    straight into the destination when the layouts agree. Not ``safe_open``: it memory-maps the
    file, and the pages it touches count in the process's resident memory on top of the model
    (measured: 2.0x the weights at peak for GPT-2, against 1.0x this way; see benchmarks/bench_hf.py)."""

    def __init__(self, directory: str | os.PathLike) -> None:
        directory = Path(directory)
        single, index = directory / "model.safetensors", directory / "model.safetensors.index.json"
        if index.is_file():
            try:
                weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
                files = sorted({str(v) for v in weight_map.values()})
            except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, AttributeError) as e:
                raise HFModelError(
                    f"{index} is not a safetensors index (a JSON object with a weight_map): {e}"
                ) from None
            for shard in files:
                if Path(shard).name != shard or not shard.endswith(".safetensors"):
                    raise HFModelError(
                        f"{index} names the shard {shard!r}, which is not a .safetensors file in {directory}"
                    )
        elif single.is_file():
            files = ["model.safetensors"]
        else:
            pickles = sorted(p.name for p in directory.glob("pytorch_model*.bin")) + sorted(
                p.name for p in directory.glob("*.pt")
            )
            if pickles:
                raise HFModelError(
                    f"{directory} holds {pickles[0]} (a pickle) and no model.safetensors; tokvec never unpickles. "
                    f'Convert it once where you trust the file: python -c "from transformers import '
                    f"AutoModelForCausalLM as M; M.from_pretrained('{directory}').save_pretrained('{directory}-st')\""
                )
            raise HFModelError(f"{directory} has no model.safetensors or model.safetensors.index.json")
        self.directory = directory
        self._files: dict[str, TensorFile] = {}
        # name -> (file, dtype name, shape, absolute start offset, byte length)
        self.entries: dict[str, tuple[str, str, tuple[int, ...], int, int]] = {}
        try:
            for file in files:
                if not (directory / file).is_file():
                    raise HFModelError(f"{directory / file} is missing (named by the safetensors index)")
                self._files[file] = opened = TensorFile(directory / file, error=HFModelError)
                for name, e in opened.entries.items():
                    if name in self.entries:
                        raise HFModelError(f"{directory}: tensor {name!r} is stored in two files")
                    self.entries[name] = (file, e.dtype_name, e.shape, e.start, e.nbytes)
        except BaseException:
            self.close()
            raise

    def names(self) -> list[str]:
        return list(self.entries)

    def shape(self, name: str) -> tuple[int, ...]:
        return self.entries[name][2]

    def dtype(self, name: str) -> str:
        return self.entries[name][1]

    def copy_into(self, name: str, out: Tensor, *, transposed: bool = False) -> None:
        """Copy stored tensor ``name`` into ``out`` (its transpose when ``transposed``), in row blocks;
        directly into ``out``'s memory when dtype and layout allow."""
        if self.dtype(name) not in _DTYPES:
            raise HFModelError(
                f"{self.directory}: tensor {name!r} has dtype {self.dtype(name)}; tokvec reads "
                f"floating-point weights ({', '.join(_DTYPES)})"
            )
        self._files[self.entries[name][0]].copy_into(name, out, transposed=transposed, block_bytes=_BLOCK_BYTES)

    def close(self) -> None:
        for f in self._files.values():
            f.close()
        self._files.clear()


def detect_prefix(names: list[str], model_type: str) -> str:
    """GPT-2 checkpoints name tensors ``transformer.h.0...`` (GPT2LMHeadModel) or ``h.0...`` (older)."""
    if model_type == "gpt2" and not any(n.startswith("transformer.") for n in names):
        return ""
    return "transformer." if model_type == "gpt2" else ""


def load_hf_weights(
    model: torch.nn.Module, index: SafetensorsIndex, model_type: str, progress: Callable[[int], None] | None = None
) -> None:
    """Copy every tensor of ``index`` into ``model``'s parameters, checking names, shapes and dtypes.

    Bytes go straight from the file into the parameter: no second copy of the weights.
    ``progress(n)`` is called with the bytes of each tensor read."""
    config: ModelConfig = model.config
    names = index.names()
    plan = _plan(config, model_type, detect_prefix(names, model_type))
    expected = {p.name for pieces in plan.values() for p in pieces}
    if config.tie_embeddings and "lm_head.weight" in index.entries:
        expected.add("lm_head.weight")  # a tied head saved anyway: checked, then ignored
    missing = sorted(expected - set(names))
    if missing:
        raise HFModelError(
            f"{index.directory}: tensor {missing[0]!r} is missing"
            f"{f' (and {len(missing) - 1} more)' if len(missing) > 1 else ''}; "
            f"the weights do not match config.json"
        )
    unexpected = sorted(n for n in names if n not in expected and not n.endswith(_IGNORED))
    if unexpected:
        raise HFModelError(
            f"{index.directory}: tensor {unexpected[0]!r} has no place in a {model_type} model as "
            f"config.json describes it ({len(unexpected)} such tensors); tokvec would ignore "
            f"weights the model needs"
        )
    params = model.state_dict(keep_vars=True)
    with torch.no_grad():
        for target, pieces in plan.items():
            param = params[target]
            row = 0
            for piece in pieces:
                shape = index.shape(piece.name)
                if shape != piece.shape:
                    raise HFModelError(
                        f"{index.directory}: tensor {piece.name!r} has shape {shape}, expected "
                        f"{piece.shape} from config.json"
                    )
                rows = piece.shape[1] if piece.transposed else piece.shape[0]
                index.copy_into(piece.name, param[row : row + rows], transposed=piece.transposed)
                row += rows
                if progress is not None:
                    progress(index.entries[piece.name][4])
            if row != param.shape[0]:  # a plan bug, never the user's: the pieces must fill the parameter
                raise RuntimeError(f"{target}: {row} rows copied into {tuple(param.shape)}")
        if config.tie_embeddings and "lm_head.weight" in index.entries:
            head = torch.empty(index.shape("lm_head.weight"), dtype=_DTYPES[index.dtype("lm_head.weight")])
            index.copy_into("lm_head.weight", head)
            if head.shape != model.lm_head.weight.shape or not torch.equal(
                head.to(model.lm_head.weight.dtype), model.lm_head.weight
            ):
                raise HFModelError(
                    f"{index.directory}: config.json says tie_word_embeddings but lm_head.weight "
                    f"differs from the token embeddings"
                )


# -- writing (export) ----------------------------------------------------------------------------------
def hf_tensors(
    model: torch.nn.Module, model_type: str
) -> Iterator[tuple[str, Callable[[], Tensor], tuple, torch.dtype]]:
    """The HF tensors of ``model``, one at a time: (name, make() -> tensor, shape, dtype).

    ``make`` returns the tensor when called, often a view (a slice of rows, a transpose) that the
    streamed writer copies into a buffer of its own, so no full copy is ever held. A tied head is not
    listed (HF ties it on load)."""
    config: ModelConfig = model.config
    plan = _plan(config, model_type, "transformer." if model_type == "gpt2" else "")
    params = model.state_dict(keep_vars=True)
    if "lm_head.weight" not in params:  # the tied alias is dropped from state_dict; untied heads stay
        params["lm_head.weight"] = model.lm_head.weight
    for target, pieces in plan.items():
        param = params[target]
        order = _rope_rows(config, config.d_model) if target.endswith(("attn.qkv.weight", "attn.qkv.bias")) else None
        row = 0
        for n, piece in enumerate(pieces):
            rows = piece.shape[1] if piece.transposed else piece.shape[0]

            def make(param=param, a=row, b=row + rows, piece=piece, permute=order is not None and n < 2) -> Tensor:
                block = param.detach()[a:b]
                if permute:  # q and k rows: interleaved rope pairs -> HF's halves layout
                    block = block[_rope_rows(config, b - a)]
                return block.t() if piece.transposed else block  # a view: the writer copies it out

            yield piece.name, make, piece.shape, param.dtype
            row += rows
