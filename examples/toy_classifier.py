"""The tutorials' toy classification task: texts over the vocabulary {你: 0, 好: 1, 嗎: 2}.

Run:  python examples/toy_classifier.py [OUT_DIR]      (a few seconds; OUT_DIR defaults to a temp dir)

1. The vocabulary, exactly as the tutorials number it: characters in order of first appearance in
   "你好好嗎嗎", no special tokens -- so 你=0, 好=1, 嗎=2 and "你好好嗎嗎" is [0, 1, 1, 2, 2].
2. ``tokvec classify train`` on toy_questions.csv (next to this file): a text is a "question" when
   it ends with 嗎. Short texts are padded (with id 0, masked out), so the model reads the last real token.
3. ``tokvec classify predict`` with the trained run.
"""

import subprocess
import sys
import tempfile
from pathlib import Path

from tokvec import CharTokenizer

here = Path(__file__).resolve().parent
out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp(prefix="tokvec-toy-"))
out.mkdir(parents=True, exist_ok=True)

# 1. The tutorials' vocabulary.
tok = CharTokenizer.train(["你好好嗎嗎"], specials=(), order="first")
print("vocabulary:", {t: tok.vocab.token_to_id(t) for t in tok.vocab})
print("你好好嗎嗎 ->", tok.encode("你好好嗎嗎"))
tok.save(out / "tokenizer.json")


def tokvec(*args: str) -> None:
    """Run a tokvec command, showing it first (the same as typing it in a shell)."""
    print("\n$ tokvec " + " ".join(args), flush=True)
    subprocess.run([sys.executable, "-m", "tokvec", *args], check=True)


# 2. Train: a tiny model is plenty for 20 rows (about 2 seconds of training on a CPU).
tokvec(
    "classify",
    "train",
    "--csv",
    str(here / "toy_questions.csv"),
    "--tokenizer",
    str(out / "tokenizer.json"),
    "--d-model",
    "16",
    "--layers",
    "1",
    "--heads",
    "2",
    "--context",
    "8",
    "--max-steps",
    "150",
    "--batch-size",
    "20",
    "--val-fraction",
    "0",
    "--out",
    str(out / "run"),
)

# 3. Predict: label, probability, text.
tokvec("classify", "predict", "--run", str(out / "run"), "你好好嗎嗎", "你好好", "好嗎")
