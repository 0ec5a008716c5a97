"""The sequence-classification task of the classic tutorials: CSV in, a trained classifier out."""

import csv
import random

import pytest
import torch

from tokvec.errors import FormatError, TokvecValueError
from tokvec.runs.classify import ClassifyConfig, load_classifier, pad_batch, read_labelled_csv, train_classifier


def write_csv(path, rows, header=("text", "label")):
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


@pytest.fixture(scope="module")
def reviews(tmp_path_factory):
    """Chinese 'reviews' whose label is carried by one praise or complaint character in random filler."""
    rng = random.Random(0)
    good, bad, filler = "好棒讚妙佳", "壞差爛糟劣", "這部電影真的演員劇情音樂"
    rows = []
    for _ in range(240):
        label = rng.choice(["pos", "neg"])
        text = "".join(rng.choice(filler) for _ in range(rng.randint(3, 10)))
        k = rng.randint(0, len(text))
        rows.append((text[:k] + rng.choice(good if label == "pos" else bad) + text[k:], label))
    return write_csv(tmp_path_factory.mktemp("clf") / "reviews.csv", rows)


@pytest.mark.slow
def test_learns_the_label_bearing_character(reviews, tmp_path):
    result = train_classifier(
        ClassifyConfig(
            csv=str(reviews), out=str(tmp_path / "run"), max_steps=250, d_model=32, n_layers=1, n_heads=2, context=32
        )
    )
    assert result.labels == ["neg", "pos"]
    assert result.losses[-1] < 0.2 < result.losses[0]
    assert result.val_accuracy >= 0.9 and result.train_accuracy >= 0.95
    clf = load_classifier(tmp_path / "run")
    assert clf.predict(["這部電影真棒", "劇情真爛"]) == ["pos", "neg"]
    assert torch.allclose(clf.probabilities(["演員好"]), result.classifier.probabilities(["演員好"]))


def test_pad_batch_right_pads_and_masks():
    ids, mask = pad_batch([[5, 6, 7], [8], []], pad_id=0)
    assert ids.tolist() == [[5, 6, 7], [8, 0, 0], [0, 0, 0]]
    assert mask.tolist() == [[False] * 3, [False, True, True], [False, True, True]]


def test_bad_csv_files(tmp_path, error_says):
    with error_says(FormatError, "'label'", "['text', 'sentiment']", "--label-column"):
        read_labelled_csv(write_csv(tmp_path / "a.csv", [("x", "pos")], header=("text", "sentiment")))
    with error_says(FormatError, "line 3", "empty 'label'"):
        read_labelled_csv(write_csv(tmp_path / "b.csv", [("x", "pos"), ("y", "")]))
    with error_says(TokvecValueError, "2 rows", "1 distinct label", "['pos']", "at least 2"):
        read_labelled_csv(write_csv(tmp_path / "c.csv", [("x", "pos"), ("y", "pos")]))
    gbk = tmp_path / "d.csv"
    gbk.write_bytes("text,label\n你好,pos\n".encode("gb18030"))
    with error_says(TokvecValueError, "utf-8", "byte offset 11", "--encoding"):
        read_labelled_csv(gbk)
    gbk.write_bytes("text,label\n你好,pos\n再見,neg\n".encode("gb18030"))
    assert read_labelled_csv(gbk, encoding="gb18030") == (["你好", "再見"], ["pos", "neg"])
    with pytest.raises(FileNotFoundError, match="no CSV file at"):
        read_labelled_csv(tmp_path / "missing.csv")


@pytest.mark.slow
def test_cli_train_and_predict(reviews, tmp_path, cli):
    r = cli(
        "classify",
        "train",
        "--csv",
        str(reviews),
        "--out",
        str(tmp_path / "run"),
        "--max-steps",
        "200",
        "--d-model",
        "32",
        "--layers",
        "1",
        "--heads",
        "2",
        "--context",
        "32",
        subprocess=True,
    )
    assert r.code == 0, r.err
    assert "done: 2 labels ['neg', 'pos']" in r.out and "val accuracy" in r.out
    r = cli("classify", "predict", "--run", str(tmp_path / "run"), "這部電影真棒", "劇情真爛", subprocess=True)
    assert r.code == 0, r.err
    lines = r.out.strip().splitlines()
    assert lines[0].startswith("pos  ") and lines[0].endswith("  這部電影真棒") and lines[1].startswith("neg  ")
    r = cli("classify", "predict", "--run", str(tmp_path / "nope"), "x", subprocess=True)
    assert r.code == 2 and "tokvec: error: no classifier run at" in r.err


@pytest.mark.parametrize("lr", [-1.0, 0.0, float("nan")])
def test_a_bad_lr_is_reported_once_not_again_as_a_min_lr_range(lr, error_says):
    # before: "min_lr must be ... in [0.0, -1.0]" followed the lr problem (the bad lr became min_lr's bound)
    with error_says(TokvecValueError, "lr must be a finite number", "(0.0, 10.0]", "3e-3") as caught:
        ClassifyConfig(csv="x.csv", lr=lr).validate()
    assert "min_lr" not in str(caught.value)
    with error_says(TokvecValueError, "min_lr", "[0.0, 0.001]", "--min-lr"):
        ClassifyConfig(csv="x.csv", lr=1e-3, min_lr=0.01).validate()
