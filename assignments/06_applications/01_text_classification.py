"""Assignment tests for Part 6, chapter 1: text classification."""

from collections import defaultdict

import torch
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

from companion.tasks.text import tokenize
from companion.teaching import test


def _by_n(ngram_accuracy):
    assert isinstance(ngram_accuracy, dict) and {1, 2, 3} <= set(ngram_accuracy), (
        "ngram_accuracy should be a dictionary with keys 1, 2, 3 (n-grams up to n)"
    )
    for n in (1, 2, 3):
        missing = {"plain", "negation", "contrast", "all"} - set(ngram_accuracy[n])
        assert not missing, (
            f"ngram_accuracy[{n}] lacks the subsets {missing}: store the dictionary "
            "that accuracy_by_subset returns"
        )
    return ngram_accuracy


@test("ex-ngrams")
def unigrams_are_a_bag_of_words(ngram_accuracy, bow_accuracy):
    one = _by_n(ngram_accuracy)[1]
    assert abs(one["contrast"] - 0.5) < 0.01, (
        f"with single words (n = 1) the contrast accuracy is {one['contrast']:.3f}; "
        "a mirror pair has one bag of words and two labels, so expect 0.5"
    )
    assert abs(one["all"] - bow_accuracy["all"]) < 0.02, (
        f"unigram counts give {one['all']:.3f} on all sentences, the bag of words "
        f"{bow_accuracy['all']:.3f}: with n = 1 the features are the bag of words"
    )


@test("ex-ngrams")
def trigrams_handle_negation(ngram_accuracy):
    one, three = _by_n(ngram_accuracy)[1], ngram_accuracy[3]
    assert three["negation"] > 0.95, (
        f"up to trigrams, negation accuracy is {three['negation']:.3f}: a trigram "
        "such as 'not very good' should let the linear model decide every negation"
    )
    assert three["all"] > one["all"] + 0.2, (
        f"up to trigrams {three['all']:.3f} against {one['all']:.3f} for single "
        "words: fit on ngram_range=(1, n) counts of the training texts"
    )


@test("ex-ngrams", hidden=True)
def longer_ngrams_help_step_by_step(ngram_accuracy):
    by_n = _by_n(ngram_accuracy)
    for subset in ("negation", "contrast", "all"):
        values = [by_n[n][subset] for n in (1, 2, 3)]
        assert values[0] < values[1] < values[2], (
            f"{subset} accuracy for n = 1, 2, 3: {values}; each longer n-gram should "
            "add some local order that the shorter ones miss"
        )


@test("ex-stopwords")
def not_and_but_are_on_the_list(is_stop_word):
    for word in ("not", "but"):
        assert word in is_stop_word, f"is_stop_word has no entry for {word!r}"
        assert bool(is_stop_word[word]) == (word in ENGLISH_STOP_WORDS), (
            f"is_stop_word[{word!r}] is {is_stop_word[word]}: look the word up in "
            "sklearn.feature_extraction.text.ENGLISH_STOP_WORDS"
        )


@test("ex-stopwords")
def strip_removes_exactly_the_stop_words(strip):
    sentence = "the plot was not very good , but the acting was superb ."
    stripped = strip(sentence)
    words = stripped.split() if isinstance(stripped, str) else list(stripped)
    expected = [w for w in tokenize(sentence) if w not in ENGLISH_STOP_WORDS]
    assert words == expected, (
        f"strip({sentence!r}) gives {stripped!r}; expected the tokens that are not "
        f"stop words, in order: {' '.join(expected)!r}"
    )


@test("ex-stopwords", hidden=True)
def ambiguous_share_is_right(ambiguous, test_texts, test_labels):
    key = [tuple(w for w in tokenize(s) if w not in ENGLISH_STOP_WORDS)
           for s in test_texts]
    labels = defaultdict(set)
    for k, label in zip(key, test_labels.tolist(), strict=True):
        labels[k].add(label)
    expected = sum(len(labels[k]) == 2 for k in key) / len(key)
    assert abs(float(ambiguous) - expected) < 1e-9, (
        f"ambiguous = {ambiguous}, expected {expected:.4f}: the share of the "
        f"{len(key)} test sentences whose stripped text occurs with both labels"
    )


def _predictions(name, value, test_labels):
    value = torch.as_tensor(value).flatten()
    assert value.shape == test_labels.shape, (
        f"{name} has {value.numel()} entries, expected one prediction per test "
        f"sentence ({len(test_labels)})"
    )
    assert set(value.tolist()) <= {0, 1}, f"{name} should hold labels 0 and 1"
    return value


@test("ex-row-position")
def shuffling_the_rows_changes_predictions(in_order, shuffled, changed, test_labels):
    in_order = _predictions("in_order", in_order, test_labels)
    shuffled = _predictions("shuffled", shuffled, test_labels)
    share = (in_order != shuffled).double().mean().item()
    assert abs(float(changed) - share) < 1e-6, (
        f"changed = {changed}, but in_order and shuffled differ on {share:.4f} of "
        "the test sentences"
    )
    assert share > 0.05, (
        f"only {share:.3f} of the predictions change: add sinusoidal_encoding of the "
        "row index to the features, and classify the shuffled test set with the "
        "encoding of its new rows"
    )


@test("ex-row-position", hidden=True)
def shuffled_predictions_are_in_test_order(in_order, shuffled, test_labels):
    in_order = _predictions("in_order", in_order, test_labels)
    shuffled = _predictions("shuffled", shuffled, test_labels)
    agree = (in_order == shuffled).double().mean().item()
    assert agree > 0.7, (
        f"in_order and shuffled agree on only {agree:.3f} of the sentences: put the "
        "predictions for the shuffled file back in the order of the test set, so "
        "that entry i is the prediction for test sentence i in both"
    )
