"""Sequential recommendation: generated sessions, SASRec and ranking metrics (Part 6,
chapter 4).

`SessionProcess` generates users' item sequences with a known structure and gives
the exact next-item probabilities of that process (an oracle); `SASRec` is the
self-attentive next-item model of Kang & McAuley (2018), built from
`companion.models.TransformerEncoder`; `popularity_scores` and `markov_scores` are
the classic baselines; `hit_rate_at_k` and `ndcg_at_k` rank the held-out item among
all items.
"""

import random
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from companion.models import TransformerEncoder
from companion.validation import (
    check_choice,
    check_id_vector,
    check_index,
    check_ranking,
    check_seeded_sizes,
    check_session_process,
    check_sessions,
    check_sizes,
    check_type,
)

#: The reductions of `hit_rate_at_k` and `ndcg_at_k`.
REDUCTIONS = ("mean", "none")


@dataclass(frozen=True)
class SessionProcess:
    """A generator of users' sessions whose structure is known exactly.

    Items ``0 .. num_trending - 1`` are *trending* items, clicked by everyone now
    and then with Zipf popularity ``P(item i) ∝ 1 / (i + 1) ** zipf_exponent``. The
    other items are *episodes* of *series*: ``num_genres`` genres, each with the
    same number of series of ``series_length`` episodes; episode ``e`` of series
    ``s`` of genre ``g`` is item ``num_trending + (g * series_per_genre + s) *
    series_length + e``. Every user has a favourite genre. At each step the user

    1. clicks a trending item with probability ``trending_rate`` (an
       interruption: the series being watched is not forgotten), otherwise
    2. watches the next episode of the current series (the last episode watched),
       unless it was the last one or the user abandons the series (probability
       ``abandon_rate``), otherwise
    3. starts episode 0 of a series drawn uniformly from a genre: the favourite
       genre with probability ``1 - explore_rate``, else a uniformly drawn genre.

    After an interruption the next item depends on an item *before* the last one:
    order matters beyond the last item. Part 6, chapter 4.
    """

    num_items: int = 300
    num_genres: int = 8
    series_length: int = 5
    num_trending: int = 20
    trending_rate: float = 0.15
    abandon_rate: float = 0.2
    explore_rate: float = 0.2
    zipf_exponent: float = 1.0

    def __post_init__(self):
        check_session_process(self)

    @property
    def series_per_genre(self) -> int:
        """Number of series in each genre."""
        return (self.num_items - self.num_trending) // (
            self.num_genres * self.series_length
        )

    def trending_probabilities(
        self, device: torch.device | str | None = None
    ) -> Tensor:
        """Zipf probabilities of the trending items, shape (num_trending,),
        float64, on ``device``."""
        ranks = torch.arange(
            1, self.num_trending + 1, dtype=torch.float64, device=device
        )
        weights = ranks ** (-float(self.zipf_exponent))
        return weights / weights.sum()

    def describe(self, item: int) -> tuple[str, int, int, int] | tuple[str, int]:
        """``("trending", rank)`` or ``("episode", genre, series, episode)``."""
        check_index(item, self.num_items, "item")
        if item < self.num_trending:
            return ("trending", item)
        index, episode = divmod(item - self.num_trending, self.series_length)
        genre, series = divmod(index, self.series_per_genre)
        return ("episode", genre, series, episode)

    def first_episode(self, genre: int, series: int) -> int:
        """Item id of episode 0 of ``series`` in ``genre``."""
        check_index(genre, self.num_genres, "genre")
        check_index(series, self.series_per_genre, "series")
        index = genre * self.series_per_genre + series
        return self.num_trending + index * self.series_length

    def _has_next(self, episode: int) -> bool:
        """Whether episode item ``episode`` is followed by another in its series."""
        return (episode - self.num_trending) % self.series_length < (
            self.series_length - 1
        )

    def sample(self, num_users: int, length: int, seed: int) -> tuple[Tensor, Tensor]:
        """Return ``(sessions, genres)``: item ids of shape (num_users, length) and
        each user's favourite genre, shape (num_users,), int64, made on the CPU;
        deterministic for a seed."""
        check_seeded_sizes(seed, num_users=num_users, length=length)
        rng = random.Random(seed)
        trending = list(range(self.num_trending))
        zipf = self.trending_probabilities().tolist()
        sessions, genres = [], []
        for _ in range(num_users):
            genre = rng.randrange(self.num_genres)
            current, row = None, []
            for _ in range(length):
                if rng.random() < self.trending_rate:
                    row.append(rng.choices(trending, weights=zipf)[0])
                    continue
                if (
                    current is not None
                    and self._has_next(current)
                    and rng.random() >= self.abandon_rate
                ):
                    current += 1
                else:
                    explore = rng.random() < self.explore_rate
                    chosen = rng.randrange(self.num_genres) if explore else genre
                    series = rng.randrange(self.series_per_genre)
                    current = self.first_episode(chosen, series)
                row.append(current)
            sessions.append(row)
            genres.append(genre)
        return (
            torch.tensor(sessions, dtype=torch.long, device="cpu"),
            torch.tensor(genres, dtype=torch.long, device="cpu"),
        )

    def next_item_probabilities(self, histories: Tensor, genres: Tensor) -> Tensor:
        """The exact distribution of the next item after each history, under this
        process and knowing each user's favourite genre: the oracle.

        With ``r, a, e`` the trending, abandon and explore rates, ``c = 1 - a`` if
        the last episode in the history has a successor (else ``c = 0``),
        ``G`` genres and ``S`` series per genre:
        ``P(trending i) = r zipf(i)``, ``P(next episode) = (1 - r) c`` and
        ``P(first episode of a series of genre g) = (1 - r)(1 - c)
        ((1 - e)[g = favourite] / S + e / (G S))``.
        A history must reach back to the user's last episode, if any (a whole
        session so far does). Shapes: histories (users, seq), genres (users,);
        result (users, num_items), float64, on the histories' device. Part 6,
        chapter 4.
        """
        check_sessions(histories, self.num_items, "histories")
        check_id_vector(genres, self.num_genres, "genres", histories.shape[0])
        r, a, e = self.trending_rate, self.abandon_rate, self.explore_rate
        device = histories.device
        num_series = self.num_genres * self.series_per_genre
        starts = torch.arange(num_series, device=device) * self.series_length
        starts = (self.num_trending + starts).view(
            self.num_genres, self.series_per_genre
        )
        probs = torch.zeros(
            histories.shape[0], self.num_items, dtype=torch.float64, device=device
        )
        probs[:, : self.num_trending] = r * self.trending_probabilities(device)
        for row, (history, genre) in enumerate(
            zip(histories.tolist(), genres.tolist(), strict=True)
        ):
            watched = [item for item in history if item >= self.num_trending]
            c = 1 - a if watched and self._has_next(watched[-1]) else 0.0
            if c:
                probs[row, watched[-1] + 1] += (1 - r) * c
            new = (1 - r) * (1 - c) / self.series_per_genre
            probs[row, starts.flatten()] += new * e / self.num_genres
            probs[row, starts[genre]] += new * (1 - e)
        return probs


class SASRec(nn.Module):
    """Self-attentive sequential recommendation (Kang & McAuley, 2018): a causal
    Transformer over the item sequence whose state at position t scores every item
    i by a dot product with the *same* item embeddings used at the input,
    ``r_{i,t} = F_t · M_i`` (the paper's shared item embedding). The encoder is
    `TransformerEncoder` with ``causal=True``, which scales the item embeddings by
    ``sqrt(d_model)`` (as the authors' code does); ``position`` chooses the
    positional scheme (the paper uses ``"learned"``) and ``d_ff`` defaults to
    ``d_model``, as in the paper. No dropout. Part 6, chapter 4.
    """

    def __init__(
        self,
        num_items: int,
        d_model: int = 64,
        num_heads: int = 1,
        num_layers: int = 2,
        d_ff: int | None = None,
        position: str = "learned",
        max_len: int = 64,
    ):
        super().__init__()
        d_ff = d_model if d_ff is None else d_ff
        check_sizes(num_items=num_items, d_model=d_model, d_ff=d_ff)
        self.num_items = num_items
        self.encoder = TransformerEncoder(  # the sizes in its order, then causal
            num_items, d_model, num_heads, num_layers, d_ff, position, max_len, True
        )

    def forward(self, items: Tensor) -> Tensor:
        """Scores of every item as the next one, (batch, seq, num_items), for item
        ids ``items`` of shape (batch, seq)."""
        check_sessions(items, self.num_items, "items")
        hidden, _ = self.encoder(items, need_weights=False)
        return hidden @ self.encoder.embedding.weight.T

    def attention(self, items: Tensor) -> list[Tensor]:
        """Attention weights of every layer, each (batch, heads, seq, seq)."""
        check_sessions(items, self.num_items, "items")
        return self.encoder(items)[1]


def next_item_loss(model: nn.Module, sessions: Tensor) -> Tensor:
    """Mean cross-entropy of predicting item t+1 from items 1..t, at every position
    of every session, with a full softmax over all items:
    ``-mean_{u,t} log softmax(r_{., t})[s_{t+1}]``. ``sessions`` (batch, seq >= 2)
    holds item ids in ``[0, num_items)``; the `SASRec` ``model`` reads
    ``sessions[:, :-1]``. Part 6, chapter 4."""
    check_type(model, SASRec, "model")
    check_sessions(sessions, model.num_items, min_length=2)
    logits = model(sessions[:, :-1])
    return F.cross_entropy(logits.flatten(0, 1), sessions[:, 1:].flatten().long())


def popularity_scores(sessions: Tensor, num_items: int) -> Tensor:
    """How often each item occurs in ``sessions`` (batch, seq): the popularity
    baseline's score of every item, shape (num_items,), float64."""
    check_sessions(sessions, num_items)
    return torch.bincount(sessions.flatten(), minlength=num_items).to(torch.float64)


def markov_scores(train: Tensor, histories: Tensor, num_items: int) -> Tensor:
    """First-order Markov (item-to-item) baseline: the score of item j after a
    history ending in item i is the number of transitions i -> j in ``train``
    (batch, seq), plus the popularity of j divided by (total count + 1), which is
    below 1 and so only breaks ties. Returns (len(histories), num_items), float64.
    Part 6, chapter 4.
    """
    check_sessions(train, num_items, "train")
    check_sessions(histories, num_items, "histories")
    train = train.long()  # pairs i * num_items + j overflow int32 from 46341 items
    pairs = train[:, :-1].flatten() * num_items + train[:, 1:].flatten()
    counts = torch.bincount(pairs, minlength=num_items * num_items)
    counts = counts.view(num_items, num_items).to(torch.float64)
    popularity = popularity_scores(train, num_items)
    return counts[histories[:, -1]] + popularity / (popularity.sum() + 1)


def _rank_counts(scores: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    """Per row: how many items score above the target, and how many others tie."""
    own = scores.gather(1, target[:, None].long())
    return (scores > own).sum(1), (scores == own).sum(1) - 1


def _reduce(values: Tensor, reduction: str) -> Tensor | float:
    return float(values.mean()) if reduction == "mean" else values


def hit_rate_at_k(
    scores: Tensor, target: Tensor, k: int = 10, reduction: str = "mean"
) -> Tensor | float:
    """Hit@k: 1 if the target item is among the k highest-scoring items, else 0
    (the Hit Rate@10 of Kang & McAuley, 2018; with one relevant item, Recall@k).

    ``scores`` (users, items) ranks *all* items; ``target`` (users,) is the one
    relevant item per user. Ties are broken at random, in expectation: with
    ``above`` items scoring higher and ``ties`` others scoring the same, the
    target's 0-based rank is uniform on ``above .. above + ties``, so the hit is
    ``clamp((k - above) / (ties + 1), 0, 1)``. Returns the mean (a float) or, with
    ``reduction="none"``, one value per user (float64). Part 6, chapter 4.
    """
    check_ranking(scores, target, k)
    check_choice(reduction, REDUCTIONS, "reduction")
    above, ties = _rank_counts(scores, target)
    hits = ((k - above).to(torch.float64) / (ties + 1)).clamp(0, 1)
    return _reduce(hits, reduction)


def ndcg_at_k(
    scores: Tensor, target: Tensor, k: int = 10, reduction: str = "mean"
) -> Tensor | float:
    """NDCG@k with one relevant item: ``1 / log2(rank + 2)`` if its 0-based rank is
    below k, else 0 (the ideal ranking puts it first, with gain 1).

    Shapes as in `hit_rate_at_k`. Ties are broken at random, in expectation: the
    value is the mean of ``[r < k] / log2(r + 2)`` over ``r = above .. above +
    ties``, computed from cumulative sums of the gains. Returns the mean (a float)
    or, with ``reduction="none"``, one value per user (float64). Part 6,
    chapter 4.
    """
    check_ranking(scores, target, k)
    check_choice(reduction, REDUCTIONS, "reduction")
    above, ties = _rank_counts(scores, target)
    ranks = torch.arange(k, dtype=torch.float64, device=scores.device)
    gains = 1 / torch.log2(ranks + 2)
    cumulative = torch.cat([gains.new_zeros(1), gains.cumsum(0)])
    start = above.clamp(max=k)
    stop = (above + ties + 1).clamp(max=k)
    return _reduce((cumulative[stop] - cumulative[start]) / (ties + 1), reduction)
