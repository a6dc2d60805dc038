"""Assignment tests for Part 6, chapter 4: sequential recommendation."""

import math

import torch

from companion.tasks.recommendation import SessionProcess, hit_rate_at_k, markov_scores
from companion.teaching import test

# the held-out item ties with 4 others behind 8 higher ones: its 0-based rank is
# uniform on 8, ..., 12 under random tie-breaking
TIED_RANKS = range(8, 13)


@test("ex-rec-ties")
def tie_hit_averages_over_the_tied_ranks(tie_hit):
    expected = sum(r < 10 for r in TIED_RANKS) / len(TIED_RANKS)
    assert abs(float(tie_hit) - expected) < 1e-6, (
        f"tie_hit = {tie_hit}, expected {expected}: under random tie-breaking the "
        "held-out item is equally likely at each of the 5 tied places, and Hit@10 "
        "is the share of them within the top 10"
    )


@test("ex-rec-ties", hidden=True)
def tie_ndcg_averages_over_the_tied_ranks(tie_ndcg):
    expected = sum(1 / math.log2(r + 2) for r in TIED_RANKS if r < 10)
    expected /= len(TIED_RANKS)
    assert abs(float(tie_ndcg) - expected) < 1e-6, (
        f"tie_ndcg = {tie_ndcg}, expected {expected:.4f}: average 1 / log2(rank + 1) "
        "(1-based rank; 0 outside the top 10) over the 5 tied places"
    )


def _methods(full, sampled, results):
    for name, table in (("full", full), ("sampled", sampled)):
        assert set(table) == set(results), (
            f"{name} has the keys {sorted(table)}; expected the methods of the "
            f"results table: {sorted(results)}"
        )


@test("ex-rec-sampled")
def sampling_inflates_every_method(full, sampled, results):
    _methods(full, sampled, results)
    for method in results:
        assert abs(float(full[method]) - results[method]["hit"]) < 1e-4, (
            f"full[{method!r}] = {full[method]:.4f}, but the results table has Hit@10 "
            f"{results[method]['hit']:.4f}: the full ranking is the chapter's "
            "evaluation (means over the seeds for SASRec)"
        )
        assert float(sampled[method]) > float(full[method]), (
            f"{method}: sampled {sampled[method]:.3f} is not above full "
            f"{full[method]:.3f}; beating 100 random items should be easier than "
            "beating all the others"
        )


@test("ex-rec-sampled", hidden=True)
def sampled_hits_match_a_fresh_sample(sampled, full, baselines, history, target):
    users, items = baselines["popularity"].shape
    seen = torch.zeros(users, items, dtype=torch.bool)
    seen.scatter_(1, history, True)
    seen.scatter_(1, target[:, None], True)
    keys = torch.rand(users, items, generator=torch.Generator().manual_seed(123))
    negatives = keys.masked_fill(seen, -1.0).topk(100, dim=1).indices
    candidates = torch.cat([target[:, None], negatives], dim=1)
    first = torch.zeros(users, dtype=torch.long)
    for method in ("popularity", "oracle (true process)"):
        among = baselines[method].gather(1, candidates)
        expected = hit_rate_at_k(among, first)
        assert abs(float(sampled[method]) - expected) < 0.04, (
            f"sampled[{method!r}] = {sampled[method]:.3f}; a fresh sample of 100 "
            f"items the user has not clicked gives {expected:.3f}: rank the held-out "
            "item among itself and 100 such items, for every user"
        )
    gap = {name: table["SASRec, learned positions"] - table["SASRec, no positions"]
           for name, table in (("full", full), ("sampled", sampled))}
    assert gap["sampled"] < gap["full"], (
        f"the gain of learned positions is {gap['full']:.3f} in full and "
        f"{gap['sampled']:.3f} in sampled Hit@10; sampling should shrink it here"
    )


@test("ex-rec-no-interruptions")
def markov_comes_close_without_interruptions(calm_oracle, calm_markov):
    oracle, markov = float(calm_oracle), float(calm_markov)
    assert 0 <= markov <= 1 and 0 <= oracle <= 1, "Hit@10 values are shares in [0, 1]"
    assert -0.01 < oracle - markov < 0.06, (
        f"oracle {oracle:.3f}, Markov {markov:.3f}: without interruptions the next "
        "item depends on the last one (and the favourite genre), so the Markov chain "
        "should come within a few points of the oracle"
    )


@test("ex-rec-no-interruptions", hidden=True)
def calm_values_match_a_fresh_sample(calm_oracle, calm_markov, NUM_ITEMS, NUM_USERS,
                                     LENGTH):
    got = {"calm_oracle": float(calm_oracle), "calm_markov": float(calm_markov)}
    calm = SessionProcess(num_items=NUM_ITEMS, trending_rate=0.0)
    sessions, genres = calm.sample(NUM_USERS, LENGTH, seed=0)
    history, target = sessions[:, :-1], sessions[:, -1]
    oracle = hit_rate_at_k(calm.next_item_probabilities(history, genres), target)
    markov = hit_rate_at_k(markov_scores(history, history, NUM_ITEMS), target)
    for name, expected in (("calm_oracle", oracle), ("calm_markov", markov)):
        assert abs(got[name] - expected) < 0.025, (
            f"{name} = {got[name]:.3f}, expected about {expected:.3f}: sample "
            f"{NUM_USERS} sessions of {LENGTH} items with trending_rate=0.0 and rank "
            "the last item of each from the clicks before it"
        )


@test("ex-rec-position")
def one_position_too_many_hurts(learned_longer, target, test_scores):
    assert tuple(learned_longer.shape) == tuple(test_scores["learned", 0].shape), (
        f"learned_longer has shape {tuple(learned_longer.shape)}; expected one row of "
        f"item scores per user, {tuple(test_scores['learned', 0].shape)}"
    )
    longer = hit_rate_at_k(learned_longer, target)
    window = hit_rate_at_k(test_scores["learned", 0], target)
    assert longer < window - 0.05, (
        f"Hit@10 {longer:.3f} with one item more, against {window:.3f} with the "
        "window: read the most recent WINDOW + 1 clicks with trained['learned', 0] "
        "and keep the scores of the last position"
    )


@test("ex-rec-position", hidden=True)
def learned_longer_reads_one_more_click(learned_longer, trained, history, WINDOW):
    with torch.no_grad():
        expected = trained["learned", 0](history[:200, -(WINDOW + 1) :])[:, -1]
    gap = (learned_longer[:200] - expected).abs().max().item()
    assert gap < 1e-4, (
        f"learned_longer differs by up to {gap:.3g} from the scores of the last "
        f"position when the model reads the {WINDOW + 1} most recent clicks before "
        "the test item"
    )
