"""Assignment tests for Part 6, chapter 2: machine translation."""

import datetime

import torch

from companion.tasks.translation import (
    decode_target,
    encode_source,
    encode_target,
    exact_match,
    greedy_decode,
)
from companion.teaching import test

UNSEEN = [
    "23.09.1999",
    "1999-09-23",
    "23 sep 1999",
    "sep. 23, 1999",
    "twenty-third september 1999",
]
WEEKDAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday",
            "sunday"]


def _translate(model, texts):
    source, lengths = encode_source(texts)
    with torch.no_grad():
        ids, _ = greedy_decode(model, source, lengths)
    return decode_target(ids)


@test("ex-unseen-formats")
def unseen_outputs_are_the_models_translations(unseen_outputs, models):
    expected = _translate(models["attention"], UNSEEN)
    got = list(unseen_outputs)
    assert len(got) == len(UNSEEN), (
        f"unseen_outputs has {len(got)} entries, expected one per input ({len(UNSEEN)})"
    )
    for text, mine, theirs in zip(UNSEEN, got, expected, strict=True):
        assert mine == theirs, (
            f"for {text!r} unseen_outputs has {mine!r}, but the attention model "
            f"translates it as {theirs!r}: decode the five inputs with greedy_decode("
            "models['attention'], ...) and decode_target, in the order given"
        )


@test("ex-unseen-formats", hidden=True)
def right_marks_the_correct_translations(right, models):
    expected = [t == "1999-09-23" for t in _translate(models["attention"], UNSEEN)]
    got = [bool(r) for r in right]
    assert got == expected, (
        f"right is {got}, expected {expected}: every input is 23 September 1999, so "
        "a translation is right when it is exactly 1999-09-23"
    )


def _weekday_inputs(test_pairs):
    # (index, characters of the weekday) of the test inputs that start with one
    found = []
    for b, (text, iso) in enumerate(test_pairs):
        day = WEEKDAYS[datetime.date.fromisoformat(iso).weekday()]
        if text.startswith(day):
            found.append((b, len(day)))
    return found


@test("ex-weekday")
def weekday_share_and_mass(weekday_mass, weekday_share, test_pairs):
    found = _weekday_inputs(test_pairs)
    share = sum(n / len(test_pairs[b][0]) for b, n in found) / len(found)
    assert abs(float(weekday_share) - share) < 1e-6, (
        f"weekday_share = {weekday_share}, expected {share:.4f}: the characters of "
        f"the weekday word over all characters, averaged over the {len(found)} test "
        "inputs that start with a weekday"
    )
    assert 0 <= float(weekday_mass) < share, (
        f"weekday_mass = {weekday_mass}: the mean attention weight on the weekday, "
        "a share between 0 and 1, is below the share of its characters"
    )


@test("ex-weekday", hidden=True)
def weekday_mass_is_right(weekday_mass, test_pairs, test_weights):
    found = _weekday_inputs(test_pairs)
    mass = sum(test_weights[b, :10, :n].sum(-1).mean().item() for b, n in found)
    mass /= len(found)
    assert abs(float(weekday_mass) - mass) < 1e-4, (
        f"weekday_mass = {weekday_mass}, expected {mass:.4f}: for each of the "
        f"{len(found)} inputs that start with a weekday, sum the attention of each "
        "of the ten output characters over the weekday's characters, then average "
        "over the output characters and the inputs"
    )


NAMES = ("attention", "no attention", "Transformer")


def _table(char_accuracy):
    missing = set(NAMES) - set(char_accuracy)
    assert not missing, f"char_accuracy has no entry for {missing}"
    table = {name: [float(v) for v in char_accuracy[name]] for name in NAMES}
    for name, values in table.items():
        assert len(values) == 3 and all(0 <= v <= 1 for v in values), (
            f"char_accuracy[{name!r}] = {values}: expected three shares "
            "(teacher-forced, greedy, exact match)"
        )
    return table


@test("ex-teacher-forcing")
def teacher_forcing_flatters_the_bottleneck(char_accuracy):
    forced, greedy, exact = _table(char_accuracy)["no attention"]
    assert forced > greedy, (
        f"no attention: teacher-forced {forced:.3f}, greedy {greedy:.3f}; decoding "
        "from its own outputs, the model feeds its mistakes back"
    )
    assert greedy > exact + 0.1, (
        f"no attention: greedy {greedy:.3f} of the characters, exact match "
        f"{exact:.3f} of the dates; a date is right only if all ten characters are"
    )


@test("ex-teacher-forcing", hidden=True)
def char_accuracy_is_right(char_accuracy, models, decoded, test_source, test_lengths,
                           test_refs):
    table = _table(char_accuracy)
    _, target_out = encode_target(test_refs)
    for name in NAMES:
        ids = decoded[name][0]
        greedy = (ids == target_out)[:, :10].double().mean().item()
        exact = exact_match(decode_target(ids), test_refs).mean().item()
        got = table[name]
        assert abs(got[1] - greedy) < 1e-4 and abs(got[2] - exact) < 1e-4, (
            f"{name}: greedy {got[1]:.4f} and exact {got[2]:.4f}, expected "
            f"{greedy:.4f} and {exact:.4f} (the ten characters of YYYY-MM-DD; the "
            "test dates of test_refs)"
        )
    target_in, _ = encode_target(test_refs)
    with torch.no_grad():
        logits, _ = models["no attention"](test_source, test_lengths, target_in)
    forced = (logits.argmax(-1) == target_out)[:, :10].double().mean().item()
    assert abs(table["no attention"][0] - forced) < 1e-4, (
        f"no attention: teacher-forced {table['no attention'][0]:.4f}, expected "
        f"{forced:.4f}: give the model the true prefix (encode_target's decoder "
        "input) and compare its most likely characters with the targets"
    )
