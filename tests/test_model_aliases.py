"""Shared tensors are found one way (tokvec.model.aliases) by the model's state_dict hooks and by the
run checkpoint: stored once, refilled on load."""

import torch
from safetensors.torch import load_file
from torch import nn

from tokvec import GPT, CharTokenizer, ModelConfig
from tokvec.model.aliases import drop_aliases, find_aliases, refill_aliases
from tokvec.runs.checkpoint import MODEL_FILE, load_weights, save_run


class Tied(nn.Module):
    """A tied head without tokvec's hooks: what a user may hand to save_run."""

    def __init__(self):
        super().__init__()
        self.table = nn.Embedding(5, 3)
        self.head = nn.Linear(3, 5, bias=False)
        self.head.weight = self.table.weight


def test_same_object_and_same_memory_are_aliases_other_views_are_not():
    w = torch.arange(12.0).reshape(3, 4)
    named = [("a", w), ("b", w), ("c", w.detach()), ("row", w[1]), ("t", w.t()), ("copy", w.clone())]
    # "c": another tensor object over the same elements; a row, a transpose and a copy are different tensors
    assert find_aliases(named) == {"b": "a", "c": "a"}


def test_tensors_without_an_address_are_aliases_only_as_one_object():
    e1, e2 = torch.empty(0), torch.empty(0)  # no elements: both report storage address 0
    m1, m2 = torch.empty(4, 4, device="meta"), torch.empty(4, 4, device="meta")  # meta: no memory at all
    assert find_aliases([("e1", e1), ("e2", e2), ("m1", m1), ("m2", m2), ("m1 again", m1)]) == {"m1 again": "m1"}


def test_drop_then_refill_restores_every_name():
    model = Tied()
    state = model.state_dict()  # detached copies: the tie is visible only through the shared memory
    kept, aliases = drop_aliases(state)
    assert aliases == {"head.weight": "table.weight"} and list(kept) == ["table.weight"]
    refill_aliases(kept, aliases)
    assert kept.keys() == state.keys() and kept["head.weight"] is kept["table.weight"]


def test_refill_keeps_a_name_already_present_and_skips_a_missing_kept_one():
    a, b = torch.zeros(2), torch.ones(2)
    tensors = {"m.x": a, "m.y": b}
    refill_aliases(tensors, {"y": "x", "z": "w"}, prefix="m.")
    assert tensors == {"m.x": a, "m.y": b}


def test_save_run_stores_a_tied_weight_once_and_load_ties_it_again(tmp_path):
    model = Tied()
    config = ModelConfig(
        vocab_size=5, d_model=4, n_heads=1, n_layers=1, context_length=8
    ).to_dict()  # read back, unused
    save_run(
        tmp_path, model=model, tokenizer=CharTokenizer.train(["abc"]), model_config=config, train_config={}, step=1
    )
    assert list(load_file(tmp_path / MODEL_FILE)) == ["table.weight"]
    fresh = Tied()
    fresh.head.weight = nn.Parameter(torch.zeros(5, 3))  # untied: loading must fill both names
    load_weights(tmp_path, fresh)
    assert torch.equal(fresh.head.weight, model.table.weight) and torch.equal(fresh.table.weight, model.table.weight)


def test_the_models_hooks_leave_the_checkpoint_nothing_to_drop():
    gpt = GPT(ModelConfig(vocab_size=11, d_model=8, n_heads=2, n_layers=2, context_length=16, positional="learned"))
    everything = dict(gpt.named_parameters(remove_duplicate=False))
    assert find_aliases(everything.items())["lm_head.weight"] == "embed.token.embedding.weight"
    assert drop_aliases(gpt.state_dict())[1] == {}
