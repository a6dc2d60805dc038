import pytest
import torch
import torch.nn.functional as F

from companion.models import TransformerClassifier
from companion.tasks.text import (
    PAD,
    UNK,
    Vocabulary,
    bag_of_words,
    read_labelled_csv,
    sentiment_data,
    sentiment_kind,
    sentiment_rule,
    tokenize,
)
from companion.training import train

# ---------------------------------------------------------------- tokenizer


def test_tokenize_lowercases_and_splits_punctuation():
    assert tokenize("The plot wasn't good.") == [
        "the", "plot", "wasn", "'", "t", "good", ".",
    ]  # fmt: skip
    assert tokenize("Hello,world!!") == ["hello", ",", "world", "!", "!"]
    assert tokenize("  ") == []


def test_tokenize_refuses_non_strings():
    with pytest.raises(ValueError, match="text must be a string"):
        tokenize(3)


# --------------------------------------------------------------- vocabulary


def test_vocabulary_ids_frequency_then_alphabetical():
    vocab = Vocabulary(["b a", "a c"])  # a twice, b and c once
    assert vocab.itos == ["<pad>", "<unk>", "a", "b", "c"]
    assert vocab.stoi["<pad>"] == PAD == 0 and vocab.stoi["<unk>"] == UNK == 1
    assert len(vocab) == 5
    assert Vocabulary(["a c", "b a"]).itos == vocab.itos  # order of texts irrelevant
    assert Vocabulary(["b a", "a c"], min_count=2).itos == ["<pad>", "<unk>", "a"]


def test_vocabulary_accepts_any_iterable_of_texts():
    expected = Vocabulary(["b a", "a c"])
    assert Vocabulary(("b a", "a c")).itos == expected.itos
    assert Vocabulary(t for t in ["b a", "a c"]).itos == expected.itos
    tokens, lengths = expected.encode(t for t in ["a", "c b"])
    assert tokens.tolist() == [[2, 0], [4, 3]] and lengths.tolist() == [1, 2]


def test_encode_pads_and_maps_unknown_words():
    vocab = Vocabulary(["b a", "a c"])
    tokens, lengths = vocab.encode(["A b", "c d e"])
    assert tokens.dtype == lengths.dtype == torch.long
    assert tokens.tolist() == [[2, 3, 0], [4, 1, 1]]
    assert lengths.tolist() == [2, 3]
    assert vocab.decode(tokens[0]) == ["a", "b"]
    assert vocab.decode([4, 1, 0]) == ["c", "<unk>"]


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: Vocabulary([]), "non-empty list of strings"),
        (
            lambda: Vocabulary("a b"),
            "texts must be a non-empty list of strings, got one",
        ),
        (lambda: Vocabulary(["a"], min_count=0), "min_count must be a positive"),
        (lambda: Vocabulary(["a"]).encode([]), "non-empty list of strings"),
        (lambda: Vocabulary(["a"]).encode("a"), "texts must be .* got one string"),
        (lambda: Vocabulary(["a"]).encode(["a", " "]), r"texts\[1\] has no tokens"),
        (lambda: Vocabulary(["a"]).encode([5]), r"texts\[0\] must be a string"),
        (lambda: Vocabulary(["a"]).encode(5), "texts must be .* got int"),
        (lambda: Vocabulary(["a"]).decode([[2]]), r"ids must have 1 axes, got shape"),
        (lambda: Vocabulary(["a"]).decode([3]), r"ids must lie in \[0, 3\)"),
        (lambda: Vocabulary(["a"]).decode([2.0]), "ids must be an int64 or int32"),
        (
            lambda: Vocabulary(["a"]).decode(torch.tensor([2], dtype=torch.uint8)),
            "ids must be an int64 or int32 tensor, got torch.uint8",
        ),
        (lambda: Vocabulary(["a"]).decode("2"), "ids must be an int64 .* got str"),
        (lambda: Vocabulary(iter([])), "non-empty list of strings"),
        (lambda: Vocabulary(["a"], min_count=True), "min_count must be a positive"),
    ],
)
def test_vocabulary_errors(call, message):
    with pytest.raises(ValueError, match=message):
        call()


# ------------------------------------------------------------- bag of words


def test_bag_of_words_counts_and_ignores_padding():
    counts = bag_of_words(torch.tensor([[2, 3, 2, 0], [4, 1, 0, 0]]), 5)
    assert counts.dtype == torch.float32
    assert counts.tolist() == [[0, 0, 2, 1, 0], [0, 1, 0, 0, 1]]


def test_bag_of_words_is_blind_to_order():
    vocab = Vocabulary(["the plot was good , but the acting was bad ."])
    tokens, _ = vocab.encode(
        [
            "the plot was good , but the acting was bad .",
            "the acting was bad , but the plot was good .",
        ]
    )
    counts = bag_of_words(tokens, len(vocab))
    assert torch.equal(counts[0], counts[1])


@pytest.mark.parametrize(
    ("tokens", "size", "message"),
    [
        (torch.tensor([[1.0, 2.0]]), 5, "tokens must be an int64 or int32 tensor"),
        (torch.tensor([1, 2]), 5, r"tokens must have 2 axes, got shape \(2,\)"),
        (
            torch.tensor([[1, 2]], dtype=torch.uint8),
            5,
            "tokens must be an int64 or int32 tensor, got torch.uint8",
        ),
        (
            torch.tensor([[1, 2]], dtype=torch.int16),
            5,
            "tokens must be an int64 or int32 tensor, got torch.int16",
        ),
        (
            torch.zeros(0, 3, dtype=torch.long),
            5,
            r"tokens must have shape \(batch, seq\) with batch, seq >= 1",
        ),
        (torch.tensor([[1, 2]]), True, "vocab_size must be a positive integer"),
        (torch.tensor([[1, 5]]), 5, r"tokens must lie in \[0, 5\)"),
        (torch.tensor([[-1, 2]]), 5, r"tokens must lie in \[0, 5\)"),
        (torch.tensor([[1, 2]]), 0, "vocab_size must be a positive integer"),
    ],
)
def test_bag_of_words_errors(tokens, size, message):
    with pytest.raises(ValueError, match=message):
        bag_of_words(tokens, size)


def test_bag_of_words_takes_int32_ids():
    tokens = torch.tensor([[2, 3, 2, 0], [4, 1, 0, 0]])
    expected = bag_of_words(tokens, 5)
    assert torch.equal(bag_of_words(tokens.int(), 5), expected)


def test_bag_of_words_makes_its_tensors_on_the_tokens_device():
    """CPU tokens give a CPU result even while the default device is "meta": no
    tensor is made without ``device=``."""
    tokens = torch.tensor([[2, 3, 2, 0], [4, 1, 0, 0]])
    expected = bag_of_words(tokens, 5)
    previous = torch.get_default_device()
    torch.set_default_device("meta")
    try:
        counts = bag_of_words(tokens, 5)
    finally:
        torch.set_default_device(previous)
    assert counts.device == tokens.device and torch.equal(counts, expected)


# ------------------------------------------------------------ the grammar


@pytest.mark.parametrize(
    ("sentence", "label", "kind"),
    [
        ("the plot was good .", 1, "plain"),
        ("the acting was extremely bad .", 0, "plain"),
        ("the plot was not good .", 0, "negation"),
        ("the plot was not very awful .", 1, "negation"),
        ("the plot was good , but the acting was bad .", 0, "contrast"),
        ("the acting was bad , but the plot was good .", 1, "contrast"),
        ("the plot was not good , but the acting was not bad .", 1, "contrast"),
        ("the music was really dull , but the cast was not weak .", 1, "contrast"),
    ],
)
def test_rule_and_kind_on_hand_checked_sentences(sentence, label, kind):
    assert sentiment_rule(sentence) == label
    assert sentiment_kind(sentence) == kind


@pytest.mark.parametrize(
    "sentence", ["the plot was .", "the plot was good and bad .", "hello", ""]
)
def test_rule_needs_one_adjective_per_clause(sentence):
    with pytest.raises(ValueError, match="text must have exactly one sentiment adj"):
        sentiment_rule(sentence)


def test_sentiment_data_deterministic_and_seed_dependent():
    texts, labels = sentiment_data(200, seed=3)
    texts2, labels2 = sentiment_data(200, seed=3)
    assert texts == texts2 and torch.equal(labels, labels2)
    texts3, _ = sentiment_data(200, seed=4)
    assert texts != texts3


def test_sentiment_data_labels_shares_and_balance():
    texts, labels = sentiment_data(1000, seed=0)
    assert len(texts) == 1000 and labels.shape == (1000,)
    assert labels.dtype == torch.long
    assert int(labels.sum()) == 500  # balanced
    assert [sentiment_rule(t) for t in texts] == labels.tolist()
    kinds = [sentiment_kind(t) for t in texts]
    assert kinds.count("contrast") == 400  # 0.4 of 1000, i.e. 200 mirror pairs
    negated = kinds.count("negation") / 600  # 0.3 of the single clauses
    assert 0.24 < negated < 0.36
    words = {w for t in texts for w in tokenize(t)}
    assert {"very", "really", "extremely", "not", "but"} <= words


def test_every_contrast_has_its_mirror_with_the_opposite_label():
    texts, labels = sentiment_data(300, seed=1)
    label_of = dict(zip(texts, labels.tolist(), strict=True))
    contrasts = [t for t in texts if sentiment_kind(t) == "contrast"]
    assert contrasts
    for sentence in contrasts:
        first, second = sentence[: -len(" .")].split(" , but ")
        mirror = f"{second} , but {first} ."
        assert label_of[mirror] == 1 - label_of[sentence]
        assert sorted(tokenize(mirror)) == sorted(tokenize(sentence))


def test_sentiment_data_shares_at_the_extremes():
    texts, _ = sentiment_data(50, seed=0, contrast_share=0.0, negation_share=0.0)
    assert {sentiment_kind(t) for t in texts} == {"plain"}
    texts, _ = sentiment_data(50, seed=0, contrast_share=0.0, negation_share=1.0)
    assert {sentiment_kind(t) for t in texts} == {"negation"}
    texts, labels = sentiment_data(50, seed=0, contrast_share=1.0)
    assert {sentiment_kind(t) for t in texts} == {"contrast"}
    assert int(labels.sum()) == 25
    texts, labels = sentiment_data(1, seed=0)
    assert len(texts) == 1 and labels.shape == (1,)
    # odd n, all contrasts: the pairs fill n // 2 pairs, one single clause is left
    for n in (3, 7):
        texts, labels = sentiment_data(n, seed=0, contrast_share=1.0)
        kinds = [sentiment_kind(t) for t in texts]
        assert len(texts) == n and labels.shape == (n,)
        assert kinds.count("contrast") == n - 1


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n": 0}, "n must be a positive integer"),
        ({"n": 2.5}, "n must be a positive integer"),
        ({"n": True}, "n must be a positive integer, got True"),
        ({"n": 10, "seed": True}, "seed must be a non-negative integer, got True"),
        ({"n": 10, "seed": 2.0}, "seed must be a non-negative integer, got 2.0"),
        ({"n": 10, "seed": -1}, "seed must be a non-negative integer, got -1"),
        ({"n": 10, "contrast_share": float("nan")}, "contrast_share must be"),
        ({"n": 10, "contrast_share": 1.5}, r"contrast_share must be a number in"),
        ({"n": 10, "negation_share": -0.1}, r"negation_share must be a number"),
        ({"n": 10, "negation_share": True}, r"negation_share must be a number"),
    ],
)
def test_sentiment_data_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        sentiment_data(**kwargs)


# -------------------------------------------------------------------- CSV


def write(path, content):
    path.write_text(content, encoding="utf-8")
    return path


def test_read_csv_with_quotes_and_word_labels(tmp_path):
    path = write(
        tmp_path / "r.csv",
        'id,text,label\n1,"Great, really.",pos\n2,"Bad\nand long",neg\n3,ok,pos\n',
    )
    texts, labels, names = read_labelled_csv(path)
    assert texts == ["Great, really.", "Bad\nand long", "ok"]
    assert names == ["neg", "pos"]
    assert labels.tolist() == [1, 0, 1] and labels.dtype == torch.long


def test_read_csv_integer_labels_sorted_numerically_and_bom(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text("review,stars\na,10\nb,2\nc,-1\nd,2\n", encoding="utf-8-sig")
    texts, labels, names = read_labelled_csv(path, "review", "stars")
    assert names == ["-1", "2", "10"]
    assert labels.tolist() == [2, 1, 0, 1]
    assert texts == ["a", "b", "c", "d"]


@pytest.mark.parametrize(
    ("content", "kwargs", "message"),
    [
        ("", {}, "r.csv is empty"),
        ("text,label\n", {}, "header but no data rows"),
        ("review,label\na,1\n", {}, r"column 'text' not found in r.csv"),
        ("text,label\na,1\n", {"label_column": "y"}, r"column 'y' not found"),
        ("text,label\na,1\n ,0\n", {}, r"line 3 has an empty 'text'"),
        ("text,label\na,\n", {}, r"line 2 has an empty 'label'"),
        ("text,label\na\n", {}, r"line 2 has an empty 'label'"),
    ],
)
def test_read_csv_errors(tmp_path, content, kwargs, message):
    path = write(tmp_path / "r.csv", content)
    with pytest.raises(ValueError, match=message):
        read_labelled_csv(path, **kwargs)


@pytest.mark.parametrize("path", [True, 3, None])
def test_read_csv_refuses_a_path_that_is_not_a_path(path):
    # open(True) would read standard output, open(3) file descriptor 3
    with pytest.raises(ValueError, match="path must be a str or a pathlib.Path"):
        read_labelled_csv(path)


# ------------------------------------------------------- the whole pipeline


def test_pipeline_shapes_padding_and_one_training_step():
    texts, labels = sentiment_data(64, seed=0)
    vocab = Vocabulary(texts)
    tokens, lengths = vocab.encode(texts)
    torch.manual_seed(0)
    model = TransformerClassifier(
        len(vocab), 2, d_model=16, num_heads=2, num_layers=1, d_ff=32
    )
    model.eval()
    with torch.no_grad():
        logits = model(tokens, lengths)
        padded = torch.cat([tokens, torch.zeros(64, 3, dtype=torch.long)], dim=1)
        assert logits.shape == (64, 2)
        assert torch.allclose(model(padded, lengths), logits, atol=1e-5)
        before = F.cross_entropy(logits, labels).item()

    def loss_fn(model, step):
        return F.cross_entropy(model(tokens, lengths), labels)

    train(model, loss_fn, steps=5, lr=1e-2, progress=False)
    with torch.no_grad():
        after = F.cross_entropy(model(tokens, lengths), labels).item()
    assert after < before
