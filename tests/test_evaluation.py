"""Report metrics against values worked out by hand on small confusion matrices."""

import json
import os

import numpy as np
import pytest

from fer.evaluation import metrics, report

# Rows true, columns predicted. Class c has no examples but is predicted once.
CM = np.array([[5, 1, 0],
               [2, 2, 1],
               [0, 0, 0]])
LABELS = ["a", "b", "c"]


def test_confusion_matrix_counts_pairs_and_drops_masked():
    cm = metrics.confusion_matrix([0, 0, 1, 2, 1], [0, 1, 1, 2, 0], 3,
                                  weights=[1, 1, 1, 1, 0])
    np.testing.assert_array_equal(cm, [[1, 1, 0], [0, 1, 0], [0, 0, 1]])


def test_confusion_matrix_rejects_out_of_range_labels():
    with pytest.raises(ValueError, match="outside 0..2"):
        metrics.confusion_matrix([0, 3], [0, 1], 3)


def test_hand_computed_metrics():
    # accuracy: (5 + 2) / 11.
    assert metrics.accuracy(CM) == pytest.approx(7 / 11)
    # recall: a 5/6, b 2/5, c undefined -> balanced = (5/6 + 2/5) / 2.
    recall = metrics.per_class_recall(CM)
    assert recall[:2] == pytest.approx([5 / 6, 2 / 5])
    assert np.isnan(recall[2])
    assert metrics.balanced_accuracy(CM) == pytest.approx((5 / 6 + 2 / 5) / 2)
    # precision: a 5/7, b 2/3, c 0/1.
    assert metrics.per_class_precision(CM) == pytest.approx([5 / 7, 2 / 3, 0.0])
    # F1 = 2tp / (2tp + fp + fn): a 10/13, b 4/8, c 0 (predicted once, never right).
    f1 = [10 / 13, 4 / 8, 0.0]
    assert metrics.per_class_f1(CM) == pytest.approx(f1)
    assert metrics.macro_f1(CM) == pytest.approx(sum(f1) / 3)


def test_class_absent_everywhere_is_left_out_of_macro_f1():
    cm = np.array([[3, 1, 0], [1, 3, 0], [0, 0, 0]])
    assert np.isnan(metrics.per_class_f1(cm)[2])
    assert metrics.macro_f1(cm) == pytest.approx(0.75)
    assert metrics.balanced_accuracy(cm) == pytest.approx(0.75)


def test_metrics_reject_non_square_matrix():
    with pytest.raises(ValueError, match="square"):
        metrics.accuracy(np.zeros((2, 3)))


def test_summarize_has_report_keys_and_table7_counts():
    s = metrics.summarize(CM, LABELS, loss=0.25)
    for key in ("accuracy", "balanced_accuracy", "loss", "per_label", "confusion",
                "num_examples", "labels", "macro_f1"):
        assert key in s
    assert s["num_examples"] == 11
    assert s["per_label"] == pytest.approx({"a": 5 / 6, "b": 0.4, "c": None})
    assert s["per_label_counts"]["b"] == {
        "examples": 5, "correct": 2, "misclassified": 3, "predicted": 3,
        "precision": pytest.approx(2 / 3), "f1": pytest.approx(0.5),
        "recall_interval": pytest.approx(metrics.wilson_interval(2, 5)),
        "precision_interval": pytest.approx(metrics.wilson_interval(2, 3))}
    # c has no faces: no recall interval; predicted once, never right: [0, 0.79].
    assert s["per_label_counts"]["c"]["recall_interval"] is None
    assert s["per_label_counts"]["c"]["precision_interval"] == pytest.approx([0.0, 0.7935],
                                                                              abs=1e-4)
    assert "calibration" not in s
    json.dumps(s)  # JSON-ready: NaN became None.
    with pytest.raises(ValueError, match="3 classes but 2 labels"):
        metrics.summarize(CM, LABELS[:2])


@pytest.mark.parametrize("successes, trials, low, high", [
    (5, 10, 0.2366, 0.7634),   # Textbook values (Newcombe 1998, z = 1.96).
    (0, 10, 0.0, 0.2775),
    (10, 10, 0.7225, 1.0),
    (4, 15, 0.1090, 0.5195),   # Contempt on FER+ test: 4 of 15.
])
def test_wilson_interval_known_values(successes, trials, low, high):
    assert metrics.wilson_interval(successes, trials) == pytest.approx((low, high), abs=1e-4)


def test_wilson_interval_without_trials_is_undefined():
    assert all(np.isnan(metrics.wilson_interval(0, 0)))


def _toy(confidence: float, n: int, right: int) -> tuple[np.ndarray, np.ndarray]:
    """n faces whose top probability (class 0) is `confidence`; `right` of them are class 0."""
    probs = np.tile([confidence, 1 - confidence], (n, 1))
    return probs, np.array([0] * right + [1] * (n - right))


def test_ece_of_calibrated_toy_is_zero():
    probs, labels = _toy(0.8, 10, 8)   # 80% sure, 80% right.
    counts = metrics.calibration_counts(probs, labels)
    assert counts.shape == (15, 3) and counts[:, 0].sum() == 10
    assert metrics.expected_calibration_error(counts) == pytest.approx(0.0, abs=1e-12)


def test_ece_of_overconfident_toy():
    # 90% sure and half right: ECE = |0.5 - 0.9| = 0.4.
    probs, labels = _toy(0.9, 10, 5)
    assert metrics.expected_calibration_error(
        metrics.calibration_counts(probs, labels)) == pytest.approx(0.4)
    # Two bins, weighted by their faces: 10 at 0.9 half right, 30 at 0.6 all right:
    # (10 * 0.4 + 30 * 0.4) / 40 = 0.4; and 30 at 0.6 with 18 right adds nothing.
    p2, l2 = _toy(0.6, 30, 30)
    counts = metrics.calibration_counts(np.vstack([probs, p2]), np.concatenate([labels, l2]))
    assert metrics.expected_calibration_error(counts) == pytest.approx(0.4)
    p3, l3 = _toy(0.6, 30, 18)
    counts = metrics.calibration_counts(np.vstack([probs, p3]), np.concatenate([labels, l3]))
    assert metrics.expected_calibration_error(counts) == pytest.approx(10 * 0.4 / 40)


def test_calibration_bins_edges_and_batches_add_up():
    probs = np.array([[1 / 15, 14 / 15], [0.5, 0.5], [1.0, 0.0]])
    counts = metrics.calibration_counts(probs, np.array([1, 0, 0]))
    # 14/15 -> bin 13 (upper edge inclusive); 0.5 -> bin 7; 1.0 -> bin 14.
    assert np.flatnonzero(counts[:, 0]).tolist() == [7, 13, 14]
    halves = metrics.calibration_counts(probs[:1], [1]) + metrics.calibration_counts(
        probs[1:], [0, 0])
    np.testing.assert_allclose(halves, counts)
    with pytest.raises(ValueError, match="probabilities"):
        metrics.calibration_counts(probs, [0, 1])


def test_report_shows_intervals_ece_and_reliability_plot(tmp_path):
    probs, labels = _toy(0.9, 10, 5)
    cm = metrics.confusion_matrix(labels, probs.argmax(1), 2)
    s = metrics.summarize(cm, ["x", "y"], calibration=metrics.calibration_counts(probs, labels))
    assert s["calibration"]["ece"] == pytest.approx(0.4)
    paths = report.write_report(str(tmp_path), s)
    assert os.path.getsize(paths["reliability"]) > 0
    md = (tmp_path / "report.md").read_text()
    assert "| expected calibration error (15 bins, top label) | 40.00 % |" in md
    # x: 5 of 5 found (recall 56.6-100), 5 of 10 predictions right (precision 23.7-76.3).
    assert "| x | 5 | 5 | 0 | 100.00 | 56.6-100.0 | 10 | 50.00 | 23.7-76.3 |" in md
    assert "![reliability](reliability.png)" in md


def test_write_report_files(tmp_path):
    s = metrics.summarize(CM, LABELS, loss=0.25)
    s.update(design="tiny", dataset="demo", split="validation", params=10)
    history = [{"epoch": e, "train_loss": 1.0 / e, "val_loss": 1.2 / e,
                "train_accuracy": 0.5 + 0.1 * e, "val_accuracy": 0.4 + 0.1 * e,
                "val_balanced_accuracy": 0.3 + 0.1 * e} for e in (1, 2, 3)]
    paths = report.write_report(str(tmp_path), s, history)
    for name in ("report.json", "report.md", "confusion.png", "curves.png"):
        assert os.path.getsize(tmp_path / name) > 0
    loaded = json.loads((tmp_path / "report.json").read_text())
    assert loaded["confusion"] == CM.tolist()
    md = (tmp_path / "report.md").read_text()
    assert "| b | 5 | 2 | 3 | 40.00 |" in md  # label, examples, correct, wrong, acc %.
    assert paths["markdown"].endswith("report.md")
    row = report.comparison_row(s)
    assert "63.64" in row and "61.67" in row  # accuracy and balanced accuracy in %.


def test_second_opinion_fixes_what_the_main_model_gets_wrong():
    """A helper that is right where the main model hesitates earns a weight above 0."""
    from research.label_transfer import second_opinion as lt

    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), 40)
    main = np.full((120, 3), -3.0)
    main[np.arange(120), labels] = 0.0
    unsure = rng.permutation(120)[:30]  # There the main model leans, barely, to the next class.
    main[unsure, (labels[unsure] + 1) % 3] = 0.1
    helper = np.log(np.full((120, 3), 0.2))
    helper[np.arange(120), labels] = np.log(0.6)
    marginal = lt.log_marginal(np.exp(helper))
    np.testing.assert_allclose(np.exp(marginal), [1 / 3] * 3)
    np.testing.assert_array_equal(lt.combine(main, helper, marginal, 0.0), main)
    rows = lt.sweep(main, helper, marginal, labels, weights=(0.0, 0.5, 1.0))
    assert rows[0]["accuracy"] == pytest.approx(0.75)  # The main model alone.
    assert lt.choose(rows)["weight"] == 0.5 and rows[1]["accuracy"] == 1.0
    cf = lt.cross_fitted(main, helper, marginal, labels, weights=(0.0, 0.5, 1.0))
    assert cf["weights_chosen"] == [0.5, 0.5] and cf["accuracy"] == 1.0
    # The marginal is divided out: a helper that only adds a prior changes nothing.
    prior_only = np.log(np.tile([[0.7, 0.2, 0.1]], (120, 1)))
    same = lt.sweep(main, prior_only, lt.log_marginal(np.exp(prior_only)), labels,
                    weights=(0.0, 1.0))
    assert same[0]["accuracy"] == same[1]["accuracy"]
    with pytest.raises(ValueError, match="same faces"):
        lt.combine(main, helper[:5], marginal, 1.0)
    with pytest.raises(ValueError, match=">= 0"):
        lt.combine(main, helper, marginal, -1.0)


def test_adapter_learns_what_the_helper_calls_a_class_and_is_deterministic():
    """The helper says 'neutral' (0) for the target's class 2: name-matching cannot know."""
    from research.label_transfer import second_opinion as lt

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 300)
    helper_says = np.array([1, 2, 0])[labels]  # A fixed relabelling of the classes.
    probs = np.full((300, 4), 0.1)
    probs[np.arange(300), helper_says] = 0.7
    adapter = lt.fit_adapter(np.log(probs), labels, 3)
    out = adapter(np.log(probs))
    assert out.shape == (300, 3) and np.allclose(np.exp(out).sum(1), 1)
    assert (out.argmax(1) == labels).all()
    again = lt.fit_adapter(np.log(probs), labels, 3)
    np.testing.assert_array_equal(again.weights, adapter.weights)
    with pytest.raises(ValueError, match="outside"):
        lt.fit_adapter(np.log(probs), labels + 1, 3)
    with pytest.raises(ValueError, match="N labels"):
        lt.fit_adapter(np.log(probs), labels[:5], 3)


# ----------------------------------------------------------------------------
# fer.evaluation.evaluate: the one loop over a split.

def _batches(labels, batch_size, num_classes=3):
    """Eval-style batches: the last one padded with mask 0 (label 0, image 0)."""
    for start in range(0, len(labels), batch_size):
        y = np.asarray(labels[start:start + batch_size])
        n = len(y)
        pad = batch_size - n
        image = np.concatenate([np.arange(start, start + n, dtype=np.float32), np.zeros(pad)])
        yield {"image": image.astype(np.float32)[:, None],
               "label": np.concatenate([y, np.zeros(pad, y.dtype)]),
               "target": np.eye(num_classes, dtype=np.float32)[np.concatenate(
                   [y, np.zeros(pad, y.dtype)])],
               "mask": np.concatenate([np.ones(n), np.zeros(pad)]).astype(np.float32)}


def test_examples_drop_the_padding_and_stop_at_the_limit():
    from fer.evaluation import evaluate

    labels = np.array([0, 1, 2, 1, 0, 2, 2])
    seen = []

    def predict(batch):
        seen.append(len(batch["label"]))  # Every batch is predicted whole, padding too.
        return {"index": batch["image"][:, 0]}

    rows = evaluate.collect(predict, _batches(labels, 3))
    assert seen == [3, 3, 3]
    np.testing.assert_array_equal(rows["label"], labels)
    np.testing.assert_array_equal(rows["index"], np.arange(7))  # No padding row kept.
    first = evaluate.collect(predict, _batches(labels, 3), limit=4)
    np.testing.assert_array_equal(first["index"], np.arange(4))
    with pytest.raises(ValueError, match="no examples"):
        evaluate.collect(predict, iter([]))


def test_score_is_the_confusion_and_mean_cross_entropy_of_the_examples():
    from fer.evaluation import evaluate

    labels = np.array([0, 1, 2, 1, 0])
    probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.5, 0.25, 0.25],
                      [0.2, 0.2, 0.6], [0.6, 0.3, 0.1]])

    def predict(batch):  # Looks each example up by its index (the image); padding: row 0.
        return {"probs": probs[batch["image"][:, 0].astype(int)]}

    result = evaluate.score(predict, _batches(labels, 2), 3)
    assert result["count"] == 5
    np.testing.assert_array_equal(result["confusion"], metrics.confusion_matrix(
        labels, probs.argmax(-1), 3))
    assert result["loss"] == pytest.approx(-np.mean(np.log(probs[np.arange(5), labels])))
    assert result["calibration"][:, 0].sum() == 5  # Each example in one confidence bin.
    summary = evaluate.summarize(result, ["a", "b", "c"])
    assert summary["accuracy"] == pytest.approx(3 / 5) and "calibration" in summary


def test_model_predictor_pads_a_short_batch_and_returns_its_rows():
    import flax.linen as nn
    import jax

    from fer.evaluation import evaluate

    module = nn.Dense(3)
    variables = module.init(jax.random.PRNGKey(0), np.zeros((1, 1), np.float32))

    class Model(nn.Module):
        @nn.compact
        def __call__(self, x, train=False):
            return nn.Dense(3, name="dense")(x)

    model_variables = {"params": {"dense": variables["params"]}}
    predict = evaluate.model_predict(Model(), model_variables, batch_size=4)
    labels = np.array([2, 0, 1, 1, 2, 0])
    batches = list(_batches(labels, 4))
    batches[-1] = {k: v[:2] for k, v in batches[-1].items()}  # A short last batch: padded.
    rows = evaluate.collect(predict, batches)
    x = np.arange(6, dtype=np.float32)[:, None]
    np.testing.assert_allclose(rows["log_probs"],
                               jax.nn.log_softmax(module.apply(variables, x)), atol=1e-6)
    np.testing.assert_array_equal(rows["label"], labels)
