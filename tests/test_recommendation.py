import itertools
import math

import pytest
import torch

from companion.tasks.recommendation import (
    SASRec,
    SessionProcess,
    hit_rate_at_k,
    markov_scores,
    ndcg_at_k,
    next_item_loss,
    popularity_scores,
)
from companion.training import train

# A small process: items 0, 1 are trending; genre 0 has one series, items 2, 3, 4;
# genre 1 has one series, items 5, 6, 7.
SMALL = {"num_items": 8, "num_genres": 2, "series_length": 3, "num_trending": 2}


def test_sessions_are_deterministic_for_a_seed_and_differ_across_seeds():
    process = SessionProcess(num_items=300)
    a, ga = process.sample(50, 20, seed=3)
    b, gb = process.sample(50, 20, seed=3)
    c, _ = process.sample(50, 20, seed=4)
    assert torch.equal(a, b) and torch.equal(ga, gb)
    assert not torch.equal(a, c)
    assert a.shape == (50, 20) and ga.shape == (50,)
    assert a.dtype == torch.long and 0 <= int(a.min()) and int(a.max()) < 300
    assert 0 <= int(ga.min()) and int(ga.max()) < 8


def test_without_noise_users_binge_whole_series_of_their_genre():
    process = SessionProcess(
        **SMALL, trending_rate=0.0, abandon_rate=0.0, explore_rate=0.0
    )
    sessions, genres = process.sample(20, 7, seed=0)
    for row, genre in zip(sessions.tolist(), genres.tolist(), strict=True):
        expected = [2, 3, 4, 2, 3, 4, 2] if genre == 0 else [5, 6, 7, 5, 6, 7, 5]
        assert row == expected


def test_every_transition_follows_the_rules():
    process = SessionProcess()
    sessions, _ = process.sample(300, 30, seed=1)
    firsts = {20 + 5 * s for s in range(56)}  # 8 genres x 7 series of 5 episodes
    for row in sessions.tolist():
        current = None
        for item in row:
            if item < 20:  # trending: the series being watched is kept
                continue
            assert item in firsts or (current is not None and item == current + 1)
            current = item


def test_describe_decodes_the_layout():
    process = SessionProcess()  # 20 trending, 8 genres x 7 series x 5 episodes
    assert process.series_per_genre == 7
    assert process.describe(0) == ("trending", 0)
    assert process.describe(20) == ("episode", 0, 0, 0)
    assert process.describe(26) == ("episode", 0, 1, 1)
    assert process.describe(55) == ("episode", 1, 0, 0)
    assert process.describe(299) == ("episode", 7, 6, 4)
    assert process.first_episode(1, 0) == 55


def test_oracle_on_hand_computed_histories():
    process = SessionProcess(
        **SMALL, trending_rate=0.5, abandon_rate=0.25, explore_rate=0.5
    )
    # trending: Zipf 1 over 2 items = (2/3, 1/3), times 0.5.
    # After episode 0 of genre 0: continue with 0.5 * 0.75; new series 0.5 * 0.25,
    # split 0.75 to genre 0 (0.5 favourite + 0.5 / 2) and 0.25 to genre 1.
    after_episode = [1 / 3, 1 / 6, 0.09375, 0.375, 0, 0.03125, 0, 0]
    # After the last episode (or nothing watched): new series with 0.5.
    after_finale = [1 / 3, 1 / 6, 0.375, 0, 0, 0.125, 0, 0]
    histories = torch.tensor([[6, 2], [2, 0], [0, 4], [0, 1]])
    probs = process.next_item_probabilities(histories, torch.tensor([0, 0, 0, 0]))
    expected = torch.tensor(
        [after_episode, after_episode, after_finale, after_finale], dtype=torch.float64
    )
    assert torch.allclose(probs, expected, atol=1e-12)
    # the user of genre 1 after a finale prefers genre 1
    probs = process.next_item_probabilities(torch.tensor([[4]]), torch.tensor([1]))
    assert math.isclose(probs[0, 5].item(), 0.375) and math.isclose(
        probs[0, 2].item(), 0.125
    )


def test_oracle_rows_sum_to_one_and_match_sampled_frequencies():
    # two genres of two series of three episodes: items 2..13
    process = SessionProcess(
        num_items=14,
        num_genres=2,
        series_length=3,
        num_trending=2,
        trending_rate=0.2,
        abandon_rate=0.3,
    )
    sessions, genres = process.sample(20000, 4, seed=5)
    probs = process.next_item_probabilities(sessions[:, :3], genres)
    assert torch.allclose(probs.sum(1), torch.ones(20000, dtype=torch.float64))
    observed = torch.bincount(sessions[:, 3], minlength=14).double() / 20000
    assert torch.allclose(probs.mean(0), observed, atol=0.01)
    # every observed next item was possible
    assert (probs.gather(1, sessions[:, 3:]) > 0).all()


def test_metrics_on_hand_computed_examples():
    scores = torch.tensor([[0.1, 0.9, 0.5, 0.3]])
    # item 2 has one item above it: rank 1
    assert hit_rate_at_k(scores, torch.tensor([2]), 1) == 0.0
    assert hit_rate_at_k(scores, torch.tensor([2]), 2) == 1.0
    assert math.isclose(ndcg_at_k(scores, torch.tensor([2]), 2), 1 / math.log2(3))
    assert ndcg_at_k(scores, torch.tensor([1]), 1) == 1.0
    # item 0 is last: rank 3
    assert hit_rate_at_k(scores, torch.tensor([0]), 3) == 0.0
    assert math.isclose(ndcg_at_k(scores, torch.tensor([0]), 4), 1 / math.log2(5))
    # mean over users: ranks 1 and 3 with k = 2 -> hits 1, 0; ndcg 1/log2(3), 0
    two = scores.expand(2, -1)
    assert hit_rate_at_k(two, torch.tensor([2, 0]), 2) == 0.5
    per_user = ndcg_at_k(two, torch.tensor([2, 0]), 2, reduction="none")
    assert torch.allclose(per_user, torch.tensor([1 / math.log2(3), 0.0]).double())


def test_ties_are_broken_at_random_in_expectation():
    scores = torch.tensor([[1.0, 1.0, 1.0, 0.0]])
    target = torch.tensor([0])  # rank 0, 1 or 2 with probability 1/3 each
    assert math.isclose(hit_rate_at_k(scores, target, 1), 1 / 3)
    assert math.isclose(hit_rate_at_k(scores, target, 2), 2 / 3)
    assert hit_rate_at_k(scores, target, 3) == 1.0
    assert math.isclose(ndcg_at_k(scores, target, 2), (1 + 1 / math.log2(3)) / 3)
    assert math.isclose(
        ndcg_at_k(scores, target, 3), (1 + 1 / math.log2(3) + 1 / math.log2(4)) / 3
    )


def test_tie_rule_equals_the_average_over_every_tie_breaking_order():
    # Brute force: order the items by score, breaking ties by every permutation of
    # the items, and average the metrics of the resulting 0-based ranks.
    # User 0: 2 items above, 2 ties (ranks 2..4); user 1: 1 above, 3 ties (1..4).
    scores = torch.tensor([[2.0, 1.0, 2.0, 1.0, 1.0], [1.0, 1.0, 1.0, 3.0, 1.0]])
    target = torch.tensor([3, 2])
    orders = list(itertools.permutations(range(5)))
    for k in range(1, 6):
        hits, gains = [0.0, 0.0], [0.0, 0.0]
        for order in orders:
            for u, row in enumerate(scores.tolist()):
                ranking = sorted(range(5), key=lambda i: (-row[i], order[i]))
                rank = ranking.index(int(target[u]))
                hits[u] += (rank < k) / len(orders)
                gains[u] += (rank < k) / math.log2(rank + 2) / len(orders)
        per_user_hit = hit_rate_at_k(scores, target, k, reduction="none")
        per_user_ndcg = ndcg_at_k(scores, target, k, reduction="none")
        assert torch.allclose(per_user_hit, torch.tensor(hits, dtype=torch.float64))
        assert torch.allclose(per_user_ndcg, torch.tensor(gains, dtype=torch.float64))


def test_popularity_and_markov_on_hand_computed_counts():
    sessions = torch.tensor([[0, 1, 1], [2, 1, 0]])
    assert popularity_scores(sessions, 4).tolist() == [2.0, 3.0, 1.0, 0.0]
    train_sessions = torch.tensor([[0, 1, 2], [0, 1, 3]])
    # transitions 0->1 twice, 1->2, 1->3; popularity (2, 2, 1, 1) / (6 + 1)
    scores = markov_scores(train_sessions, torch.tensor([[2, 0], [3, 1]]), 4)
    expected = torch.tensor(
        [[2 / 7, 2 + 2 / 7, 1 / 7, 1 / 7], [2 / 7, 2 / 7, 1 + 1 / 7, 1 + 1 / 7]],
        dtype=torch.float64,
    )
    assert torch.allclose(scores, expected)


@pytest.mark.parametrize("position", ["learned", "none"])
def test_sasrec_shapes_causality_and_shared_embeddings(position):
    torch.manual_seed(0)
    model = SASRec(30, d_model=16, num_heads=2, position=position, max_len=12)
    items = torch.randint(0, 30, (3, 10))
    changed = items.clone()
    changed[:, 6:] = (changed[:, 6:] + 1) % 30
    with torch.no_grad():
        scores = model(items)
        assert scores.shape == (3, 10, 30)
        assert torch.allclose(scores[:, :6], model(changed)[:, :6], atol=1e-6)
        hidden, _ = model.encoder(items, need_weights=False)  # the fused kernel
        assert torch.equal(scores, hidden @ model.encoder.embedding.weight.T)
        hidden, _ = model.encoder(items)  # the manual formula: the same, rounded
        torch.testing.assert_close(
            scores, hidden @ model.encoder.embedding.weight.T, atol=1e-5, rtol=1e-5
        )
    weights = model.attention(items)
    assert len(weights) == 2 and weights[0].shape == (3, 2, 10, 10)
    # no output layer of its own: every (30, .) parameter is the item embedding
    assert [n for n, p in model.named_parameters() if p.shape[0] == 30] == [
        "encoder.embedding.weight"
    ]


def test_next_item_loss_and_training():
    torch.manual_seed(0)
    model = SASRec(30, d_model=16, max_len=12)
    sessions = torch.randint(0, 30, (8, 9))
    loss = next_item_loss(model, sessions)
    logits = model(sessions[:, :-1])
    manual = -torch.log_softmax(logits, -1).gather(2, sessions[:, 1:, None]).mean()
    assert torch.allclose(loss, manual, atol=1e-6)
    losses = train(
        model, lambda m, step: next_item_loss(m, sessions), 20, lr=1e-2, progress=False
    )
    assert losses[-1] < losses[0] - 0.5


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"num_items": 301}, "positive multiple"),
        ({"num_items": 20}, "positive multiple"),
        ({"num_genres": 0}, "num_genres must be a positive integer"),
        ({"trending_rate": 1.0}, "trending_rate must be a number in"),
        ({"abandon_rate": -0.1}, "abandon_rate must be a number in"),
        ({"explore_rate": True}, "explore_rate must be a number in"),
        ({"zipf_exponent": -1.0}, r"zipf_exponent must be a number in \[0, inf\)"),
        ({"zipf_exponent": math.inf}, "zipf_exponent must be a number in"),
        ({"num_trending": True}, "num_trending must be a positive integer, got True"),
        ({"abandon_rate": math.nan}, "abandon_rate must be a number in"),
    ],
)
def test_bad_process(options, message):
    with pytest.raises(ValueError, match=message):
        SessionProcess(**options)


def test_bad_sampling_and_oracle_input():
    process = SessionProcess()
    with pytest.raises(ValueError, match="num_users must be a positive integer"):
        process.sample(0, 5, seed=0)
    with pytest.raises(ValueError, match="length must be a positive integer"):
        process.sample(3, 0, seed=0)
    with pytest.raises(ValueError, match="num_users must be .* got True"):
        process.sample(True, 3, seed=0)
    with pytest.raises(ValueError, match="seed must be a non-negative integer"):
        process.sample(3, 3, seed=True)
    with pytest.raises(ValueError, match="seed must be a non-negative integer"):
        process.sample(3, 3, seed=2.0)
    with pytest.raises(ValueError, match=r"item must be an integer in \[0, 300\)"):
        process.describe(300)
    with pytest.raises(ValueError, match="item must be an integer .* got True"):
        process.describe(True)
    with pytest.raises(ValueError, match=r"genre must be an integer in \[0, 8\)"):
        process.first_episode(8, 0)
    with pytest.raises(ValueError, match=r"series must be an integer in \[0, 7\)"):
        process.first_episode(0, -1)
    with pytest.raises(ValueError, match=r"histories must lie in \[0, 300\)"):
        process.next_item_probabilities(torch.tensor([[300]]), torch.tensor([0]))
    with pytest.raises(ValueError, match="histories must be an int64 or int32"):
        process.next_item_probabilities(torch.tensor([1.0, 2.0]), torch.tensor([0]))
    # 300 as uint8 would wrap around to 44
    with pytest.raises(ValueError, match="histories must be an int64 or int32"):
        process.next_item_probabilities(
            torch.tensor([[255]], dtype=torch.uint8), torch.tensor([0])
        )
    with pytest.raises(ValueError, match="histories must have shape .* users >= 1"):
        process.next_item_probabilities(
            torch.zeros(0, 3, dtype=torch.long), torch.zeros(0, dtype=torch.long)
        )
    with pytest.raises(ValueError, match=r"genres must lie in \[0, 8\)"):
        process.next_item_probabilities(torch.tensor([[1]]), torch.tensor([8]))
    with pytest.raises(ValueError, match="genres must be an int64 or int32"):
        process.next_item_probabilities(torch.tensor([[1]]), torch.tensor([0.0]))
    with pytest.raises(ValueError, match=r"genres must have shape \(1,\)"):
        process.next_item_probabilities(torch.tensor([[1]]), torch.tensor([0, 1]))


@pytest.mark.parametrize(
    ("scores", "target", "k", "message"),
    [
        (torch.zeros(4), torch.tensor([0]), 1, "scores must have 2 axes"),
        ([[0.0, 1.0]], torch.tensor([0]), 1, "scores must be a torch.Tensor"),
        (torch.zeros(1, 4, dtype=torch.long), torch.tensor([0]), 1, "floating-point"),
        (torch.tensor([[0.0, float("nan")]]), torch.tensor([0]), 1, "NaN"),
        (torch.zeros(1, 4), torch.tensor([4]), 1, r"target must lie in \[0, 4\)"),
        (torch.zeros(1, 4), torch.tensor([0.0]), 1, "target must be an int64 or int32"),
        (
            torch.zeros(1, 4),
            torch.tensor([0], dtype=torch.uint8),
            1,
            "target must be an int64 or int32 tensor, got torch.uint8",
        ),
        (
            torch.zeros(0, 4),
            torch.zeros(0, dtype=torch.long),
            1,
            r"scores must have shape \(users, items\) with users, items >= 1",
        ),
        (torch.zeros(1, 4), torch.tensor([0]), True, "k must be a positive integer"),
        (torch.zeros(2, 4), torch.tensor([0]), 1, r"target must have shape \(2,\)"),
        (torch.zeros(1, 4), torch.tensor([0]), 0, "k must be a positive integer"),
        (
            torch.zeros(1, 4),
            torch.tensor([0]),
            5,
            "k must be at most the number of items",
        ),
    ],
)
@pytest.mark.parametrize("metric", [hit_rate_at_k, ndcg_at_k])
def test_bad_metric_input(metric, scores, target, k, message):
    with pytest.raises(ValueError, match=message):
        metric(scores, target, k)


def test_bad_reduction_loss_and_baseline_input():
    with pytest.raises(
        ValueError, match=r"reduction must be one of \('mean', 'none'\)"
    ):
        hit_rate_at_k(torch.zeros(1, 4), torch.tensor([0]), 1, reduction="sum")
    with pytest.raises(ValueError, match="reduction must be one of"):
        ndcg_at_k(torch.zeros(1, 4), torch.tensor([0]), 1, reduction="sum")
    with pytest.raises(ValueError, match="sessions must have shape .* seq >= 2"):
        next_item_loss(SASRec(10, d_model=8), torch.zeros(2, 1, dtype=torch.long))
    with pytest.raises(ValueError, match=r"sessions must lie in \[0, 3\)"):
        popularity_scores(torch.tensor([[0, 3]]), 3)
    with pytest.raises(ValueError, match="sessions must be an int64 or int32"):
        popularity_scores(torch.tensor([[0, 1]], dtype=torch.int16), 3)
    with pytest.raises(ValueError, match="num_items must be a positive integer"):
        popularity_scores(torch.tensor([[0, 1]]), 0)
    with pytest.raises(ValueError, match="histories must have 2 axes"):
        markov_scores(torch.tensor([[0, 1]]), torch.tensor([0, 1]), 3)
    with pytest.raises(ValueError, match="d_model must be a positive integer"):
        SASRec(10, d_model=0)
    with pytest.raises(ValueError, match="num_items must be a positive integer"):
        SASRec(0, d_model=8)
    with pytest.raises(ValueError, match="d_ff must be a positive integer, got True"):
        SASRec(10, d_model=8, d_ff=True)


def test_markov_scores_refuses_uint8_ids():
    # uint8 ids would wrap around (300 -> 44), and indexing with a uint8 tensor
    # reads it as a boolean mask
    train_sessions = torch.tensor([[0, 1, 2]], dtype=torch.uint8)
    with pytest.raises(ValueError, match="train must be an int64 or int32 tensor"):
        markov_scores(train_sessions, torch.tensor([[1, 2]]), 3)
    with pytest.raises(ValueError, match="histories must be an int64 or int32"):
        markov_scores(train_sessions.long(), train_sessions, 3)


@pytest.mark.parametrize(
    ("sessions", "message"),
    [
        # -100 is cross_entropy's ignore_index: it would be dropped silently
        (torch.tensor([[1, 2, -100]]), r"sessions must lie in \[0, 10\)"),
        (torch.tensor([[1, 2, 10]]), r"sessions must lie in \[0, 10\)"),
        (torch.tensor([[1, 2, 3]], dtype=torch.uint8), "sessions must be an int64"),
        (torch.zeros(0, 3, dtype=torch.long), "sessions must have shape"),
        (torch.tensor([1, 2, 3]), "sessions must have 2 axes"),
    ],
)
def test_next_item_loss_refuses_ids_out_of_range(sessions, message):
    torch.manual_seed(0)
    with pytest.raises(ValueError, match=message):
        next_item_loss(SASRec(10, d_model=8, max_len=12), sessions)


def test_next_item_loss_needs_a_sasrec():
    with pytest.raises(ValueError, match="model must be a SASRec, got Linear"):
        next_item_loss(torch.nn.Linear(2, 2), torch.tensor([[1, 2]]))


def test_sasrec_refuses_bad_items_by_name():
    torch.manual_seed(0)
    model = SASRec(10, d_model=8, max_len=12)
    with pytest.raises(ValueError, match=r"items must lie in \[0, 10\)"):
        model(torch.tensor([[1, 10]]))
    with pytest.raises(ValueError, match="items must be an int64 or int32"):
        model.attention(torch.tensor([[1.0, 2.0]]))


def test_int32_ids_give_the_int64_results():
    torch.manual_seed(0)
    model = SASRec(30, d_model=16, max_len=12)
    sessions = torch.randint(0, 30, (4, 9))
    process = SessionProcess(**SMALL)
    small, genres = process.sample(5, 6, seed=0)
    assert torch.equal(
        next_item_loss(model, sessions.int()), next_item_loss(model, sessions)
    )
    assert torch.equal(
        markov_scores(sessions.int(), sessions.int(), 30),
        markov_scores(sessions, sessions, 30),
    )
    assert torch.equal(
        process.next_item_probabilities(small.int(), genres.int()),
        process.next_item_probabilities(small, genres),
    )
    scores = torch.rand(4, 30, generator=torch.Generator().manual_seed(0))
    target = sessions[:, -1]
    assert ndcg_at_k(scores, target.int()) == ndcg_at_k(scores, target)


def test_recommendation_makes_its_tensors_on_the_inputs_device():
    """CPU inputs give the same CPU results while the default device is "meta":
    every tensor the module makes follows its inputs (or the model's weights)."""
    torch.manual_seed(0)
    model = SASRec(30, d_model=16, max_len=12)
    process = SessionProcess(**SMALL)
    sessions = torch.randint(0, 30, (4, 9), generator=torch.Generator().manual_seed(1))
    small, genres = process.sample(5, 6, seed=0)
    scores = torch.rand(4, 30, generator=torch.Generator().manual_seed(0))

    def run():
        return [
            model(sessions),
            model.attention(sessions)[0],
            next_item_loss(model, sessions),
            popularity_scores(sessions, 30),
            markov_scores(sessions, sessions, 30),
            process.next_item_probabilities(small, genres),
            hit_rate_at_k(scores, sessions[:, -1], 5, reduction="none"),
            ndcg_at_k(scores, sessions[:, -1], 5, reduction="none"),
        ]

    expected = run()
    previous = torch.get_default_device()
    torch.set_default_device("meta")
    try:
        results = run()
    finally:
        torch.set_default_device(previous)
    for result, value in zip(results, expected, strict=True):
        assert result.device == sessions.device and torch.equal(result, value)
