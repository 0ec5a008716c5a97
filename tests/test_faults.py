"""Fault injection: bad flags, damaged and hand-made files, through the real ``tokvec`` entry point.

Two parts:

* ``CASES``: a table of (name, argv, setup, expected fragments). ``setup(work)`` plants the bad
  input in a fresh directory (``work.run`` is a copy of a tiny trained run) and may return extra
  argv; the command must exit 2 with ONE line ``tokvec: error: ...`` holding every fragment (the
  bad value, the limit or what was expected, the fix). To cover a new failure, add a row.
* hypothesis-made JSON for every reader tokvec has (tokenizers of each kind, vocabularies, run
  config.json, metrics.jsonl, token-file sidecars, classifier runs, HF tokenizer.json, .tiktoken):
  wrong types, missing keys, huge integers, deep nesting. Whatever the file holds, the reader either
  accepts it or raises a TokvecError whose one-line message names the file.

``CASES_TRIED`` counts the cases run (table rows and generated files); ``-s`` shows nothing extra,
the count is for whoever reports on the suite (pytest --hypothesis-show-statistics gives the rest).
"""

from __future__ import annotations

import copy
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tokvec.errors import TokvecError

CASES_TRIED = {"table": 0, "json": 0}
CORPUS = "First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n" * 20


# -- shared fixtures: one tiny run, one classifier, tokenizers of each kind ---------------------------
@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """A tiny trained LM run, a classifier run and saved tokenizers, made once for the module."""
    from tokvec.runs.classify import ClassifyConfig, train_classifier
    from tokvec.runs.train import TrainConfig, train
    from tokvec.tokenizers import BPETokenizer, CharTokenizer, WordTokenizer

    root = tmp_path_factory.mktemp("faults")
    corpus = root / "corpus.txt"
    corpus.write_text(CORPUS, encoding="utf-8")
    train(
        TrainConfig(
            corpus=str(corpus),
            tokenizer="char",
            d_model=16,
            n_layers=1,
            n_heads=2,
            context_length=16,
            batch_size=2,
            max_steps=2,
            eval_interval=2,
            eval_batches=1,
            threads=1,
            out=str(root / "run"),
        )
    )
    csv = root / "labels.csv"
    csv.write_text("text,label\n" + "好好,pos\n壞壞,neg\n" * 6, encoding="utf-8")
    train_classifier(
        ClassifyConfig(
            csv=str(csv), d_model=16, n_layers=1, n_heads=2, context=8, max_steps=2, batch_size=4, out=str(root / "clf")
        )
    )
    CharTokenizer.train([CORPUS]).save(root / "char.json")
    WordTokenizer.train([CORPUS]).save(root / "word.json")
    bpe = BPETokenizer.train_from_texts([CORPUS], vocab_size=270, special_tokens=["<|endoftext|>"])
    bpe.save(root / "bpe.json")
    bpe.save_tiktoken(root / "ranks.tiktoken")
    CharTokenizer.train([CORPUS]).vocab.save(root / "vocab.json")
    from tokvec.data.tokenfile import write_token_file

    write_token_file(bpe, [corpus], root / "ids.bin")
    _hf_tokenizer_json(root / "hf" / "tokenizer.json")
    return root


def _hf_tokenizer_json(path: Path) -> None:
    """A real HF byte-level BPE tokenizer.json, trained by the tokenizers library itself."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300,
        special_tokens=["<|endoftext|>"],
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator([CORPUS], trainer=trainer)
    path.parent.mkdir(parents=True, exist_ok=True)
    tok.save(str(path))


@dataclass
class Work:
    """A fresh directory for one case: ``run`` is a copy of the tiny run, ``clf`` of the classifier."""

    dir: Path
    base: Path

    @property
    def run(self) -> Path:
        return self._copy("run")

    @property
    def clf(self) -> Path:
        return self._copy("clf")

    def _copy(self, name: str) -> Path:
        target = self.dir / name
        if not target.exists():
            shutil.copytree(self.base / name, target)
        return target

    def file(self, name: str, text: str | bytes) -> Path:
        path = self.dir / name
        path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
        return path

    def edit_json(self, path: Path, change: Callable[[dict], None], *, reseal: bool = False) -> Path:
        data = json.loads(path.read_text(encoding="utf-8"))
        change(data)
        if reseal:
            from tokvec.runs.checkpoint import seal_config

            data = seal_config(data)
        path.write_text(json.dumps(data), encoding="utf-8")
        return path


def _drop_checksum(data: dict) -> None:
    data.pop("checksum", None)


def _set(path: tuple, value: Any, *, drop_checksum: bool = False) -> Callable[[dict], None]:
    def change(data: dict) -> None:
        node = data
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
        if drop_checksum:
            _drop_checksum(data)

    return change


def _tok_file(work: Work, kind: str, change: Callable[[dict], None]) -> list[str]:
    path = work.dir / f"{kind}.json"
    shutil.copy(work.base / f"{kind}.json", path)
    work.edit_json(path, change)
    return ["--tokenizer", str(path)]


# -- the table ----------------------------------------------------------------------------------------
# (name, argv, setup(work) -> extra argv, fragments every message must hold). "{run}" in argv is the
# run copy, "{clf}" the classifier copy, "{dir}" the case's directory.
Case = tuple[str, list[str], Callable[[Work], list[str]] | None, list[str]]
BIG = str(10**12)
HUGE = str(10**20)

CASES: list[Case] = [
    # item 9: the CLI framework's own usage errors, one line too
    ("unknown option", ["embed", "--bogus"], None, ["No such option: --bogus", "tokvec embed --help"]),
    ("missing argument", ["classify", "predict", "--run", "{dir}"], None, ["Missing argument", "texts"]),
    ("not an integer", ["embed", "--d-model", "abc"], None, ["--d-model", "'abc'", "integer"]),
    ("not a number", ["generate", "--run", "{run}", "--temperature", "warm"], None, ["--temperature", "'warm'"]),
    ("unknown command", ["nosuchcmd"], None, ["No such command", "nosuchcmd"]),
    # item 8: numbers out of range, refused before work starts
    ("d_model zero", ["embed", "--d-model", "0"], None, ["d_model", "got 0"]),
    ("d_model huge", ["embed", "--d-model", BIG, "你好"], None, ["d_model", "2147483647", BIG]),
    ("embed seed huge", ["embed", "--seed", HUGE], None, ["--seed", "4294967295", "digits"]),
    (
        "embed max_len huge",
        ["embed", "--max-len", "2000000000", "--d-model", "512"],
        None,
        ["max_len 2000000000", "needs about", "available"],
    ),
    (
        "layers huge",
        ["train", "--layers", BIG, "--out", "{dir}/never"],
        None,
        ["--layers=" + BIG, "needs about", "PiB", "available", "fewer layers"],
    ),
    ("lr nan", ["train", "--lr", "nan", "--out", "{dir}/never"], None, ["--lr must be a finite number", "nan"]),
    ("lr inf", ["train", "--lr", "inf", "--out", "{dir}/never"], None, ["--lr must be a finite number", "inf"]),
    ("steps zero", ["train", "--max-steps", "0", "--out", "{dir}/never"], None, ["--max-steps", "got 0"]),
    ("steps 1e20", ["train", "--max-steps", HUGE, "--out", "{dir}/never"], None, ["--max-steps", "1000000000000"]),
    ("seed huge", ["train", "--seed", HUGE, "--out", "{dir}/never"], None, ["--seed", "4294967295"]),
    ("seed negative", ["train", "--seed", "-1", "--out", "{dir}/never"], None, ["--seed", "got -1"]),
    ("threads huge", ["train", "--threads", BIG, "--out", "{dir}/never"], None, ["--threads", "CPU"]),
    ("batch huge", ["train", "--batch-size", BIG, "--out", "{dir}/never"], None, ["--batch-size", BIG]),
    ("heads zero", ["train", "--heads", "0", "--out", "{dir}/never"], None, ["--heads", "got 0"]),
    (
        "bpe vocab 1e12",
        ["tokenizer", "train", "--vocab-size", BIG, "--out", "{dir}/t.json"],
        lambda w: ["--corpus", str(w.file("c.txt", CORPUS))],
        ["vocab_size " + BIG, "16,777,216", "e.g. 8192"],
    ),
    (
        "bpe min-frequency huge",
        ["tokenizer", "train", "--min-frequency", HUGE, "--out", "{dir}/t.json"],
        lambda w: ["--corpus", str(w.file("c.txt", CORPUS))],
        ["min_frequency", HUGE],
    ),
    (
        "pe-similarity positions",
        ["plot", "pe-similarity", "--n-positions", "100000", "--out", "{dir}/p.png"],
        None,
        ["n_positions", "8192", "100000"],
    ),
    ("pe max-len huge", ["plot", "pe", "--max-len", BIG, "--out", "{dir}/p.png"], None, ["max_len", BIG]),
    ("temperature inf", ["generate", "--run", "{run}", "--temperature", "inf"], None, ["temperature", "inf"]),
    ("top-k zero", ["generate", "--run", "{run}", "--top-k", "0"], None, ["top_k", "got 0"]),
    ("top-p nan", ["generate", "--run", "{run}", "--top-p", "nan"], None, ["top_p", "nan"]),
    ("max-new-tokens huge", ["generate", "--run", "{run}", "-n", BIG], None, ["max_new_tokens", "10000000"]),
    ("generate seed huge", ["generate", "--run", "{run}", "--seed", HUGE], None, ["seed", "4294967295"]),
    (
        "encode threads negative",
        ["encode", "--threads", "-1", "--out", "{dir}/ids.bin"],
        lambda w: ["--corpus", str(w.file("c.txt", CORPUS)), "--tokenizer", str(w.base / "bpe.json")],
        ["num_threads", "got -1"],
    ),
    ("neighbors k zero", ["neighbors", "e", "--run", "{run}", "-k", "0"], None, ["k must be a positive integer"]),
    (
        "classify lr nan",
        ["classify", "train", "--lr", "nan", "--out", "{dir}/c"],
        lambda w: ["--csv", str(w.file("l.csv", "text,label\na,x\nb,y\n"))],
        ["--lr", "nan"],
    ),
    (  # a config field whose flag has another name: the error names the flag the user typed
        "classify warmup negative",
        ["classify", "train", "--warmup", "-1", "--out", "{dir}/c"],
        lambda w: ["--csv", str(w.file("l.csv", "text,label\na,x\nb,y\n"))],
        ["--warmup must be in [0, ", "got -1"],
    ),
    (  # the same for a classifier: refused before the CSV (here missing) is read
        "classify heads not dividing d_model",
        ["classify", "train", "--heads", "3", "--d-model", "64", "--out", "{dir}/c"],
        lambda w: ["--csv", str(w.base / "missing.csv")],
        ["--heads (3) must divide --d-model (64)", "try --heads=2"],
    ),
    ("train heads negative", ["train", "--heads", "-2", "--out", "{dir}/never"], None, ["--heads must be", "got -2"]),
    (  # a shape that cannot work is refused by validate(), before a tokenizer is trained or a file read
        "train heads not dividing d_model",
        ["train", "--heads", "3", "--tokenizer", "bpe:300", "--out", "{dir}/never"],
        None,
        ["--heads (3) must divide --d-model (128)", "try --heads=2"],
    ),
    # item 7: damaged or hand-edited files, one line naming the file, the key and what was expected
    (
        "config edited",
        ["generate", "--run", "{run}"],
        lambda w: (w.edit_json(w.run / "config.json", _set(("step",), -5)), [])[1],
        ["config.json was edited", "checksum"],
    ),
    (
        "config step -5 (checksum dropped)",
        ["generate", "--run", "{run}"],
        lambda w: (w.edit_json(w.run / "config.json", _set(("step",), -5, drop_checksum=True)), [])[1],
        ["config.json", "'step' must be an integer in [0,", "got -5"],
    ),
    (
        "config files as list",
        ["generate", "--run", "{run}"],
        lambda w: (w.edit_json(w.run / "config.json", _set(("files",), ["model.safetensors"]), reseal=True), [])[1],
        ["config.json", "'files' must be a JSON object", "a list of 1"],
    ),
    (
        "config sha256 missing",
        ["generate", "--run", "{run}"],
        lambda w: (
            w.edit_json(w.run / "config.json", lambda d: d["files"]["model.safetensors"].pop("sha256"), reseal=True),
            [],
        )[1],
        ["config.json", "'files.model.safetensors.sha256' is missing", "a string"],
    ),
    (
        "config n_layers 1e12",
        ["generate", "--run", "{run}"],
        lambda w: (w.edit_json(w.run / "config.json", _set(("model", "n_layers"), 10**12), reseal=True), [])[1],
        ["config.json", "needs about", "n_layers=" + BIG],
    ),
    (
        "config d_model as string",
        ["generate", "--run", "{run}"],
        lambda w: (w.edit_json(w.run / "config.json", _set(("model", "d_model"), "16"), reseal=True), [])[1],
        ["config.json", "'model'", "d_model must be a positive integer, got '16'"],
    ),
    (
        "config 100k-digit integer",
        ["generate", "--run", "{run}"],
        lambda w: (
            w.file(
                "run/config.json", (w.run / "config.json").read_text().replace('"step": 2', '"step": ' + "9" * 100_000)
            ),
            [],
        )[1],
        ["config.json", "more than 4300 digits"],
    ),
    (
        "config deep nesting",
        ["generate", "--run", "{run}"],
        lambda w: (w.file("run/config.json", "[" * 100_000 + "]" * 100_000) if w.run else None, [])[1],
        ["config.json", "nests", "deeper"],
    ),
    (
        "config invalid utf-8",
        ["generate", "--run", "{run}"],
        lambda w: (w.file("run/config.json", b'{"format": "\xff\xfe"}') if w.run else None, [])[1],
        ["config.json", "not UTF-8", "offset 12"],
    ),
    (
        "metrics loss as string",
        ["plot", "loss", "--run", "{run}", "--out", "{dir}/l.png"],
        lambda w: (w.file("run/metrics.jsonl", '{"step": 1, "split": "val", "loss": "low"}\n') if w.run else None, [])[
            1
        ],
        ["metrics.jsonl line 1", "'loss' must be a number", "'low'"],
    ),
    (
        "char tokenizer specials null",
        ["tokenize", "hi"],
        lambda w: _tok_file(w, "char", _set(("vocab", "specials"), None)),
        ["char.json (vocab)", "'specials' must be a list", "null"],
    ),
    (
        "word tokenizer keep_whitespace string",
        ["tokenize", "hi"],
        lambda w: _tok_file(w, "word", _set(("keep_whitespace",), "yes")),
        ["word.json", "'keep_whitespace' must be true or false", "'yes'"],
    ),
    (
        "bpe special id as string",
        ["tokenize", "hi"],
        lambda w: _tok_file(w, "bpe", _set(("special_tokens", "<|endoftext|>"), "269")),
        ["bpe.json", "special_tokens['<|endoftext|>']", "an integer in [0, 4294967294]", "'269'"],
    ),
    (
        "bpe special id 2**40",
        ["tokenize", "hi"],
        lambda w: _tok_file(w, "bpe", _set(("special_tokens", "<|endoftext|>"), 2**40)),
        ["bpe.json", "4294967294", str(2**40)],
    ),
    (
        "bpe tokens as object",
        ["tokenize", "hi"],
        lambda w: _tok_file(w, "bpe", _set(("tokens",), {"a": 1})),
        ["bpe.json", "'tokens' must be a list"],
    ),
    (
        "tiktoken rank >= 2**32",
        ["tokenize", "hi"],
        lambda w: [
            "--tokenizer",
            str(w.file("r.tiktoken", (w.base / "ranks.tiktoken").read_text() + "eHl6 4294967296\n")),
        ],
        ["r.tiktoken line", "rank 4294967296", "32-bit"],
    ),
    (
        "tiktoken 100k-digit rank",
        ["tokenize", "hi"],
        lambda w: ["--tokenizer", str(w.file("r.tiktoken", "YQ== " + "9" * 100_000 + "\n"))],
        ["r.tiktoken line 1", "<base64 token> <rank>"],
    ),
    (
        "hf vocab id as string",
        ["tokenize", "hi"],
        lambda w: [
            "--tokenizer",
            str(
                w.edit_json(
                    Path(shutil.copy(w.base / "hf" / "tokenizer.json", w.dir / "hf.json")),
                    _set(("model", "vocab", "a"), "97"),
                )
            ),
        ],
        ["hf.json", "model.vocab['a']", "must be an integer", "'97'"],
    ),
    (
        "classifier labels as string",
        ["classify", "predict", "--run", "{clf}", "x"],
        lambda w: (w.edit_json(w.clf / "classifier.json", _set(("labels",), "pos,neg"), reseal=True), [])[1],
        ["classifier.json", "'labels' must be a list", "'pos,neg'"],
    ),
    (
        "classifier edited",
        ["classify", "predict", "--run", "{clf}", "x"],
        lambda w: (w.edit_json(w.clf / "classifier.json", _set(("pooling",), "max")), [])[1],
        ["classifier.json was edited", "checksum"],
    ),
    (
        "vocab token not a string",
        ["tokenize", "hi"],
        lambda w: _tok_file(w, "char", lambda d: d["vocab"]["tokens"].append(7)),
        ["char.json (vocab)", "'tokens[", "must be a string", "got 7"],
    ),
    # item 12: every command that reads text takes --encoding
    (
        "report val-text gb18030 without --encoding",
        ["report", "--run", "{run}", "--out", "{dir}/r.html"],
        lambda w: ["--val-text", str(w.file("v.txt", "床前明月光\n".encode("gb18030")))],
        ["v.txt is not valid utf-8", "--encoding", "gb18030"],
    ),
]


@pytest.mark.parametrize("name,argv,setup,fragments", CASES, ids=[c[0] for c in CASES])
def test_cli_fault(name, argv, setup, fragments, base, tmp_path, cli):
    work = Work(tmp_path, base)
    extra = setup(work) if setup else []
    args = [
        a.replace("{run}", str(work.run) if "{run}" in a else "")
        .replace("{clf}", str(work.clf) if "{clf}" in a else "")
        .replace("{dir}", str(tmp_path))
        for a in argv
    ] + list(extra or [])
    code, out, err = cli(*args)
    CASES_TRIED["table"] += 1
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, (name, code, out, err)
    assert len(lines) == 1 and lines[0].startswith("tokvec: error: "), err
    missing = [f for f in fragments if f not in lines[0]]
    assert not missing, f"{name}: {missing} not in {lines[0]!r}"


@pytest.mark.slow  # builds a whole report (plots, a sample): ~15 s on the shared machine
def test_report_reads_gb18030_with_encoding(base, tmp_path, cli):
    """Item 12's example: report --val-text on a GB18030 file works once --encoding names it."""
    work = Work(tmp_path, base)
    text = "床前明月光，疑是地上霜。\n" * 5
    val = work.file("v.txt", text.encode("gb18030"))
    code, out, err = cli(
        "report",
        "--run",
        work.run,
        "--val-text",
        val,
        "--encoding",
        "gb18030",
        "--out",
        tmp_path / "r.html",
        "--max-new-tokens",
        "4",
    )
    CASES_TRIED["table"] += 1
    assert code == 0, err
    page = (tmp_path / "r.html").read_text(encoding="utf-8")
    assert f"{len(text)}" in page  # the characters of the val text were counted: it was decoded


def test_sidecar_damage_is_one_line(base, tmp_path):
    from tokvec.data.tokenfile import read_token_file_info, sidecar_path

    shutil.copy(base / "ids.bin", tmp_path / "ids.bin")
    side = sidecar_path(tmp_path / "ids.bin")
    info = json.loads(sidecar_path(base / "ids.bin").read_text())
    for key, value, fragment in (
        ("count", "12", "'count' must be an integer"),
        ("dtype", "int8", "'dtype' must be one"),
        ("tokenizer", None, "'tokenizer' must be a string, got null"),
    ):
        side.write_text(json.dumps({**info, key: value}))
        with pytest.raises(TokvecError) as e:
            read_token_file_info(tmp_path / "ids.bin")
        CASES_TRIED["table"] += 1
        assert str(side) in str(e.value) and fragment in str(e.value) and "re-run `tokvec encode`" in str(e.value)


def test_load_token_file_refuses_ids_past_vocab(base, tmp_path, error_says):
    """Item 16: a token file damaged in place (same size) is caught once, vectorised, when opened."""
    import numpy as np

    from tokvec.data.tokenfile import load_token_file, sidecar_path
    from tokvec.errors import TokenIdError
    from tokvec.tokenizers import load_tokenizer

    tok = load_tokenizer(base / "bpe.json")
    shutil.copy(base / "ids.bin", tmp_path / "ids.bin")
    shutil.copy(sidecar_path(base / "ids.bin"), sidecar_path(tmp_path / "ids.bin"))
    ids = np.memmap(tmp_path / "ids.bin", dtype="uint16", mode="r+")
    ids[5] = 60000
    ids.flush()
    del ids
    with error_says(TokenIdError, "token id 60000", "position 5", f"vocab_size {tok.vocab_size}"):
        load_token_file(tmp_path / "ids.bin", tokenizer=tok)


# -- hypothesis: every reader, any JSON --------------------------------------------------------------
_HUGE_INT = "__HUGE_INT__"  # written into the JSON text as a 100 000-digit integer
_DEEP = "__DEEP__"  # written as 5 000 nested lists

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.sampled_from([-1, 0, 1, 2**31, 2**32, 2**63])
    | st.text(max_size=8)
    | st.just(_HUGE_INT)
    | st.just(_DEEP),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3),
    max_leaves=6,
)


def _paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, prefix + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node[:4]):
            out += _paths(v, prefix + (i,))
    return out


@st.composite
def mutated(draw, doc: Any):
    """``doc`` with one or two random edits: a value replaced (any JSON), a key deleted, or a key added."""
    doc = copy.deepcopy(doc)
    for _ in range(draw(st.integers(1, 2))):
        paths = _paths(doc)
        path = draw(st.sampled_from(paths))
        action = draw(st.sampled_from(["replace", "delete", "add"]))
        if not path:
            if action == "replace":
                doc = draw(json_values)
            continue
        parent = doc
        for key in path[:-1]:
            parent = parent[key]
        if action == "delete" and isinstance(parent, dict):
            del parent[path[-1]]
        elif action == "add" and isinstance(parent, dict):
            parent[draw(st.text(max_size=6))] = draw(json_values)
        else:
            parent[path[-1]] = draw(json_values)
    return doc


def _dump(doc: Any) -> str:
    text = json.dumps(doc, ensure_ascii=False, allow_nan=True)
    return text.replace(json.dumps(_HUGE_INT), "9" * 100_000).replace(json.dumps(_DEEP), "[" * 5000 + "]" * 5000)


def _readers(base: Path) -> dict[str, tuple[Path, Callable[[Path], Any], bool]]:
    """name -> (original file, read(path) on a directory holding the mutated copy, reseal config)."""
    from tokvec.data.tokenfile import read_token_file_info, sidecar_path
    from tokvec.runs.checkpoint import load_run_tokenizer, read_metrics, read_run_config
    from tokvec.runs.classify import load_classifier
    from tokvec.tokenizers import load_tokenizer
    from tokvec.viz import read_metrics as viz_read_metrics
    from tokvec.vocab import Vocabulary

    def run_config(d: Path):
        config = read_run_config(d)
        load_run_tokenizer(d, config)

    return {
        "char": (base / "char.json", lambda d: load_tokenizer(d / "char.json"), False),
        "word": (base / "word.json", lambda d: load_tokenizer(d / "word.json"), False),
        "bpe": (base / "bpe.json", lambda d: load_tokenizer(d / "bpe.json"), False),
        "vocab": (base / "vocab.json", lambda d: Vocabulary.load(d / "vocab.json"), False),
        "hf": (base / "hf" / "tokenizer.json", lambda d: load_tokenizer(d / "tokenizer.json"), False),
        "config": (base / "run" / "config.json", run_config, True),
        "config-edited": (base / "run" / "config.json", run_config, False),
        "metrics": (base / "run" / "metrics.jsonl", lambda d: (read_metrics(d), viz_read_metrics(d)), False),
        "sidecar": (sidecar_path(base / "ids.bin"), lambda d: read_token_file_info(d / "ids.bin"), False),
        "classifier": (base / "clf" / "classifier.json", load_classifier, True),
    }


READERS = ["char", "word", "bpe", "vocab", "hf", "config", "config-edited", "metrics", "sidecar", "classifier"]


def _check_reader(name: str, base: Path, work: Path, doc_text: str) -> None:
    source, read, _ = _readers(base)[name]
    target = work / source.name
    target.write_text(doc_text, encoding="utf-8")
    CASES_TRIED["json"] += 1
    try:
        read(work)
    except TokvecError as e:
        message = str(e)
        assert source.name in message, message  # names the file
        assert "\n" not in message, message  # one line
    # anything else (TypeError, KeyError, RecursionError, ValueError ...) fails the test


def _workdir(base: Path, name: str, tmp: Path) -> Path:
    """A directory holding every other file the reader needs (the run, the classifier, the .bin)."""
    work = tmp / name
    if work.exists():
        return work
    if name.startswith("config") or name == "metrics":
        shutil.copytree(base / "run", work)
    elif name == "classifier":
        shutil.copytree(base / "clf", work)
    else:
        work.mkdir(parents=True)
        if name == "sidecar":
            shutil.copy(base / "ids.bin", work / "ids.bin")
    return work


@pytest.mark.parametrize("name", READERS)
def test_every_reader_survives_any_json(name, base, tmp_path_factory):
    source, _, reseal = _readers(base)[name]
    work = _workdir(base, name, tmp_path_factory.mktemp(f"json-{name}"))
    if source.suffix == ".jsonl":
        original: Any = [json.loads(line) for line in source.read_text().splitlines() if line.strip()]
    else:
        original = json.loads(source.read_text(encoding="utf-8"))

    @settings(
        max_examples=60,
        deadline=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(doc=mutated(original))
    def check(doc):
        if reseal and isinstance(doc, dict):
            from tokvec.runs.checkpoint import seal_config

            doc = seal_config(doc)
        if source.suffix == ".jsonl":
            text = "\n".join(_dump(r) for r in doc) + "\n" if isinstance(doc, list) else _dump(doc) + "\n"
        else:
            text = _dump(doc)
        _check_reader(name, base, work, text)

    check()


@settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(
    lines=st.lists(
        st.tuples(st.binary(max_size=6), st.one_of(st.integers(-5, 2**40), st.text(max_size=5))), min_size=1, max_size=5
    ),
    tail=st.sampled_from(["", "garbage\n", "9" * 5000 + "\n", "\xff\n"]),
)
def test_tiktoken_reader_survives_any_lines(lines, tail, tmp_path_factory):
    import base64

    from tokvec.tokenizers import load_tokenizer

    path = tmp_path_factory.getbasetemp() / "ranks.tiktoken"
    body = "".join(f"{base64.b64encode(b).decode()} {r}\n" for b, r in lines) + tail
    path.write_text(body, encoding="utf-8", errors="surrogateescape")
    CASES_TRIED["json"] += 1
    try:
        load_tokenizer(path)
    except TokvecError as e:
        assert path.name in str(e), str(e)
        assert "\n" not in str(e)


# -- the Python API: every bad argument raises a TokvecError subclass (item 9) -----------------------
def _api_cases():
    import numpy as np
    import torch

    from tokvec.embedding import TokenEmbedding
    from tokvec.model import GPT, ModelConfig
    from tokvec.tokenizers import BPETokenizer, CharTokenizer, WordTokenizer

    toks = [
        CharTokenizer.train(["abc"]),
        WordTokenizer.train(["a b"]),
        BPETokenizer.train_from_texts(["ab ab"], vocab_size=256),
    ]
    bad_ids = [
        ["a"],
        [1.5],
        [None],
        [[1]],
        "ab",
        5,
        [True],
        [10**30],
        [-1],
        np.array([1.0]),
        np.array([1, 2], dtype=np.uint8)[None],
        torch.tensor([[1]]),
        torch.tensor([1.0]),
    ]
    cases = [
        (f"{type(t).__name__}.decode({ids!r:.24})", lambda t=t, ids=ids: t.decode(ids)) for t in toks for ids in bad_ids
    ]
    cases += [
        (f"{type(t).__name__}.encode({x!r})", lambda t=t, x=x: t.encode(x))
        for t in toks
        for x in (None, 5, b"ab", ["a"])
    ]
    emb = TokenEmbedding(10, 4)
    gpt = GPT(ModelConfig(vocab_size=10, context_length=8, d_model=8, n_layers=1, n_heads=2))
    for x in (
        torch.tensor([[1, 2]], dtype=torch.uint8),
        torch.tensor([[1, 2]], dtype=torch.int16),
        torch.tensor([[1.0]]),
        torch.tensor([[11]]),
        torch.tensor([[-1]]),
        [[1, 2]],
        torch.zeros(1, 2, 3, dtype=torch.long),
        np.array([[1]]),
    ):
        cases += [(f"TokenEmbedding()({x!r:.30})", lambda x=x: emb(x)), (f"GPT()({x!r:.30})", lambda x=x: gpt(x))]
    for args in ((0, 4), (10, -1), (10**12, 4), (10, 4.0), ("10", 4), (10, 2**40)):
        cases.append((f"TokenEmbedding{args}", lambda args=args: TokenEmbedding(*args)))
    for field, value in (
        ("d_model", float("nan")),
        ("n_heads", 0),
        ("dropout", float("inf")),
        ("context_length", 10**20),
        ("vocab_size", -3),
        ("n_layers", 10**12),
    ):
        cases.append((f"GPT({field}={value})", lambda f=field, v=value: GPT(ModelConfig(**{"vocab_size": 10, f: v}))))
    return cases


def test_api_errors_are_tokvec_errors():
    """decode(['a']), uint8 ids, float ids, absurd sizes: a TokvecError (TypeError/ValueError), never bare."""
    cases = _api_cases()
    escaped = []
    for name, call in cases:
        try:
            call()
        except TokvecError as e:
            assert isinstance(e, (TypeError, ValueError)), name
        except Exception as e:  # noqa: BLE001 - the point is to catch what escapes
            escaped.append(f"{name}: {type(e).__name__}: {e}"[:160])
        CASES_TRIED["table"] += 1
    assert not escaped, escaped
