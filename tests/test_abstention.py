"""Abstention ("uncertain"): the threshold rule, the folds it is judged on, the gallery."""

from __future__ import annotations

import json

import numpy as np
import pytest

import gallery_fixtures as gf
from fer.evaluation import abstention, prior_correction
from fer.gallery import analyze, detect, filters, photos


def _probs(rows):
    """(N, 2) probabilities with class 0's probability from `rows`."""
    p = np.asarray(rows, np.float64)
    return np.stack([p, 1 - p], 1)


def test_threshold_is_the_smallest_that_reaches_the_target_precision():
    # Class 0 predicted 14 times: 8 wrong at 0.6, 6 right at 0.9. At 0 precision is
    # 6/14 < 0.5; from 0.61 on only the right ones are kept.
    probs = _probs([0.6] * 8 + [0.9] * 6 + [0.2] * 10)
    labels = np.array([1] * 8 + [0] * 6 + [1] * 10)
    thresholds = abstention.fit_thresholds(probs, labels, target=0.5, min_kept=5)
    assert thresholds == [0.61, 0.0]  # Class 1: 10 of 10 right, no threshold needed.
    # Held to 7 kept faces, class 0 never gets there: always uncertain.
    assert abstention.fit_thresholds(probs, labels, min_kept=7)[0] is None
    # A class predicted only wrongly is always uncertain.
    assert abstention.fit_thresholds(probs, 1 - labels)[1] is None


def test_abstain_mask_and_precision_counts():
    probs = _probs([0.6, 0.9, 0.2, 0.45])
    labels = np.array([1, 0, 1, 0])
    mask = abstention.abstain_mask(probs, [0.7, None])
    assert mask.tolist() == [True, False, True, True]   # None: class 1 always abstained.
    right, shown = abstention.precision_counts(probs, labels)
    assert right.tolist() == [1, 1] and shown.tolist() == [2, 2]
    right, shown = abstention.precision_counts(probs, labels, mask)
    assert right.tolist() == [1, 0] and shown.tolist() == [1, 0]
    with pytest.raises(ValueError, match="3 thresholds for 2 classes"):
        abstention.abstain_mask(probs, [0.1, 0.2, 0.3])


def test_thresholds_for_checks_the_record():
    labels = ("happy", "sad")
    assert abstention.thresholds_for({"thresholds": {"sad": 0.4}}, labels) == [0.0, 0.4]
    with pytest.raises(ValueError, match="lacks"):
        abstention.thresholds_for({"thresholds": {"anger": 0.4}}, labels)
    with pytest.raises(ValueError, match="number in"):
        abstention.thresholds_for({"thresholds": {"sad": 1.5}}, labels)
    with pytest.raises(ValueError, match="'thresholds'"):
        abstention.thresholds_for({}, labels)


def test_stratified_folds_spread_every_class():
    labels = np.array([0] * 23 + [1] * 7 + [2] * 3)
    folds = prior_correction.stratified_folds(labels, 5, seed=0)
    for c in range(3):
        per_fold = np.bincount(folds[labels == c], minlength=5)
        assert per_fold.max() - per_fold.min() <= 1
    assert np.bincount(folds, minlength=5).max() - np.bincount(folds).min() <= 1
    np.testing.assert_array_equal(folds, prior_correction.stratified_folds(labels, 5, 0))
    assert not np.array_equal(folds, prior_correction.stratified_folds(labels, 5, 1))


def test_crossval_scores_every_face_once_with_choices_from_other_folds():
    from benchmarks import crossval

    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), [120, 60, 20])
    logits = rng.normal(0, 1, (200, 3))
    logits[np.arange(200), labels] += 1.5
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    record = crossval.crossval(probs, labels, ["a", "b", "c"], [600, 300, 100], 0.0)
    assert record["pooled"]["num_examples"] == 200
    assert len(record["taus_chosen"]) == 5 and len(record["per_fold"]) == 5
    assert sum(row["faces"] for row in record["per_fold"]) == 200
    accuracy = record["mean_sd"]["accuracy"]
    per_fold = [row["accuracy"] for row in record["per_fold"]]
    assert accuracy["mean"] == pytest.approx(np.mean(per_fold))
    assert accuracy["sd"] == pytest.approx(np.std(per_fold, ddof=1))
    abst = record["pooled_abstention"]
    assert all(s <= p for s, p in zip(abst["shown"], abst["predicted"]))
    assert "| accuracy |" in crossval.markdown(record)


def test_crossval_can_take_back_a_prior_shift_trained_into_the_logits():
    """A logit-adjusted model leans to its rare classes at tau 0: only a negative tau,
    if the sweep offers one, brings its accuracy back."""
    from benchmarks import crossval
    from fer.models import ensemble as ensemble_lib

    rng = np.random.default_rng(0)
    counts = [600, 300, 100]
    labels = np.repeat(np.arange(3), [300, 150, 50])
    logits = rng.normal(0, 1, (500, 3))
    logits[np.arange(500), labels] += 1.0
    leaning = logits - 1.5 * np.asarray(ensemble_lib.log_prior(counts))  # Rare favoured.
    probs = np.exp(leaning) / np.exp(leaning).sum(1, keepdims=True)
    default = crossval.crossval(probs, labels, ["a", "b", "c"], counts, 0.0)
    assert set(default["taus_chosen"]) == {0.0}
    signed = crossval.crossval(probs, labels, ["a", "b", "c"], counts, 0.0,
                               taus=[round(0.05 * i, 2) for i in range(-40, 21)])
    assert max(signed["taus_chosen"]) < 0
    assert signed["mean_sd"]["accuracy"]["mean"] > default["mean_sd"]["accuracy"]["mean"]


# The gallery: FakeClassifier puts 0.8 on one class for every face.

def _face_photo(tmp_path):
    return photos.read_photo(gf.save(str(tmp_path / "a.png"), gf.landscape(gf.astronaut())))


def test_gallery_labels_a_face_under_its_threshold_uncertain(tmp_path):
    photo = _face_photo(tmp_path)
    plain = analyze.PhotoAnalyzer(detect.BlazeFaceDetector(), gf.FakeClassifier())
    face = plain.analyze_photo(photo).faces[0]
    assert face.label == face.guess != abstention.UNCERTAIN
    strict = analyze.PhotoAnalyzer(detect.BlazeFaceDetector(), gf.FakeClassifier(),
                                   abstain={face.guess: 0.9})
    result = strict.analyze_photo(photo)
    unsure = result.faces[0]
    assert unsure.label == abstention.UNCERTAIN and result.label == abstention.UNCERTAIN
    assert unsure.guess == face.guess and unsure.probs == face.probs
    assert unsure.confidence == pytest.approx(0.8)
    assert unsure.to_json()["guess"] == face.guess and unsure.to_json()["emoji"]
    # 0.8 clears a 0.5 threshold; None makes the class always uncertain.
    loose = analyze.PhotoAnalyzer(detect.BlazeFaceDetector(), gf.FakeClassifier(),
                                  abstain={face.guess: 0.5})
    assert loose.analyze_photo(photo).faces[0].label == face.guess
    never = analyze.PhotoAnalyzer(detect.BlazeFaceDetector(), gf.FakeClassifier(),
                                  abstain={face.guess: None})
    assert never.analyze_photo(photo).faces[0].label == abstention.UNCERTAIN


def test_filters_treat_uncertain_as_its_own_label():
    box = [0.1, 0.1, 0.2, 0.2]
    faces = [{"label": "uncertain", "box": box}]
    assert filters.photo_filters(faces) == {"uncertain"}
    assert not list(filters.select([{"faces": faces}], "contempt"))
    assert list(filters.select([{"faces": faces}], filters.parse_label(" Uncertain ")))
    group = faces + [{"label": "happy", "box": [0.5, 0.1, 0.3, 0.3]}]
    assert filters.photo_filters(group, "any") == {"uncertain", "happy", "multiple"}
    assert filters.photo_filters(group, "largest") == {"happy", "multiple"}
    assert filters.photo_filters(group, "all") == {"multiple"}


def test_load_abstention_reads_the_models_file(tmp_path):
    assert analyze.load_abstention(str(tmp_path)) is None
    (tmp_path / abstention.FILENAME).write_text(json.dumps({"thresholds": {"contempt": 0.5}}))
    assert analyze.load_abstention(str(tmp_path)) == {"contempt": 0.5}
    (tmp_path / abstention.FILENAME).write_text("{not json")
    with pytest.raises(ValueError, match="abstain.json"):
        analyze.load_abstention(str(tmp_path))
