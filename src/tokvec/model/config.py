"""The size and shape of a language model, in one dataclass, plus named presets.

    >>> cfg = ModelConfig.preset("tiny", vocab_size=65)
    >>> cfg.d_model, cfg.n_layers, cfg.hidden_dim
    (128, 4, 512)

Presets (``vocab_size`` comes from the tokenizer, except for gpt2-124m which fixes GPT-2's):

    | preset    | context | d_model | layers | heads | d_ff | dropout | params (vocab 65) |
    | --------- | ------- | ------- | ------ | ----- | ---- | ------- | ----------------- |
    | tiny      |      64 |     128 |      4 |     4 |  512 |     0.0 | 0.81 M            |
    | small     |     256 |     384 |      6 |     6 | 1536 |     0.1 | 10.8 M            |
    | gpt2-124m |    1024 |     768 |     12 |    12 | 3072 |     0.0 | 124.4 M (V 50257) |

``tiny`` is nanoGPT's CPU configuration for character-level Shakespeare (about three minutes for
2000 steps on a laptop CPU); ``small`` is nanoGPT's ``shakespeare_char`` GPU model; ``gpt2-124m``
is GPT-2 small (Radford et al. 2019), parameter for parameter.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Mapping

from .._checks import MAX_DIM
from ..errors import TokvecValueError

NORMS = ("layernorm", "rmsnorm")
ACTIVATIONS = ("gelu", "gelu_new", "swiglu")  # gelu_new: the tanh approximation GPT-2 trained with

PRESETS: dict[str, dict[str, Any]] = {
    # nanoGPT's CPU config for char-level Shakespeare: trains in minutes on 2 cores
    "tiny": dict(context_length=64, d_model=128, n_layers=4, n_heads=4, dropout=0.0),
    # nanoGPT's shakespeare_char model (~10 M parameters): an hour-scale CPU run
    "small": dict(context_length=256, d_model=384, n_layers=6, n_heads=6, dropout=0.1),
    # GPT-2 small, same shapes as Hugging Face's "gpt2" (124 M parameters with tied embeddings)
    "gpt2-124m": dict(vocab_size=50257, context_length=1024, d_model=768, n_layers=12, n_heads=12, dropout=0.0),
}


def swiglu_hidden(d_model: int) -> int:
    """SwiGLU hidden width: 8/3 * d_model (same parameter count as a 4*d_model GELU MLP, since SwiGLU has
    three matrices instead of two; Shazeer 2020), rounded up to a multiple of 64 (whole AVX-512 /
    cache-line blocks for the matmuls). ``swiglu_hidden(384) == 1024``, ``swiglu_hidden(32) == 128``."""
    return 64 * math.ceil(8 * d_model / 3 / 64)


@dataclass
class ModelConfig:
    """Everything that fixes the shape of a :class:`~tokvec.model.GPT` (not how it is trained).

    ``validate()`` runs on construction and lists every problem at once.
    """

    vocab_size: int  # no default: it is the tokenizer's, and a mismatch is the most common bug
    context_length: int = 256  # tokens the model sees at once; 256 is enough for paragraphs of characters
    d_model: int = 384  # width of every token vector: nanoGPT's shakespeare_char size, trains on a CPU
    n_layers: int = 6  # depth; 6 x 384 (~10 M params) is the largest that trains in an hour on a CPU
    n_heads: int = 6  # head_dim = 64, the size used from GPT-2 to Llama
    d_ff: int | None = None  # feed-forward width; None -> 4*d_model (gelu) or swiglu_hidden(d_model)
    dropout: float = 0.0  # off: small corpora overfit late and dropout halves CPU throughput gains
    positional: str = "learned"  # GPT-2's choice; any name in tokvec.positional.available()
    positional_options: dict[str, Any] = field(default_factory=dict)  # passed to the scheme (base=, layout=)
    norm: str = "layernorm"  # GPT-2's; "rmsnorm" as in Llama (no mean subtraction, no bias)
    activation: str = "gelu"  # GPT-2's; "swiglu" as in Llama (gated, three matrices)
    bias: bool = True  # GPT-2 has biases in linears and norms; False is slightly faster and as good
    tie_embeddings: bool = True  # LM head reuses the token table (Press & Wolf 2017): fewer params, better
    n_kv_heads: int | None = None  # grouped-query attention (Ainslie et al. 2023); None -> n_heads (plain MHA)
    qkv_bias: bool | None = None  # bias on q/k/v only (Qwen2 has it, its other linears do not); None -> bias
    norm_eps: float = 1e-5  # GPT-2's LayerNorm epsilon; Llama checkpoints use 1e-5 or 1e-6

    def __post_init__(self) -> None:
        self.validate()

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

    @property
    def kv_heads(self) -> int:
        """Heads of keys and values (n_kv_heads resolved): n_heads / kv_heads queries share each."""
        return self.n_heads if self.n_kv_heads is None else self.n_kv_heads

    @property
    def hidden_dim(self) -> int:
        """The feed-forward width actually used (d_ff resolved)."""
        if self.d_ff is not None:
            return self.d_ff
        return swiglu_hidden(self.d_model) if self.activation == "swiglu" else 4 * self.d_model

    def validate(self) -> "ModelConfig":
        """Check every field; raise one TokvecValueError listing all problems by field name."""
        from ..positional import available
        from ..positional.base import head_dim_for

        problems: list[str] = []

        def positive(name: str) -> bool:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                problems.append(f"{name} must be a positive integer, got {value!r}")
                return False
            return True

        positive("n_layers")  # no fixed limit: check_memory() measures what a depth costs
        for name in ("vocab_size", "context_length", "d_model"):
            if positive(name) and getattr(self, name) > MAX_DIM:
                problems.append(f"{name} must be at most {MAX_DIM}, got {getattr(self, name)}")
        if (
            positive("n_heads")
            and not isinstance(self.d_model, bool)
            and isinstance(self.d_model, int)
            and self.d_model > 0
        ):
            try:
                head_dim_for(self.d_model, self.n_heads)
            except TokvecValueError as e:
                problems.append(str(e))
        if self.d_ff is not None and positive("d_ff") and self.d_ff > MAX_DIM:
            problems.append(f"d_ff must be at most {MAX_DIM}, got {self.d_ff}")
        if (
            self.n_kv_heads is not None
            and positive("n_kv_heads")
            and isinstance(self.n_heads, int)
            and self.n_heads > 0
            and self.n_heads % self.n_kv_heads
        ):
            problems.append(
                f"n_kv_heads ({self.n_kv_heads}) must divide n_heads ({self.n_heads}): each key/value "
                f"head serves a whole group of query heads"
            )
        if isinstance(self.norm_eps, bool) or not isinstance(self.norm_eps, (int, float)) or not 0 < self.norm_eps < 1:
            problems.append(f"norm_eps must be a number in (0, 1), e.g. 1e-5, got {self.norm_eps!r}")
        if (
            isinstance(self.dropout, bool)
            or not isinstance(self.dropout, (int, float))
            or not 0.0 <= self.dropout < 1.0
        ):  # NaN fails both comparisons
            problems.append(f"dropout must be a number in [0, 1), got {self.dropout!r}")
        schemes = available()
        if self.positional not in schemes:
            problems.append(
                f"positional {self.positional!r} is not a known scheme (choose one of {', '.join(schemes)})"
            )
        if not isinstance(self.positional_options, Mapping):
            problems.append(
                f"positional_options must be a dict of scheme options, got {type(self.positional_options).__name__}"
            )
        elif self.positional in schemes and self.positional_options:
            problems += _option_problems(self.positional, self.positional_options)
        if self.norm not in NORMS:
            problems.append(f"norm {self.norm!r} is not one of ({', '.join(NORMS)})")
        if self.activation not in ACTIVATIONS:
            problems.append(f"activation {self.activation!r} is not one of ({', '.join(ACTIVATIONS)})")
        if self.qkv_bias is not None and not isinstance(self.qkv_bias, bool):
            problems.append(f"qkv_bias must be true, false or null (= bias), got {self.qkv_bias!r}")
        for name in ("bias", "tie_embeddings"):
            if not isinstance(getattr(self, name), bool):
                problems.append(f"{name} must be true or false, got {getattr(self, name)!r}")
        if problems:
            raise TokvecValueError(
                f"invalid model config ({len(problems)} problem{'s' * (len(problems) > 1)}): " + "; ".join(problems)
            )
        return self

    def parameter_estimate(self) -> int:
        """Parameters of the GPT this config builds, from the shapes (within a few percent: the
        positional tables of bias schemes are left out). Exact integer arithmetic, so an absurd
        config (n_layers=10**12) is measured, not built."""
        d, V, L = self.d_model, self.vocab_size, self.n_layers
        mlp = (3 if self.activation == "swiglu" else 2) * d * self.hidden_dim
        per_block = 4 * d * d + mlp + 4 * d + (9 * d + self.hidden_dim if self.bias else 0)
        positions = self.context_length * d if self.positional == "learned" else 0
        return V * d * (1 if self.tie_embeddings else 2) + positions + L * per_block + 2 * d

    def memory_estimate(self, batch_size: int | None = None, *, bytes_per_value: int = 4) -> int:
        """Bytes this model needs: its weights; with ``batch_size``, one training step on top
        (gradients and AdamW's two moments, plus activations per Korthikanti et al. 2022,
        ``s*b*d*(34 + 5*h*s/d)`` per layer at 2 bytes a value, and the logits)."""
        weights = self.parameter_estimate() * bytes_per_value
        if batch_size is None:
            return weights
        s, b, d, h = self.context_length, batch_size, self.d_model, self.n_heads
        activations = self.n_layers * s * b * (34 * d + 5 * h * s) * bytes_per_value // 2
        logits = 3 * s * b * self.vocab_size * bytes_per_value
        return 4 * weights + activations + logits

    def check_memory(self, batch_size: int | None = None, *, what: str = "this model") -> None:
        """Refuse, before any tensor is made, a size whose estimated memory this machine lacks."""
        from .._checks import check_memory, human_bytes

        need = self.memory_estimate(batch_size)
        task = f"training {what}" if batch_size else f"building {what}"
        check_memory(
            f"{task} ({self.parameter_estimate():,} parameters: n_layers={self.n_layers}, "
            f"d_model={self.d_model}, vocab_size={self.vocab_size}, context_length={self.context_length}"
            + (f", batch_size={batch_size}" if batch_size else "")
            + ")",
            need,
            fix="use fewer layers, a smaller d_model, vocabulary, context or batch size "
            f"(each weight takes 4 bytes; {human_bytes(need)} is an estimate)",
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable fields (d_ff stays None when it was None)."""
        data = dataclasses.asdict(self)
        data["positional_options"] = dict(self.positional_options)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ModelConfig":
        """Rebuild from :meth:`to_dict` output; unknown keys are an error that names them."""
        if not isinstance(data, Mapping):
            raise TokvecValueError(f"a model config must be a mapping of fields, got {type(data).__name__}")
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(k for k in data if k not in names)
        if unknown:
            raise TokvecValueError(
                f"unknown model config field{'s' * (len(unknown) > 1)} "
                f"{', '.join(map(repr, unknown))}; known fields: {', '.join(names)}"
            )
        if "vocab_size" not in data:
            raise TokvecValueError("model config lacks vocab_size (the tokenizer's vocab_size)")
        return cls(**dict(data))

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> "ModelConfig":
        """A named size from :data:`PRESETS`, with any field overridden: ``preset("tiny", vocab_size=65)``."""
        if name not in PRESETS:
            raise TokvecValueError(f"unknown model preset {name!r}; choose one of {', '.join(PRESETS)}")
        fields = {**PRESETS[name], **overrides}
        if "vocab_size" not in fields:
            raise TokvecValueError(
                f"preset {name!r} needs vocab_size: pass the tokenizer's, "
                f"ModelConfig.preset({name!r}, vocab_size=tokenizer.vocab_size)"
            )
        return cls.from_dict(fields)


def model_fields(
    name: str, *, defaults: Mapping[str, Any] | None = None, exclude: tuple[str, ...] = ("vocab_size",)
) -> type:
    """A dataclass holding :class:`ModelConfig`'s fields (but ``exclude``), each keyword-only and
    defaulting to ``defaults[field]`` or None ("the preset's or ModelConfig's value").

    The base class of a training config that lets its user set any model field by keyword
    (``TrainConfig(d_model=64)``), so that the fields are declared once, here, and a field added
    to ModelConfig is a training option at once. :func:`model_overrides` reads the set ones back."""
    defaults = dict(defaults or {})
    unknown = sorted(set(defaults) - {f.name for f in dataclasses.fields(ModelConfig)})
    if unknown:
        raise TypeError(f"model_fields defaults name no ModelConfig field: {unknown}")
    specs = [
        (
            f.name,
            f.type if "None" in str(f.type) else f"{f.type} | None",
            field(default=defaults.get(f.name), kw_only=True),
        )
        for f in dataclasses.fields(ModelConfig)
        if f.name not in exclude
    ]
    cls = dataclasses.make_dataclass(name, specs)
    cls.__module__ = __name__
    cls.__doc__ = f"ModelConfig's fields{' but ' + ', '.join(exclude) if exclude else ''} (None: not set)."
    return cls


def model_overrides(config: Any) -> dict[str, Any]:
    """The model fields set (not None) on an instance of a :func:`model_fields` class."""
    names = [f.name for f in dataclasses.fields(ModelConfig)]
    return {k: getattr(config, k) for k in names if getattr(config, k, None) is not None}


def _option_problems(scheme: str, options: Mapping[str, Any]) -> list[str]:
    """Options the scheme's constructor does not take (checked without building it)."""
    from ..positional import get_class

    accepted = get_class(scheme).options()
    unknown = sorted(k for k in options if k not in accepted)
    if not unknown:
        return []
    return [
        f"positional_options {', '.join(map(repr, unknown))} not taken by the {scheme!r} scheme "
        f"(its options: {', '.join(sorted(accepted)) or 'none'})"
    ]
