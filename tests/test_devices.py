"""Device acceptance: tensors companion creates follow the inputs' device.

Every module and every input is made on the CPU; then, with PyTorch's default
device set to ``meta``, every public function and every model method (the valid
calls of the bad-input sweep's table, `test_bad_inputs.ENTRIES`) runs on those
CPU inputs, and builders from sizes get ``device="cpu"``. A tensor created
inside companion without ``device=`` lands on ``meta`` and the call fails (or
returns a meta tensor), just as it would beside CUDA inputs.
"""

import contextlib
import inspect
from collections.abc import Callable

import pytest
import torch
from test_bad_inputs import ENTRIES, MODULES, Entry, public_names
from torch import Tensor, nn

from companion import training

# Calls left out, and why. Constructors (the ``init`` of class entries) run on
# the CPU before the meta device is set, as the module of a model on a GPU is
# built and then moved; these builders are constructors too, or generators of
# data that take no tensor and so have no device to follow.
EXCLUDED = {
    "models.token_embedding": "builds a module (nn.Embedding), like a constructor",
    "pretrained.load_minilm": "builds a module from files, like a constructor",
    "pretrained.minilm_directory": "finds a folder: takes no tensor",
    "teaching.check_assignment": "runs assignment tests, which make their own inputs",
    "data.regression_data": "a data generator: takes no tensor",
    "tasks.text.sentiment_data": "a data generator: takes no tensor",
    "tasks.text.read_labelled_csv": "reads a file into tensors: takes no tensor",
    "tasks.text.Vocabulary.encode": "encodes strings into tensors: takes no tensor",
    "tasks.translation.exact_match": "compares strings: takes no tensor",
    "tasks.vision.digits_split": "a data set loader: takes no tensor",
    "tasks.recommendation.SessionProcess.sample": "a data generator: takes no tensor",
    # The sweep's loss makes its batch when called, on the default device; the
    # loop is tested below with a batch made on the CPU beforehand.
    "training.train": "tested by test_training_loop_on_cpu_under_a_meta_default_device",
}


def name_of(entry: Entry) -> str:
    return (
        f"{entry.covers}.{entry.method}" if inspect.isclass(entry.fn) else entry.covers
    )


CALLS = [entry for entry in ENTRIES if name_of(entry) not in EXCLUDED]


@contextlib.contextmanager
def default_device(device: str):
    """PyTorch's default device set to `device` inside the block, restored after."""
    previous = torch.get_default_device()
    torch.set_default_device(device)
    try:
        yield
    finally:
        torch.set_default_device(None if previous.type == "cpu" else previous)


def devices(value: object) -> set[str]:
    """The devices of every tensor (and module parameter) in `value`."""
    if isinstance(value, Tensor):
        return {value.device.type}
    if isinstance(value, nn.Module):
        return {p.device.type for p in value.parameters()}
    if isinstance(value, list | tuple):
        return set().union(*(devices(v) for v in value))
    if isinstance(value, dict):
        return set().union(*(devices(v) for v in value.values()))
    return set()


def prepare(entry: Entry) -> tuple[Callable, dict]:
    """On the CPU: the instance (built from the ``init`` arguments) and the
    arguments; ``device="cpu"`` for a function or method that takes one."""
    kw = entry.args()
    target = entry.fn
    if inspect.isclass(entry.fn):
        init = {param: kw.pop(name) for name, param in entry.init.items()}
        torch.default_generator.manual_seed(0)
        target = getattr(entry.fn(**init), entry.method)
    if "device" in inspect.signature(target).parameters and "device" not in kw:
        kw["device"] = "cpu"
    return target, kw


def test_every_public_name_is_called_or_excluded_with_a_reason():
    public = set().union(*(public_names(m) for m in MODULES))
    called = {entry.covers for entry in CALLS}
    excluded = {name.rsplit(".", 1)[0] for name in EXCLUDED} | set(EXCLUDED)
    assert public - called - excluded == set()
    assert set(EXCLUDED) <= {name_of(entry) for entry in ENTRIES}


@pytest.mark.parametrize("entry", CALLS, ids=lambda e: e.label)
def test_cpu_inputs_give_cpu_results_whatever_the_default_device(entry):
    target, kw = prepare(entry)
    assert devices(kw) <= {"cpu"}
    with default_device("meta"):
        assert torch.zeros(1).device.type == "meta"  # a tensor made without device=
        result = target(**kw)
    assert devices(result) <= {"cpu"}, f"{entry.label} returned {devices(result)}"


def test_training_loop_on_cpu_under_a_meta_default_device():
    torch.default_generator.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 1))
    x = torch.randn(8, 3, generator=torch.Generator().manual_seed(1))
    before = [p.detach().clone() for p in model.parameters()]
    with default_device("meta"):
        losses = training.train(
            model, lambda m, step: m(x).pow(2).mean(), steps=2, lr=0.01, progress=False
        )
    assert len(losses) == 2 and all(isinstance(v, float) for v in losses)
    assert devices(model) == {"cpu"}
    changed = [
        not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True)
    ]
    assert all(changed), "two Adam steps must move every parameter"


def test_attention_dropout_draws_its_noise_on_the_inputs_device():
    """With dropout > 0 (not in the sweep's valid calls) the Bernoulli noise is a
    new tensor: it must follow the weights' device, in the function, in both
    paths of multi-head attention and in the blocks, in training mode."""
    from companion import attention, models

    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 3, 4, generator=g) for _ in range(3))
    torch.default_generator.manual_seed(0)
    mha = attention.MultiHeadAttention(4, 2, dropout=0.5)
    block = models.TransformerBlock(4, 2, 8, causal=True, dropout=0.5)
    with default_device("meta"):
        results = [
            attention.scaled_dot_product_attention(q, k, v, dropout=0.5),
            mha(q, k, v),
            mha(q, k, v, need_weights=False),
            block(q),
            block(q, need_weights=False),
        ]
    assert devices(results) == {"cpu"}
