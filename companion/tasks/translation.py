"""Machine translation on a task the course generates: dates to ISO dates (Part 6,
chapter 2).

`date_pairs` writes random dates in several human formats, from ``23/09/1999`` to
``thursday, the twenty-third of september, nineteen ninety-nine``, each paired with
its ISO form ``1999-09-23``. `encode_source` and `encode_target` turn them into
character tokens. `GRUTranslator` is an encoder-decoder with recurrent networks and
Bahdanau's additive attention, or, with ``attention=False``, the same network whose
decoder sees only a fixed summary of the source; `TransformerTranslator` is a small
Transformer encoder-decoder. Both have ``encode(source, lengths)`` and
``decode(target_in, *encoded)``, which `greedy_decode` uses; `exact_match` scores
the output.
"""

import datetime
import random

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from companion.attention import AdditiveAttention, padding_mask
from companion.models import POSITIONS, TransformerEncoder
from companion.validation import (
    check_choice,
    check_choices,
    check_date,
    check_finite,
    check_float_tensor,
    check_ids,
    check_index_tensor,
    check_mask,
    check_module_input,
    check_seeded_sizes,
    check_sequence,
    check_sizes,
    check_source,
    check_subset,
    check_target,
    check_text_pairs,
    check_texts,
    check_type,
)

#: Names of the formats `format_date` knows, from the shortest to the longest.
FORMATS = (
    "numeric",  # 23/09/1999
    "short",  # sept 23 1999
    "day_month",  # 23 september 1999
    "month_day",  # september 23rd, 1999
    "weekday",  # thursday 23 september 1999
    "spelled",  # the twenty-third of september, nineteen ninety-nine
    "spelled_weekday",  # thursday, the twenty-third of september, nineteen ...
)
MONTHS = tuple(
    "january february march april may june july august september october november "
    "december".split()
)
MONTH_ABBREVIATIONS = tuple("jan feb mar apr may jun jul aug sept oct nov dec".split())
WEEKDAYS = tuple("monday tuesday wednesday thursday friday saturday sunday".split())
_UNITS = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen "
    "fourteen fifteen sixteen seventeen eighteen nineteen"
).split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
#: ``_ORDINALS[d]`` is day ``d`` in words.
_ORDINALS = (
    "_ first second third fourth fifth sixth seventh eighth ninth tenth eleventh "
    "twelfth thirteenth fourteenth fifteenth sixteenth seventeenth eighteenth "
    "nineteenth twentieth twenty-first twenty-second twenty-third twenty-fourth "
    "twenty-fifth twenty-sixth twenty-seventh twenty-eighth twenty-ninth thirtieth "
    "thirty-first"
).split()

#: The earliest and latest dates `format_date` writes and `date_pairs` draws.
FIRST_DATE = datetime.date(1900, 1, 1)
LAST_DATE = datetime.date(2099, 12, 31)

PAD, BOS, EOS = 0, 1, 2
_SPECIALS = ("<pad>", "<bos>", "<eos>")
#: Characters of the human-written dates, and of the ISO dates.
SOURCE_CHARS = " ,-./0123456789abcdefghijklmnopqrstuvwxyz"
TARGET_CHARS = "-0123456789"
#: Token ``i`` of a vocabulary is ``*_VOCAB[i]``: pad, bos, eos, then characters.
SOURCE_VOCAB = _SPECIALS + tuple(SOURCE_CHARS)
TARGET_VOCAB = _SPECIALS + tuple(TARGET_CHARS)
_SOURCE_INDEX = {c: i for i, c in enumerate(SOURCE_VOCAB)}
_TARGET_INDEX = {c: i for i, c in enumerate(TARGET_VOCAB)}
#: Decoder steps for an ISO date: ten characters and the end-of-sequence token.
TARGET_LENGTH = 11


def _number_words(n: int) -> str:
    """0 <= n <= 99 in words: 23 -> ``twenty-three``."""
    if n < 20:
        return _UNITS[n]
    tens, units = divmod(n, 10)
    return _TENS[tens] + (f"-{_UNITS[units]}" if units else "")


def _year_words(year: int) -> str:
    """A year as spoken: 1905 -> ``nineteen oh five``, 1900 -> ``nineteen hundred``,
    2000 -> ``two thousand``, 2007 -> ``two thousand seven``, 2023 -> ``twenty
    twenty-three``."""
    century, rest = divmod(year, 100)
    if century == 20 and rest < 10:
        return "two thousand" + (f" {_UNITS[rest]}" if rest else "")
    if rest == 0:
        return f"{_number_words(century)} hundred"
    if rest < 10:
        return f"{_number_words(century)} oh {_UNITS[rest]}"
    return f"{_number_words(century)} {_number_words(rest)}"


def format_date(date: datetime.date, fmt: str) -> str:
    """Write ``date`` (between `FIRST_DATE` and `LAST_DATE`) in the human format
    ``fmt``, one of `FORMATS`. Part 6, chapter 2."""
    check_date(date, FIRST_DATE, LAST_DATE)
    check_choice(fmt, FORMATS, "fmt")
    day, month, year = date.day, MONTHS[date.month - 1], date.year
    weekday = WEEKDAYS[date.weekday()]
    if fmt == "numeric":
        return f"{day:02d}/{date.month:02d}/{year}"
    if fmt == "short":
        return f"{MONTH_ABBREVIATIONS[date.month - 1]} {day} {year}"
    if fmt == "day_month":
        return f"{day} {month} {year}"
    if fmt == "month_day":
        suffix = {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")
        if 11 <= day <= 13:
            suffix = "th"
        return f"{month} {day}{suffix}, {year}"
    if fmt == "weekday":
        return f"{weekday} {day} {month} {year}"
    spelled = f"the {_ORDINALS[day]} of {month}, {_year_words(year)}"
    return spelled if fmt == "spelled" else f"{weekday}, {spelled}"


def date_pairs(
    n: int, seed: int = 0, formats: tuple[str, ...] = FORMATS
) -> list[tuple[str, str]]:
    """``n`` pairs ``(human date, ISO date)``, e.g. ``("sept 23 1999",
    "1999-09-23")``.

    Each date is drawn uniformly from the days between `FIRST_DATE` and
    `LAST_DATE`, and written in a format drawn uniformly from ``formats``, with a
    private ``random.Random(seed)``: the same seed gives the same pairs (Part 6,
    chapter 2).
    """
    check_seeded_sizes(seed, n=n)
    check_subset(formats, FORMATS, "formats")
    rng = random.Random(seed)
    first, span = FIRST_DATE.toordinal(), (LAST_DATE - FIRST_DATE).days
    pairs = []
    for _ in range(n):
        date = datetime.date.fromordinal(first + rng.randint(0, span))
        fmt = formats[rng.randrange(len(formats))]
        pairs.append((format_date(date, fmt), date.isoformat()))
    return pairs


def encode_source(
    texts: list[str], device: torch.device | str | None = None
) -> tuple[Tensor, Tensor]:
    """Character tokens of the human dates (a list of non-empty strings of
    `SOURCE_CHARS`), padded with `PAD` on the right.

    Returns ``(tokens, lengths)`` of shapes (batch, longest) and (batch,), int64,
    on ``device``.
    """
    texts = check_texts(texts, alphabet=SOURCE_CHARS)
    longest = max(len(text) for text in texts)
    rows = [[_SOURCE_INDEX[c] for c in t] + [PAD] * (longest - len(t)) for t in texts]
    lengths = [len(text) for text in texts]
    return (
        torch.tensor(rows, dtype=torch.long, device=device),
        torch.tensor(lengths, dtype=torch.long, device=device),
    )


def encode_target(
    texts: list[str], device: torch.device | str | None = None
) -> tuple[Tensor, Tensor]:
    """Decoder input ``<bos> y_1 ... y_T`` and output ``y_1 ... y_T <eos>`` of the
    ISO dates (a list of strings of `TARGET_CHARS`, all of one length; teacher
    forcing), each of shape (batch, T + 1), int64, on ``device``."""
    texts = check_texts(texts, alphabet=TARGET_CHARS, same_length=True)
    ids = [[_TARGET_INDEX[c] for c in text] for text in texts]
    return (
        torch.tensor([[BOS, *row] for row in ids], dtype=torch.long, device=device),
        torch.tensor([[*row, EOS] for row in ids], dtype=torch.long, device=device),
    )


def decode_target(ids: Tensor) -> list[str]:
    """Strings of target token ids (batch, steps), cut at the first `EOS`; other
    special tokens become ``?``."""
    check_index_tensor(ids, "ids", ndim=(2,))
    check_ids(ids, len(TARGET_VOCAB), "ids")
    texts = []
    for row in ids.tolist():
        row = row[: row.index(EOS)] if EOS in row else row
        texts.append("".join(TARGET_VOCAB[i] if i > EOS else "?" for i in row))
    return texts


class GRUTranslator(nn.Module):
    """A recurrent encoder-decoder, with or without additive attention.

    The encoder is a bidirectional GRU over the source characters, giving one
    annotation ``h_j = [h_j^fwd; h_j^bwd]`` per character, as in Bahdanau et al.
    (2015, section 3.2), and the summary ``z = [h_S^fwd; h_1^bwd]``, the two final
    encoder states. The decoder is the one of Cho et al. (2014, section 2.2): a
    GRU over the previous target character that also reads the summary at every
    step, ``s_i = GRU(s_{i-1}, [E y_{i-1}; z])``, starting from ``s_0 = tanh(W_b
    z)`` (their appendix A.1.2). Its context vector ``c_i`` is

    - with ``attention=False``, ``c_i = z`` at every step: the decoder sees the
      source only through one fixed-length vector, the encoder-decoder of Cho et
      al. (2014);
    - with ``attention=True``, ``c_i = sum_j alpha_ij h_j`` with ``alpha_i =
      softmax_j(v^T tanh(W_q s_i + W_k h_j))``: Bahdanau's additive score
      (`AdditiveAttention`), queried with the current state ``s_i`` and used in
      the output layer, as in the global attention of Luong et al. (2015,
      section 3.1, without their input feeding); Bahdanau et al. query with
      ``s_{i-1}`` and feed ``c_i`` into the recurrence. So the decoder states do
      not depend on the attention, and training computes all steps in one call.

    The next-character logits are ``W_o [s_i; c_i]``: the two models differ only
    in ``c_i``. Part 6, chapter 2.
    """

    def __init__(
        self,
        source_vocab: int = len(SOURCE_VOCAB),
        target_vocab: int = len(TARGET_VOCAB),
        embed_dim: int = 32,
        hidden_dim: int = 64,
        attention: bool = True,
        attention_dim: int = 32,
    ):
        super().__init__()
        check_sizes(
            source_vocab=source_vocab,
            target_vocab=target_vocab,
            embed_dim=embed_dim,
            hidden_dim=hidden_dim,
            attention_dim=attention_dim,
        )
        self.source_vocab, self.target_vocab = source_vocab, target_vocab
        self.source_embedding = nn.Embedding(source_vocab, embed_dim)
        # the two directions of the bidirectional encoder
        self.encoder_forward = nn.GRU(embed_dim, hidden_dim, batch_first=True)
        self.encoder_backward = nn.GRU(embed_dim, hidden_dim, batch_first=True)
        self.bridge = nn.Linear(2 * hidden_dim, hidden_dim)
        self.attention = (
            AdditiveAttention(hidden_dim, 2 * hidden_dim, attention_dim)
            if attention
            else None
        )
        self.target_embedding = nn.Embedding(target_vocab, embed_dim)
        # input of every decoder step: the previous character and the summary
        self.decoder = nn.GRU(embed_dim + 2 * hidden_dim, hidden_dim, batch_first=True)
        self.output = nn.Linear(3 * hidden_dim, target_vocab)

    def encode(self, source: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Annotations (batch, seq, 2 hidden), the summary ``[h_S^fwd; h_1^bwd]``
        (batch, 2 hidden) and the padding mask (batch, 1, seq) of the padded
        ``source`` tokens (batch, seq) with true ``lengths`` (batch,)."""
        check_source(source, lengths, self.source_vocab)
        batch, seq = source.shape
        embedded = self.source_embedding(source)
        # Each sequence reversed within its length (the padding stays at the end):
        # position j <-> length - 1 - j. Both directions then read the real
        # characters first, so the padding cannot reach a real annotation, and no
        # packed sequences are needed (on a CPU they cost more than the padding).
        positions = torch.arange(seq, device=source.device).expand(batch, -1)
        last = lengths.to(source.device)[:, None] - 1
        order = torch.where(positions <= last, last - positions, positions)
        forward, _ = self.encoder_forward(embedded)
        backward, _ = self.encoder_backward(self._gather(embedded, order))
        backward = self._gather(backward, order)  # back to the source order
        mask = padding_mask(lengths, seq)[:, 0]  # (batch, 1, seq), lengths' device
        annotations = torch.cat([forward, backward], dim=-1) * mask.transpose(1, 2)
        final_forward = self._gather(forward, last)[:, 0]  # at the last character
        return annotations, torch.cat([final_forward, backward[:, 0]], dim=-1), mask

    @staticmethod
    def _gather(x: Tensor, index: Tensor) -> Tensor:
        """``x[b, index[b, j]]`` for x (batch, seq, width), index (batch, n)."""
        return x.gather(1, index[..., None].expand(-1, -1, x.shape[-1]))

    def decode(
        self, target_in: Tensor, annotations: Tensor, summary: Tensor, mask: Tensor
    ) -> tuple[Tensor, Tensor | None]:
        """Logits (batch, steps, target_vocab) for the decoder input ``target_in``
        (batch, steps), given the output of `encode`, and the attention weights
        (batch, steps, seq), or None without attention."""
        self.check_encoded(target_in, annotations, summary, mask)
        state = torch.tanh(self.bridge(summary))[None]  # s_0: (1, batch, hidden)
        states, _ = self.decoder(self._step_inputs(target_in, summary), state)
        return self._predict(states, annotations, summary, mask)

    def _step_inputs(self, target_in: Tensor, summary: Tensor) -> Tensor:
        """Decoder inputs ``[E y_{i-1}; z]`` (batch, steps, embed + 2 hidden) for
        the previous characters ``target_in`` (batch, steps) and the summary ``z``
        (batch, 2 hidden)."""
        summary = summary[:, None].expand(-1, target_in.shape[1], -1)
        return torch.cat([self.target_embedding(target_in), summary], dim=-1)

    def _predict(
        self, states: Tensor, annotations: Tensor, summary: Tensor, mask: Tensor
    ) -> tuple[Tensor, Tensor | None]:
        """Logits ``W_o [s_i; c_i]`` (batch, steps, target_vocab) of the decoder
        ``states`` (batch, steps, hidden) and the attention weights (batch, steps,
        seq), or None without attention."""
        if self.attention is None:
            context, weights = summary[:, None].expand(-1, states.shape[1], -1), None
        else:
            context, weights = self.attention(states, annotations, annotations, mask)
        return self.output(torch.cat([states, context], dim=-1)), weights

    def forward(
        self, source: Tensor, lengths: Tensor, target_in: Tensor
    ) -> tuple[Tensor, Tensor | None]:
        """`decode` after `encode`: logits (batch, steps, target_vocab) for the
        decoder input ``target_in`` (batch, steps) (teacher forcing) and the
        attention weights (batch, steps, seq), or None."""
        return self.decode(target_in, *self.encode(source, lengths))

    def check_encoded(
        self, target_in: object, annotations: object, summary: object, mask: object
    ) -> None:
        """Raise unless the arguments of `decode` fit this model: ``annotations``
        finite (batch, seq, 2 hidden) and ``summary`` finite (batch, 2 hidden) of
        the weights' dtype, ``mask`` boolean, broadcasting to (batch, steps,
        seq), and ``target_in`` token ids (batch, steps)."""
        width = self.bridge.in_features  # 2 hidden
        check_sequence(annotations, width, "annotations")
        check_module_input(annotations, self.bridge.weight, "annotations")
        batch, seq, _ = annotations.shape
        check_target(target_in, self.target_vocab, batch)
        check_float_tensor(summary, "summary")
        if tuple(summary.shape) != (batch, width):
            raise ValueError(
                f"summary must have shape ({batch}, {width}), got "
                f"{tuple(summary.shape)}"
            )
        check_module_input(summary, self.bridge.weight, "summary")
        check_finite(summary, "summary")
        check_mask(mask, (batch, target_in.shape[1], seq))


class TransformerTranslator(nn.Module):
    """A small Transformer encoder-decoder (Vaswani et al., 2017).

    The source goes through a `TransformerEncoder` whose attention ignores the
    padding; the target prefix through the same kind of encoder, causal, whose
    blocks are `companion.models.TransformerDecoderBlock` (cross-attention over
    the source); a linear head gives the next-character logits. ``position`` is
    the encoder's positional scheme and ``decoder_position`` the decoder's (names
    of `companion.models.POSITIONS`). Part 6, chapter 2.
    """

    def __init__(
        self,
        source_vocab: int = len(SOURCE_VOCAB),
        target_vocab: int = len(TARGET_VOCAB),
        d_model: int = 64,
        num_heads: int = 4,
        num_layers: int = 2,
        d_ff: int = 128,
        position: str = "sinusoidal",
        decoder_position: str = "sinusoidal",
    ):
        super().__init__()
        check_sizes(
            source_vocab=source_vocab, target_vocab=target_vocab
        )  # the rest: the encoders
        check_choices(POSITIONS, position=position, decoder_position=decoder_position)
        self.encoder = TransformerEncoder(
            source_vocab, d_model, num_heads, num_layers, d_ff, position=position
        )
        self.decoder = TransformerEncoder(  # causal, with cross-attention
            target_vocab,
            d_model,
            num_heads,
            num_layers,
            d_ff,
            decoder_position,
            cross_attention=True,
        )
        self.head = nn.Linear(d_model, target_vocab)

    def encode(self, source: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """Encoder states (batch, seq, d_model) and the source padding mask
        (batch, 1, 1, seq) of the padded ``source`` tokens (batch, seq) with true
        ``lengths`` (batch,)."""
        check_source(source, lengths, self.encoder.vocab_size)
        mask = padding_mask(lengths, source.shape[1])  # (batch, 1, 1, seq)
        memory, _ = self.encoder(source, mask, need_weights=False)
        return memory, mask

    def decode(
        self, target_in: Tensor, memory: Tensor, mask: Tensor, need_weights: bool = True
    ) -> tuple[Tensor, list[Tensor | None]]:
        """Logits (batch, steps, target_vocab) for the decoder input ``target_in``
        (batch, steps), given the output of `encode`, and each layer's
        cross-attention weights (batch, heads, steps, seq), None when
        ``need_weights`` is False."""
        self.check_encoded(target_in, memory, mask)
        x = self.decoder.embed(target_in)
        cross = []
        for block in self.decoder.blocks:
            x, _, weights = block(x, memory, mask, need_weights)
            cross.append(weights)
        return self.head(self.decoder.norm(x)), cross

    def forward(
        self,
        source: Tensor,
        lengths: Tensor,
        target_in: Tensor,
        need_weights: bool = False,
    ) -> tuple[Tensor, list[Tensor | None]]:
        """`decode` after `encode`: logits (batch, steps, target_vocab) for the
        decoder input ``target_in`` (teacher forcing) and the cross-attention
        weights of every layer, None unless ``need_weights`` (training runs the
        fused kernel)."""
        memory, mask = self.encode(source, lengths)
        return self.decode(target_in, memory, mask, need_weights)

    def check_encoded(self, target_in: object, memory: object, mask: object) -> None:
        """Raise unless the arguments of `decode` fit this model: ``memory``
        finite (batch, seq, d_model) of the weights' dtype, ``mask`` boolean,
        broadcasting to (batch, heads, steps, seq), and ``target_in`` token ids
        (batch, steps)."""
        check_sequence(memory, self.decoder.d_model, "memory")
        check_module_input(memory, self.head.weight, "memory")
        batch, seq, _ = memory.shape
        check_target(target_in, self.decoder.vocab_size, batch)
        heads = self.decoder.blocks[0].attention.num_heads
        check_mask(mask, (batch, heads, target_in.shape[1], seq))


@torch.no_grad()
def greedy_decode(
    model: nn.Module, source: Tensor, lengths: Tensor, steps: int = TARGET_LENGTH
) -> tuple[Tensor, Tensor | None]:
    """Decode greedily: start from `BOS` and append the most likely next character,
    ``steps`` times.

    A `GRUTranslator` keeps its recurrent state from step to step; a
    `TransformerTranslator` runs its decoder over the whole prefix at each step:
    simple, and cheap for eleven steps (a production decoder would keep the keys
    and values of the earlier steps). Works with `GRUTranslator` and
    `TransformerTranslator`. Returns the token ids (batch, steps) and the
    attention weights over the source (batch, steps, seq): the additive attention
    of a `GRUTranslator` (None without attention), the last layer's
    cross-attention averaged over the heads for a `TransformerTranslator`.
    Part 6, chapter 2.
    """
    check_type(model, (GRUTranslator, TransformerTranslator), "model")
    check_sizes(steps=steps)
    was_training = model.training
    model.eval()
    try:
        encoded = model.encode(source, lengths)
        prefix = torch.full((source.shape[0], 1), BOS, device=source.device)
        if isinstance(model, GRUTranslator):
            return _greedy_gru(model, prefix, encoded, steps)
        for step in range(steps):  # the weights of the last step cover every step
            last = step == steps - 1  # (the others run the fused kernel)
            logits, weights = model.decode(prefix, *encoded, need_weights=last)
            prefix = torch.cat([prefix, logits[:, -1:].argmax(-1)], dim=1)
    finally:
        model.train(was_training)
    return prefix[:, 1:], weights[-1].mean(dim=1)


def _greedy_gru(
    model: GRUTranslator,
    token: Tensor,
    encoded: tuple[Tensor, Tensor, Tensor],
    steps: int,
) -> tuple[Tensor, Tensor | None]:
    """`greedy_decode` for a `GRUTranslator`, one step at a time: the recurrent
    state carries the prefix, so each step runs the decoder once."""
    annotations, summary, mask = encoded
    model.check_encoded(token, annotations, summary, mask)
    state = torch.tanh(model.bridge(summary))[None]
    ids, weights = [], []
    for _ in range(steps):
        out, state = model.decoder(model._step_inputs(token, summary), state)
        logits, step_weights = model._predict(out, annotations, summary, mask)
        token = logits.argmax(-1)
        ids.append(token)
        weights.append(step_weights)
    if model.attention is None:
        return torch.cat(ids, dim=1), None
    return torch.cat(ids, dim=1), torch.cat(weights, dim=1)


def sequence_loss(model: nn.Module, pairs: list[tuple[str, str]]) -> Tensor:
    """Mean cross-entropy of the next target character under teacher forcing,
    ``-1/T sum_i log p(y_i | y_<i, x)`` averaged over the pairs (Part 6,
    chapter 2). ``pairs`` are ``(human date, ISO date)`` strings, as
    `date_pairs` makes them; the tokens are made on the model's device."""
    check_type(model, (GRUTranslator, TransformerTranslator), "model")
    sources, targets = check_text_pairs(pairs)
    device = next(model.parameters()).device
    source, lengths = encode_source(sources, device)
    target_in, target_out = encode_target(targets, device)
    logits, _ = model(source, lengths, target_in)
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), target_out.reshape(-1))


def exact_match(predictions: list[str], references: list[str]) -> Tensor:
    """1.0 where a prediction equals its reference string exactly, else 0.0
    (shape (n,)); the mean is the exact-match accuracy. ``predictions`` and
    ``references`` are two lists of ``n >= 1`` strings."""
    predictions = check_texts(predictions, "predictions")
    references = check_texts(references, "references", count=len(predictions))
    return torch.tensor(
        [float(p == r) for p, r in zip(predictions, references, strict=True)]
    )
