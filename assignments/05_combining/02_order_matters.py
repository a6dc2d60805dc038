"""Assignment tests for Part 5, chapter 2: order matters."""

import torch

from companion.teaching import test


def marker_positions(tokens):
    """Where X (token 0) and Y (token 1) stand in every sequence."""
    for marker, name in ((0, "X (token 0)"), (1, "Y (token 1)")):
        counts = (tokens == marker).sum(1)
        assert (counts == 1).all(), (
            f"every sequence should hold exactly one {name}, as in make_batch"
        )
    return (tokens == 0).int().argmax(1), (tokens == 1).int().argmax(1)


@test("ex-alibi-task")
def adjacent_labels_mark_neighbouring_markers(make_adjacent_batch):
    tokens, labels = (torch.as_tensor(t) for t in make_adjacent_batch(500, 3))
    assert tokens.shape == (500, 8) and labels.shape == (500,), (
        f"make_adjacent_batch(500, seed) should give tokens (500, 8) and labels "
        f"(500,), got {tuple(tokens.shape)} and {tuple(labels.shape)}"
    )
    x_at, y_at = marker_positions(tokens)
    expected = ((x_at - y_at).abs() == 1).long()
    wrong = (labels.long() != expected).sum().item()
    assert wrong == 0, (
        f"{wrong} of 500 labels are wrong: the label is 1 when X and Y stand next "
        "to each other (in either order), else 0"
    )


@test("ex-alibi-task", hidden=True)
def a_quarter_of_the_sequences_are_adjacent(make_adjacent_batch):
    _, labels = make_adjacent_batch(4000, 11)
    share = torch.as_tensor(labels).double().mean().item()
    assert abs(share - 14 / 56) < 0.03, (
        f"{share:.3f} of the sequences are labelled adjacent, expected about 1/4 "
        "(14 of the 56 ordered pairs of positions are neighbours)"
    )
    first, again, other = (make_adjacent_batch(20, s) for s in (5, 5, 6))
    assert torch.equal(first[0], again[0]), "the same seed should give the same batch"
    assert not torch.equal(first[0], other[0]), "other seeds should give other batches"


@test("ex-alibi-task")
def only_alibi_beats_the_majority_class(adjacent_accuracy, adj_labels):
    share = torch.as_tensor(adj_labels).double().mean().item()
    majority = max(share, 1 - share)
    for scheme in ("none", "alibi"):
        assert scheme in adjacent_accuracy, f"adjacent_accuracy has no {scheme!r}"
        assert 0 <= adjacent_accuracy[scheme] <= 1, "accuracies lie between 0 and 1"
    alibi, none = adjacent_accuracy["alibi"], adjacent_accuracy["none"]
    assert alibi > majority + 0.1, (
        f"ALiBi scores {alibi:.3f}, not clearly above always answering the majority "
        f"class ({majority:.3f}): its bias carries the distance adjacency needs"
    )
    assert none < majority + 0.05, (
        f"without positions the model scores {none:.3f}, expected about the "
        f"majority class ({majority:.3f}): a bag of tokens cannot see adjacency"
    )


@test("ex-pooling")
def reading_the_first_token_scores_about_five_eighths(best_accuracy):
    best_accuracy = float(best_accuracy)
    assert abs(best_accuracy - 0.625) < 0.02, (
        f"best_accuracy = {best_accuracy:.3f} is not the best such a model can do: "
        "which sequences can it classify from its first token for certain, and how "
        "well can it do on the others, whose bag of tokens fits either label?"
    )


@test("ex-pooling", hidden=True)
def best_accuracy_follows_from_the_test_set(marker_first, best_accuracy, test_tokens):
    share = (test_tokens[:, 0] < 2).double().mean().item()
    assert abs(float(marker_first) - share) < 1e-6, (
        f"marker_first = {marker_first}, but {share:.3f} of the test sequences "
        "(test_tokens) begin with X or Y"
    )
    expected = share + (1 - share) / 2
    assert abs(float(best_accuracy) - expected) < 1e-6, (
        f"best_accuracy = {best_accuracy}, expected {expected:.4f}: the sequences "
        "that begin with a marker, plus half of the others"
    )
