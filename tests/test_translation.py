"""Tests of companion.tasks.translation: the date task, encoder-decoders, decoding."""

import datetime

import pytest
import torch

from companion.models import TransformerDecoderBlock
from companion.tasks.translation import (
    BOS,
    EOS,
    FORMATS,
    PAD,
    SOURCE_VOCAB,
    TARGET_LENGTH,
    TARGET_VOCAB,
    GRUTranslator,
    TransformerTranslator,
    date_pairs,
    decode_target,
    encode_source,
    encode_target,
    exact_match,
    format_date,
    greedy_decode,
    sequence_loss,
)

SEPT_23_1999 = datetime.date(1999, 9, 23)  # a Thursday (1 January 1999 was a Friday)


@pytest.fixture(autouse=True)
def _one_thread():
    """Small recurrent models run fastest on one thread (several threads spin and
    wait on every tiny operation, worse still on a busy machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize(
    ("fmt", "expected"),
    [
        ("numeric", "23/09/1999"),
        ("short", "sept 23 1999"),
        ("day_month", "23 september 1999"),
        ("month_day", "september 23rd, 1999"),
        ("weekday", "thursday 23 september 1999"),
        ("spelled", "the twenty-third of september, nineteen ninety-nine"),
        (
            "spelled_weekday",
            "thursday, the twenty-third of september, nineteen ninety-nine",
        ),
    ],
)
def test_format_date_on_a_known_date(fmt, expected):
    assert format_date(SEPT_23_1999, fmt) == expected


def test_formats_are_listed_from_short_to_long():
    lengths = [len(format_date(SEPT_23_1999, fmt)) for fmt in FORMATS]
    assert lengths == sorted(lengths)


@pytest.mark.parametrize(
    ("date", "fmt", "expected"),
    [
        # 1 January 2000 was a Saturday
        (
            datetime.date(2000, 1, 1),
            "spelled_weekday",
            "saturday, the first of january, two thousand",
        ),
        (datetime.date(1905, 3, 2), "spelled", "the second of march, nineteen oh five"),
        (
            datetime.date(1900, 5, 20),
            "spelled",
            "the twentieth of may, nineteen hundred",
        ),
        (
            datetime.date(2012, 12, 30),
            "spelled",
            "the thirtieth of december, twenty twelve",
        ),
        (
            datetime.date(2007, 7, 4),
            "spelled",
            "the fourth of july, two thousand seven",
        ),
        (datetime.date(2023, 2, 11), "month_day", "february 11th, 2023"),
        (datetime.date(2051, 8, 31), "short", "aug 31 2051"),
        (datetime.date(1961, 1, 5), "numeric", "05/01/1961"),
    ],
)
def test_format_date_on_hand_checked_examples(date, fmt, expected):
    assert format_date(date, fmt) == expected


@pytest.mark.parametrize(
    ("day", "month_day", "spelled_day"),
    [  # day suffixes and ordinals, in March 2001 (a year spoken "two thousand one")
        (1, "march 1st, 2001", "first"),
        (2, "march 2nd, 2001", "second"),
        (3, "march 3rd, 2001", "third"),
        (4, "march 4th, 2001", "fourth"),
        (11, "march 11th, 2001", "eleventh"),
        (12, "march 12th, 2001", "twelfth"),
        (13, "march 13th, 2001", "thirteenth"),
        (20, "march 20th, 2001", "twentieth"),
        (21, "march 21st, 2001", "twenty-first"),
        (22, "march 22nd, 2001", "twenty-second"),
        (23, "march 23rd, 2001", "twenty-third"),
        (30, "march 30th, 2001", "thirtieth"),
        (31, "march 31st, 2001", "thirty-first"),
    ],
)
def test_days_in_words_and_with_suffixes(day, month_day, spelled_day):
    date = datetime.date(2001, 3, day)
    assert format_date(date, "month_day") == month_day
    expected = f"the {spelled_day} of march, two thousand one"
    assert format_date(date, "spelled") == expected


@pytest.mark.parametrize(
    ("year", "spoken"),
    [
        (1900, "nineteen hundred"),
        (1909, "nineteen oh nine"),
        (1910, "nineteen ten"),
        (1945, "nineteen forty-five"),
        (1999, "nineteen ninety-nine"),
        (2000, "two thousand"),
        (2009, "two thousand nine"),
        (2010, "twenty ten"),
        (2099, "twenty ninety-nine"),
    ],
)
def test_years_in_words(year, spoken):
    assert format_date(datetime.date(year, 6, 1), "spelled").endswith(", " + spoken)


def test_format_date_covers_the_first_and_last_dates():
    # 1 January 1900 was a Monday, 31 December 2099 will be a Thursday
    assert format_date(datetime.date(1900, 1, 1), "weekday") == (
        "monday 1 january 1900"
    )
    assert format_date(datetime.date(2099, 12, 31), "spelled_weekday") == (
        "thursday, the thirty-first of december, twenty ninety-nine"
    )


def test_date_pairs_deterministic_and_seed_dependent():
    assert date_pairs(50, seed=3) == date_pairs(50, seed=3)
    assert date_pairs(50, seed=3) != date_pairs(50, seed=4)


def test_date_pairs_targets_are_the_iso_dates_of_the_sources():
    pairs = date_pairs(700, seed=1)
    seen = set()
    for source, target in pairs:
        date = datetime.date.fromisoformat(target)
        assert len(target) == 10 and target[4] == target[7] == "-"
        matching = [f for f in FORMATS if format_date(date, f) == source]
        assert matching, source
        seen.update(matching)
    assert seen == set(FORMATS)  # every format occurs


def test_date_pairs_restricted_formats():
    pairs = date_pairs(20, seed=0, formats=("numeric",))
    assert all(len(s) == 10 and s[2] == s[5] == "/" for s, _ in pairs)


def test_encode_source_on_a_hand_checked_example():
    # vocabulary: 3 special tokens, then " ,-./0123456789a..."
    tokens, lengths = encode_source(["1/2", "a"])
    assert tokens.tolist() == [[9, 7, 10], [18, PAD, PAD]]
    assert lengths.tolist() == [3, 1]
    assert SOURCE_VOCAB[9] == "1" and SOURCE_VOCAB[18] == "a"


def test_encode_target_on_a_hand_checked_example():
    # vocabulary: 3 special tokens, then "-0123456789": "-" = 3, digit d = 4 + d
    target_in, target_out = encode_target(["1999-09-23"])
    ids = [5, 13, 13, 13, 3, 4, 13, 3, 6, 7]
    assert target_in.tolist() == [[BOS] + ids]
    assert target_out.tolist() == [ids + [EOS]]
    assert decode_target(target_out) == ["1999-09-23"]


def test_decode_target_cuts_at_eos_and_marks_special_tokens():
    assert decode_target(torch.tensor([[4, 5, EOS, 6], [BOS, 3, PAD, 4]])) == [
        "01",
        "?-?0",
    ]
    assert TARGET_VOCAB[3] == "-"


def test_exact_match():
    assert exact_match(["a", "b", "c"], ["a", "x", "c"]).tolist() == [1.0, 0.0, 1.0]


def _batch(n=6, seed=0):
    pairs = date_pairs(n, seed=seed)
    source, lengths = encode_source([s for s, _ in pairs])
    target_in, target_out = encode_target([t for _, t in pairs])
    return pairs, source, lengths, target_in, target_out


@pytest.mark.parametrize("attention", [True, False])
def test_gru_translator_shapes(attention):
    torch.manual_seed(0)
    _, source, lengths, target_in, _ = _batch()
    model = GRUTranslator(hidden_dim=16, embed_dim=8, attention=attention)
    logits, weights = model(source, lengths, target_in)
    assert logits.shape == (6, TARGET_LENGTH, len(TARGET_VOCAB))
    if attention:
        assert weights.shape == (6, TARGET_LENGTH, source.shape[1])
        # each row sums to one over the real characters, zero on the padding
        torch.testing.assert_close(weights.sum(-1), torch.ones(6, TARGET_LENGTH))
        for row, length in enumerate(lengths.tolist()):
            assert weights[row, :, length:].abs().sum() == 0
    else:
        assert weights is None


def _padding_changes_nothing(model):
    """Extra padding columns, and garbage in the padded positions, leave the
    logits unchanged."""
    _, source, lengths, target_in, _ = _batch()
    logits, _ = model(source, lengths, target_in)
    longer = torch.cat([source, torch.full((6, 5), PAD)], dim=1)
    garbage = longer.clone()
    for row, length in enumerate(lengths.tolist()):
        garbage[row, length:] = 20  # a letter, not the padding token
    for padded in (longer, garbage):
        other, _ = model(padded, lengths, target_in)
        torch.testing.assert_close(other, logits, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("attention", [True, False])
def test_gru_translator_ignores_padding(attention):
    torch.manual_seed(0)
    _padding_changes_nothing(
        GRUTranslator(hidden_dim=16, embed_dim=8, attention=attention)
    )


def test_transformer_cross_attention_ignores_source_padding():
    torch.manual_seed(0)
    model = TransformerTranslator(d_model=16, num_heads=2, d_ff=32).eval()
    _padding_changes_nothing(model)
    _, source, lengths, target_in, _ = _batch()
    logits, cross = model.decode(target_in, *model.encode(source, lengths))
    # the manual formula (weights asked for) and the fused kernel agree
    fused, no_weights = model(source, lengths, target_in)
    assert no_weights == [None, None]
    torch.testing.assert_close(fused, logits, atol=1e-5, rtol=1e-5)
    for weights in cross:  # (batch, heads, steps, seq)
        for row, length in enumerate(lengths.tolist()):
            assert weights[row, :, :, length:].abs().sum() == 0


def test_transformer_decoder_is_causal():
    torch.manual_seed(0)
    model = TransformerTranslator(d_model=16, num_heads=2, d_ff=32).eval()
    _, source, lengths, target_in, _ = _batch()
    logits, _ = model(source, lengths, target_in)
    changed = target_in.clone()
    changed[:, 6:] = torch.randint(3, len(TARGET_VOCAB), (6, TARGET_LENGTH - 6))
    assert not torch.equal(changed, target_in)
    other, _ = model(source, lengths, changed)
    # positions 0..5 see only target_in[:, :6], which did not change
    torch.testing.assert_close(other[:, :6], logits[:, :6], atol=1e-6, rtol=1e-6)
    assert not torch.allclose(other[:, 6:], logits[:, 6:])


def test_decoder_block_shapes_and_causal_self_attention():
    torch.manual_seed(0)
    block = TransformerDecoderBlock(8, 2, 16)
    x, memory = torch.randn(3, 5, 8), torch.randn(3, 7, 8)
    out, self_weights, cross_weights = block(x, memory)
    assert out.shape == (3, 5, 8)
    assert self_weights.shape == (3, 2, 5, 5)
    assert cross_weights.shape == (3, 2, 5, 7)
    assert self_weights.triu(diagonal=1).abs().max() == 0


@pytest.mark.parametrize(
    "make",
    [
        lambda: GRUTranslator(hidden_dim=16, embed_dim=8),
        lambda: GRUTranslator(hidden_dim=16, embed_dim=8, attention=False),
        lambda: TransformerTranslator(d_model=16, num_heads=2, d_ff=32),
    ],
)
def test_one_training_step_lowers_the_loss(make):
    torch.manual_seed(0)
    model = make()
    pairs = date_pairs(32, seed=5)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    before = sequence_loss(model, pairs)
    optimizer.zero_grad()
    before.backward()
    optimizer.step()
    assert sequence_loss(model, pairs).item() < before.item()


@pytest.mark.parametrize(
    "make",
    [
        lambda: GRUTranslator(hidden_dim=16, embed_dim=8),
        lambda: GRUTranslator(hidden_dim=16, embed_dim=8, attention=False),
        lambda: TransformerTranslator(d_model=16, num_heads=2, d_ff=32),
    ],
)
def test_greedy_decode_picks_the_argmax_of_its_own_prefix(make):
    """Fed back as teacher-forcing input, the greedy output is the argmax at every
    step: greedy decoding and the teacher-forced forward pass agree."""
    torch.manual_seed(0)
    model = make().eval()
    _, source, lengths, _, _ = _batch()
    ids, weights = greedy_decode(model, source, lengths)
    assert ids.shape == (6, TARGET_LENGTH)
    prefix = torch.cat([torch.full((6, 1), BOS), ids[:, :-1]], dim=1)
    with torch.no_grad():
        logits, _ = model(source, lengths, prefix)
    assert torch.equal(logits.argmax(-1), ids)
    if weights is not None:
        assert weights.shape == (6, TARGET_LENGTH, source.shape[1])
        torch.testing.assert_close(weights.sum(-1), torch.ones(6, TARGET_LENGTH))


def test_greedy_decode_restores_training_mode():
    model = GRUTranslator(hidden_dim=8, embed_dim=4).train()
    _, source, lengths, _, _ = _batch()
    greedy_decode(model, source, lengths, steps=2)
    assert model.training
    with pytest.raises(ValueError, match=r"lengths must lie in \[1, "):
        greedy_decode(model, source, lengths * 0)
    assert model.training  # restored even when decoding fails


# ---- error paths -------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: format_date("1999-09-23", "numeric"), "date must be a datetime"),
        (
            lambda: format_date(datetime.date(1899, 12, 31), "spelled"),
            "date must lie in \\[1900-01-01, 2099-12-31\\], got 1899-12-31",
        ),
        (
            lambda: format_date(datetime.date(2100, 1, 1), "numeric"),
            "date must lie in",
        ),
        (lambda: format_date(SEPT_23_1999, "iso"), "fmt must be one of"),
        (lambda: date_pairs(0), "n must be a positive integer"),
        (lambda: date_pairs(3, formats=("iso",)), "formats must be a non-empty"),
        (lambda: date_pairs(3, formats=()), "formats must be a non-empty"),
        (lambda: encode_source([]), "texts must be a non-empty list"),
        (lambda: encode_source(["ok", ""]), r"texts\[1\] is an empty string"),
        (lambda: encode_source(["ok", 5]), r"texts\[1\] must be a string, got int"),
        (
            lambda: encode_source(["Sept 23"]),
            r"texts hold characters outside ' ,-\./0123.*: \['S'\]",
        ),
        # one string, not a list of them: it would be read character by character
        (lambda: encode_source("23/09/1999"), "texts must be .* got one string"),
        (lambda: encode_target("1999-09-23"), "texts must be .* got one string"),
        (lambda: encode_target([]), "texts must be a non-empty list"),
        (
            lambda: encode_target(["1999", "19"]),
            r"texts must all have the same length, got lengths \[2, 4\]",
        ),
        (lambda: encode_target(["1999/09"]), r"characters outside .*: \['/'\]"),
        (lambda: decode_target(torch.tensor([1, 2])), "ids must have 2 axes"),
        (lambda: decode_target(torch.tensor([[4, 14]])), "ids must lie in \\[0, 14\\)"),
        (lambda: decode_target(torch.tensor([[-1, 4]])), "ids must lie in"),
        (
            lambda: decode_target(torch.tensor([[4, 5]], dtype=torch.uint8)),
            "ids must be an int64 or int32 tensor, got torch.uint8",
        ),
        (lambda: decode_target(torch.tensor([[4.0]])), "ids must be an int64"),
        (lambda: decode_target(torch.tensor([[True]])), "ids must be an int64"),
        (lambda: exact_match(["a"], ["a", "b"]), "references must hold 1 strings"),
        (lambda: exact_match([], []), "predictions must be a non-empty list"),
        (lambda: exact_match("ab", "ab"), "predictions must be .* got one string"),
        (lambda: exact_match(["a"], [1]), r"references\[0\] must be a string"),
        (
            lambda: format_date(datetime.datetime(1999, 9, 23), "numeric"),
            "date must be a datetime.date, got datetime",
        ),
        (lambda: date_pairs(True), "n must be a positive integer"),
        (lambda: date_pairs(3, seed=True), "seed must be a non-negative integer"),
        (lambda: date_pairs(3, seed=2.0), "seed must be a non-negative integer"),
        (lambda: date_pairs(3, formats="numeric"), "formats must be a non-empty"),
        (
            lambda: sequence_loss(GRUTranslator(), "23/09/1999"),
            "pairs must be .* got one string",
        ),
        (
            lambda: sequence_loss(GRUTranslator(), [("23/09/1999",)]),
            r"pairs\[0\] must be a pair of strings",
        ),
        (
            lambda: sequence_loss(torch.nn.Linear(2, 2), [("a", "b")]),
            "model must be a GRUTranslator or a TransformerTranslator, got Linear",
        ),
        (lambda: GRUTranslator(hidden_dim=0), "hidden_dim must be a positive"),
        (lambda: GRUTranslator(embed_dim=2.5), "embed_dim must be a positive"),
        (lambda: TransformerTranslator(target_vocab=0), "target_vocab must be"),
        (lambda: GRUTranslator(attention_dim=0), "attention_dim must be a positive"),
        (lambda: TransformerTranslator(position="relative"), "position must be one of"),
        (
            lambda: TransformerTranslator(decoder_position="relative"),
            "decoder_position must be one of",
        ),
        (lambda: TransformerTranslator(num_heads=True), "num_heads must be a positive"),
        (lambda: TransformerTranslator(source_vocab=0), "source_vocab must be a"),
        (lambda: TransformerDecoderBlock(8, 2, 0), "d_ff must be a positive"),
    ],
)
def test_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call()


@pytest.mark.parametrize(
    "make",
    [
        lambda: GRUTranslator(hidden_dim=8, embed_dim=4),
        lambda: TransformerTranslator(d_model=8, num_heads=2, d_ff=16),
    ],
)
def test_model_input_errors(make):
    model = make()
    _, source, lengths, target_in, _ = _batch()
    with pytest.raises(ValueError, match="source must be an int64 or int32 tensor"):
        model(source.float(), lengths, target_in)
    with pytest.raises(ValueError, match="source must be an int64 or int32 tensor"):
        model(source.to(torch.uint8), lengths, target_in)
    with pytest.raises(ValueError, match="source must lie in"):
        model(source + 100, lengths, target_in)
    with pytest.raises(ValueError, match=r"source must have shape \(batch, seq\)"):
        model(source[:0], lengths[:0], target_in[:0])
    with pytest.raises(ValueError, match=r"lengths must lie in \[1, "):
        model(source, lengths + source.shape[1], target_in)
    with pytest.raises(ValueError, match=r"lengths must have shape \(6,\)"):
        model(source, lengths[:3], target_in)
    with pytest.raises(ValueError, match=r"lengths must lie in \[1, "):
        model(source, lengths * 0, target_in)
    with pytest.raises(ValueError, match="target_in must be an int64 or int32"):
        model(source, lengths, target_in.to(torch.int16))
    with pytest.raises(ValueError, match="target_in must lie in"):
        model(source, lengths, target_in + 100)
    with pytest.raises(ValueError, match="same batch size"):
        model(source, lengths, target_in[:2])
    with pytest.raises(ValueError, match="steps must be a positive integer"):
        greedy_decode(model, source, lengths, steps=0)


def test_greedy_decode_refuses_other_models():
    _, source, lengths, _, _ = _batch()
    with pytest.raises(ValueError, match="model must be a GRUTranslator"):
        greedy_decode(torch.nn.Linear(2, 2), source, lengths)


def test_decoder_block_refuses_bad_shapes():
    block = TransformerDecoderBlock(8, 2, 16)
    with pytest.raises(ValueError, match="x must have shape"):
        block(torch.randn(3, 5, 4), torch.randn(3, 7, 8))
    with pytest.raises(ValueError, match="memory must have shape"):
        block(torch.randn(3, 5, 8), torch.randn(7, 8))
    with pytest.raises(ValueError, match="x must be a torch.Tensor"):
        block([1.0], torch.randn(3, 7, 8))


def test_without_attention_the_decoder_sees_only_the_summary():
    """The bottleneck: once the summary is fixed, the per-character annotations
    can be anything without changing the logits (equation mt-bottleneck)."""
    torch.manual_seed(0)
    model = GRUTranslator(hidden_dim=16, embed_dim=8, attention=False)
    _, source, lengths, target_in, _ = _batch()
    annotations, summary, mask = model.encode(source, lengths)
    logits, _ = model.decode(target_in, annotations, summary, mask)
    other, _ = model.decode(target_in, torch.randn_like(annotations), summary, mask)
    assert torch.equal(other, logits)
    changed, _ = model.decode(target_in, annotations, summary + 1, mask)
    assert not torch.allclose(changed, logits)


def test_int32_tokens_give_the_int64_result():
    torch.manual_seed(0)
    model = TransformerTranslator(d_model=16, num_heads=2, d_ff=32).eval()
    _, source, lengths, target_in, _ = _batch()
    logits, _ = model(source, lengths, target_in)
    again, _ = model(source.int(), lengths.int(), target_in.int())
    assert torch.equal(again, logits)


def test_encoders_make_their_tensors_on_the_given_device():
    source, lengths = encode_source(["1/2", "a"], device="meta")
    target_in, target_out = encode_target(["1999-09-23"], device="meta")
    for t in (source, lengths, target_in, target_out):
        assert t.device.type == "meta" and t.dtype == torch.long
    assert source.shape == (2, 3) and target_in.shape == (1, 11)


@pytest.mark.parametrize(
    "make",
    [
        lambda: GRUTranslator(hidden_dim=16, embed_dim=8),
        lambda: TransformerTranslator(d_model=16, num_heads=2, d_ff=32),
    ],
)
def test_models_make_their_tensors_on_the_inputs_device(make):
    """CPU inputs give the same CPU results while the default device is "meta":
    every tensor the translators make follows their inputs (or their weights)."""
    torch.manual_seed(0)
    model = make().eval()
    pairs, source, lengths, target_in, _ = _batch()
    expected_ids, _ = greedy_decode(model, source, lengths, steps=3)
    expected_loss = sequence_loss(model, pairs)
    previous = torch.get_default_device()
    torch.set_default_device("meta")
    try:
        ids, _ = greedy_decode(model, source, lengths, steps=3)
        loss = sequence_loss(model, pairs)
    finally:
        torch.set_default_device(previous)
    assert ids.device == source.device and torch.equal(ids, expected_ids)
    assert loss.device == source.device and torch.equal(loss, expected_loss)


def test_gru_decode_refuses_what_encode_does_not_make():
    torch.manual_seed(0)
    model = GRUTranslator(hidden_dim=8, embed_dim=4)
    _, source, lengths, target_in, _ = _batch()
    annotations, summary, mask = model.encode(source, lengths)
    cases = [
        ((annotations[..., :4], summary, mask), r"annotations must have shape .*16"),
        ((annotations.double(), summary, mask), "annotations has dtype torch.float64"),
        ((annotations * torch.nan, summary, mask), "annotations contains NaN"),
        ((annotations[:0], summary, mask), "annotations must have shape"),
        ((annotations, summary[:3], mask), r"summary must have shape \(6, 16\)"),
        ((annotations, summary.half(), mask), "summary has dtype torch.float16"),
        ((annotations, summary * torch.inf, mask), "summary contains NaN"),
        ((annotations, torch.tensor(1.0), mask), "summary must have shape"),
        ((annotations, summary, mask.float()), "mask must be a boolean tensor"),
        ((annotations, summary, mask[..., :2]), "mask of shape .* does not broadcast"),
    ]
    for encoded, message in cases:
        with pytest.raises(ValueError, match=message):
            model.decode(target_in, *encoded)


def test_transformer_decode_refuses_what_encode_does_not_make():
    torch.manual_seed(0)
    model = TransformerTranslator(d_model=8, num_heads=2, d_ff=16)
    _, source, lengths, target_in, _ = _batch()
    memory, mask = model.encode(source, lengths)
    cases = [
        ((torch.tensor(1.0), mask), "memory must have shape"),
        ((memory[:0], mask), r"memory must have shape \(batch, seq, 8\)"),
        ((memory.double(), mask), "memory has dtype torch.float64"),
        ((memory * torch.nan, mask), "memory contains NaN"),
        ((memory, mask[..., :2]), "mask of shape .* does not broadcast"),
        ((memory, mask[None]), "mask of shape .* does not broadcast"),
        ((memory, mask.long()), "mask must be a boolean tensor"),
    ]
    for encoded, message in cases:
        with pytest.raises(ValueError, match=message):
            model.decode(target_in, *encoded)


def test_gru_encoder_matches_pytorchs_packed_bidirectional_gru():
    """The two encoder directions, run on padded batches, give the annotations and
    final states of PyTorch's bidirectional GRU on packed sequences."""
    torch.manual_seed(0)
    model = GRUTranslator(hidden_dim=16, embed_dim=8)
    _, source, lengths, _, _ = _batch()
    annotations, summary, mask = model.encode(source, lengths)
    reference = torch.nn.GRU(8, 16, batch_first=True, bidirectional=True)
    with torch.no_grad():
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(reference, f"{name}_l0").copy_(
                getattr(model.encoder_forward, f"{name}_l0")
            )
            getattr(reference, f"{name}_l0_reverse").copy_(
                getattr(model.encoder_backward, f"{name}_l0")
            )
        packed = torch.nn.utils.rnn.pack_padded_sequence(
            model.source_embedding(source),
            lengths,
            batch_first=True,
            enforce_sorted=False,
        )
        expected, final = reference(packed)
        expected, _ = torch.nn.utils.rnn.pad_packed_sequence(
            expected, batch_first=True, total_length=source.shape[1]
        )
    torch.testing.assert_close(annotations, expected, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(
        summary, torch.cat([final[0], final[1]], dim=-1), atol=1e-6, rtol=1e-5
    )
    assert mask.shape == (6, 1, source.shape[1])


@pytest.mark.parametrize("attention", [True, False])
def test_the_summary_enters_every_decoder_step(attention):
    """Cho et al. (2014): the decoder reads the summary at every step, not only
    through its initial state. With the initial state fixed (a zero bridge), the
    states, hence the logits, still depend on the summary."""
    torch.manual_seed(0)
    model = GRUTranslator(hidden_dim=16, embed_dim=8, attention=attention)
    with torch.no_grad():
        model.bridge.weight.zero_()
        model.bridge.bias.zero_()
    _, source, lengths, target_in, _ = _batch()
    annotations, summary, mask = model.encode(source, lengths)
    with torch.no_grad():
        states, _ = model.decoder(
            model._step_inputs(target_in, summary), torch.zeros(1, 6, 16)
        )
        other, _ = model.decoder(
            model._step_inputs(target_in, summary + 1), torch.zeros(1, 6, 16)
        )
    assert model.decoder.input_size == 8 + 2 * 16
    assert (states - other).abs().amax(dim=(0, 2)).min() > 1e-4  # at every step
    logits, _ = model.decode(target_in, annotations, summary, mask)
    changed, _ = model.decode(target_in, annotations, summary + 1, mask)
    assert not torch.allclose(changed, logits)
