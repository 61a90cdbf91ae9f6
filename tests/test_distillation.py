"""Distillation targets and the logit-adjusted loss, on the tiny stand-in set.

A teacher's probabilities (fer.data.soft_targets, written by fer.training.teacher)
must reach the training loss keyed by record, whatever the shuffle; a file that
cannot be this split's is refused in one line; the config strings name them.
"""

import json
import os

import jax
import numpy as np
import pytest

import configs
import training_fixtures as fx
from fer.data import input_pipeline
from fer.data import soft_targets
from fer.models import ensemble as ensemble_lib
from fer.training import config_check
from fer.training import state as state_lib
from fer.training import teacher as teacher_lib
from fer.training import train as train_lib

K = fx.LABEL_SET.num_classes
SHIPPED = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                       "fer", "assets", "model")


@pytest.fixture(scope="module", autouse=True)
def stand_ins():
    with fx.stand_ins():
        yield


def _train_labels() -> np.ndarray:
    return fx.split_arrays(fx.DATASETS["tiny"])["train"][1].astype(np.int64)


def _shifted_teacher(tmp_path, labels=None, probs=None) -> str:
    """A teacher that calls every face the next class: one-hot of (label + 1) % K."""
    labels = _train_labels() if labels is None else labels
    if probs is None:
        probs = np.eye(K, dtype=np.float32)[(labels + 1) % K]
    path = str(tmp_path / "teacher.npz")
    np.savez(path, probs=probs, labels=labels)
    return path


def _config(path: str, weight: float, **overrides):
    return fx.tiny_config(distill_targets=path, distill_weight=weight, **overrides)


def test_each_target_mixes_its_own_records_teacher_row_after_the_shuffle(tmp_path):
    config = _config(_shifted_teacher(tmp_path), 0.7)
    epoch = input_pipeline.train_dataset(config, "train", batch_size=32, seed=3,
                                         shard_index=0, shard_count=1)
    batch = epoch[1]
    label = batch["label"].astype(np.int64)
    expected = 0.7 * np.eye(K)[(label + 1) % K] + 0.3 * np.eye(K)[label]
    np.testing.assert_allclose(batch["target"], expected, atol=1e-6)
    assert not np.array_equal(label, _train_labels()[:32])  # Shuffled: keyed, not aligned.


def test_without_distillation_the_targets_are_the_records_own(tmp_path):
    config = fx.tiny_config()
    batch = input_pipeline.train_dataset(config, "train", batch_size=32, seed=3,
                                         shard_index=0, shard_count=1)[0]
    np.testing.assert_array_equal(batch["target"], np.eye(K)[batch["label"]])


def test_a_student_taught_only_by_the_teacher_learns_the_teachers_answers(tmp_path):
    """End to end: weight 1 and a teacher that is always one class off. The student
    must learn the teacher's mapping, which its own labels never show."""
    config = _config(_shifted_teacher(tmp_path), 1.0, epochs=4)
    run = train_lib.train_and_evaluate(config, str(tmp_path / "run"))
    x = fx.images("tiny", "validation")
    labels = fx.split_arrays(fx.DATASETS["tiny"])["validation"][1]
    pred = np.asarray(run.model.apply(run.best_variables, x, train=False)).argmax(-1)
    assert (pred == (labels + 1) % K).mean() > 0.5
    assert (pred == labels).mean() < 0.2


@pytest.mark.parametrize("change,match", [
    ("rows", r"255 rows, but the split has 256 records"),
    ("classes", r"7 classes per row, but the dataset has 8 labels"),
    ("nan", r"1 rows hold NaN"),
    ("sums", r"rows must be probabilities"),
    ("order", r"records' labels differ from the split's"),
    ("missing", r"no such file"),
])
def test_targets_that_cannot_be_this_splits_are_refused_in_one_line(tmp_path, change, match):
    labels = _train_labels()
    probs = np.full((len(labels), K), 1.0 / K, np.float32)
    if change == "rows":
        probs, labels = probs[1:], labels[1:]
    elif change == "classes":
        probs = np.full((len(labels), K - 1), 1.0 / (K - 1), np.float32)
    elif change == "nan":
        probs[5, 2] = np.nan
    elif change == "sums":
        probs[5] *= 2
    elif change == "order":
        labels = labels[::-1].copy()
    path = _shifted_teacher(tmp_path, labels, probs)
    if change == "missing":
        path = str(tmp_path / "absent.npz")
    with pytest.raises(ValueError, match=match) as info:
        input_pipeline.train_dataset(_config(path, 0.5), "train", batch_size=32, seed=0,
                                     shard_index=0, shard_count=1)
    assert "\n" not in str(info.value) and path in str(info.value)


def test_a_weight_without_targets_and_targets_without_a_weight_are_refused(tmp_path):
    with pytest.raises(ValueError, match=r"distill_weight=0.5 needs config.distill_targets"):
        input_pipeline.train_dataset(_config("", 0.5), "train", batch_size=32, seed=0,
                                     shard_index=0, shard_count=1)
    with pytest.raises(ValueError, match=r"unused with config.distill_weight=0"):
        input_pipeline.train_dataset(_config(_shifted_teacher(tmp_path), 0.0), "train",
                                     batch_size=32, seed=0, shard_index=0, shard_count=1)


def test_config_strings_name_the_distillation_weight_and_the_logit_adjustment():
    plain = configs.load("resnet_fer:size=tiny,data=ferplus")
    assert (plain.distill_weight, plain.distill_targets, plain.logit_adjustment) == (0.0, "", 0.0)
    config = configs.load("resnet_fer:size=tiny,data=ferplus,distill=0.7,la=1.0,weights=none")
    assert (config.distill_weight, config.logit_adjustment, config.class_weights) == (
        0.7, 1.0, False)
    differ = {k for k, v in config.to_dict().items() if plain.to_dict()[k] != v}
    assert differ == {"distill_weight", "logit_adjustment", "class_weights"}
    with pytest.raises(ValueError, match=r"distill='much'.*float"):
        configs.load("resnet_fer:distill=much")
    config.distill_weight, config.logit_adjustment = 1.5, -1.0
    assert {line.split("=")[0] for line in config_check.problems(config)} == {
        "config.distill_weight", "config.logit_adjustment"}


def _one_step_setup():
    """(model, tx, state, batch) for comparing single train steps: plain SGD (Adam's
    first step is sign(g)), 16 stand-in faces, one of each class twice."""
    model = fx.TinyNet(num_classes=K)
    tx = state_lib.create_optimizer(fx.tiny_config(optimizer="sgd", momentum=0.0), 8)
    state = state_lib.create_train_state(jax.random.PRNGKey(0), model, tx,
                                         (fx.SIZE, fx.SIZE, 1))
    labels = np.arange(16) % K
    batch = {"image": fx.images("tiny", "train")[:16], "label": labels,
             "target": np.eye(K, dtype=np.float32)[labels], "mask": np.ones(16, np.float32)}
    return model, tx, state, batch


def test_the_logit_adjustment_is_tau_log_prior_and_changes_the_step():
    counts = np.array([100, 50, 10, 10, 5, 5, 1, 0])
    offset = train_lib.logit_adjustment(counts, 1.0)
    assert train_lib.logit_adjustment(counts, 0.0) is None
    np.testing.assert_allclose(offset, ensemble_lib.prior_shift(counts, 1.0), rtol=1e-6)
    assert offset.argmax() == 0 and offset.argmin() == 7  # Rare classes pushed down in the loss.
    model, tx, state, batch = _one_step_setup()
    plain, _ = train_lib.train_step(state, batch, model=model, tx=tx)
    adjusted, _ = train_lib.train_step(state, batch, model=model, tx=tx,
                                       logit_offset=offset)
    bias = lambda s: np.asarray(s.params["Dense_0"]["bias"])  # noqa: E731
    # The adjusted loss lowers the rare classes' logits, so the step raises their biases more.
    assert (bias(adjusted) - bias(plain))[7] > 0 > (bias(adjusted) - bias(plain))[0]


def test_the_logit_adjustment_prior_is_the_mass_of_the_targets_the_loss_sees():
    config = configs.load("resnet_fer:size=tiny,data=any,la=1.0")
    config.label_mode = "probability"  # The demo set's votes, as FER+'s recipe trains.
    info = input_pipeline.get_dataset_info(config)
    split = input_pipeline.load_dataset(config).split(config.train_split)
    counts = info.class_counts[config.train_split]
    np.testing.assert_allclose(train_lib.training_prior(config, info),
                               split.votes.sum(axis=0, dtype=np.float64), rtol=1e-9)
    assert not np.allclose(split.votes.sum(axis=0) / split.votes.sum(), counts / counts.sum(),
                           atol=1e-3)  # Raters' dissent: the two priors differ.
    config.logit_adjustment_prior = "labels"
    np.testing.assert_array_equal(train_lib.training_prior(config, info), counts)
    config.logit_adjustment_prior, config.label_mode = "targets", "majority"
    np.testing.assert_array_equal(train_lib.training_prior(config, info), counts)
    config.logit_adjustment_prior = "votes"
    with pytest.raises(ValueError, match="logit_adjustment_prior must be 'targets' or "):
        train_lib.training_prior(config, info)


def test_mixup_blends_faces_and_targets_alike_and_never_with_padding():
    rng = np.random.default_rng(0)
    labels = np.arange(8) % K
    batch = {"image": rng.random((8, fx.SIZE, fx.SIZE, 1)).astype(np.float32),
             "label": labels, "target": np.eye(K, dtype=np.float32)[labels],
             "mask": np.array([1, 1, 1, 1, 1, 1, 0, 0], np.float32)}
    for seed in range(5):
        mixed = jax.tree.map(np.asarray, train_lib.mixup(batch, jax.random.PRNGKey(seed), 0.4))
        np.testing.assert_allclose(mixed["target"].sum(-1), 1.0, rtol=1e-5)
        for i in range(6):  # Each real face: lam * itself + (1 - lam) * one real partner.
            own = mixed["target"][i, labels[i]]
            others = [j for j in range(6) if labels[j] != labels[i]]
            partner = next((j for j in others if mixed["target"][i, labels[j]] > 0), i)
            lam = own if partner != i else 1.0
            np.testing.assert_allclose(
                mixed["image"][i], lam * batch["image"][i]
                + (1 - lam) * batch["image"][partner], atol=1e-5)
        assert not mixed["target"][:6, labels[6:]].any()  # Padding labels 6, 7: no partner.
        np.testing.assert_array_equal(mixed["label"], labels)
    assert any(not np.allclose(train_lib.mixup(batch, jax.random.PRNGKey(s), 0.4)["image"],
                               batch["image"]) for s in range(5))


def test_a_mixup_step_trains_on_blends():
    model, tx, state, batch = _one_step_setup()
    plain, _ = train_lib.train_step(state, batch, model=model, tx=tx)
    mixed, _ = train_lib.train_step(state, batch, model=model, tx=tx, mixup_alpha=0.4)
    blended = train_lib.mixup(batch, jax.random.fold_in(
        jax.random.fold_in(state.rng, state.step), 1), 0.4)
    by_hand, _ = train_lib.train_step(state, blended, model=model, tx=tx)
    kernel = lambda s: np.asarray(s.params["Dense_0"]["kernel"])  # noqa: E731
    assert not np.allclose(kernel(mixed), kernel(plain))
    np.testing.assert_allclose(kernel(mixed), kernel(by_hand), rtol=1e-5, atol=1e-7)
    assert configs.load("resnet_fer:size=tiny,data=ferplus,mixup=0.2").mixup_alpha == 0.2


def test_the_teacher_command_takes_the_shipped_prior_correction_off_exactly():
    tau, counts = teacher_lib.recorded_correction(SHIPPED)
    shipped = json.load(open(os.path.join(SHIPPED, "shipped.json")))
    assert (tau, counts) == (shipped["run"]["ensemble"]["tau"],
                             shipped["run"]["ensemble"]["train_counts"])
    rng = np.random.default_rng(0)
    raw = rng.dirichlet(np.ones(K), size=20)
    logits = np.log(raw) - np.asarray(ensemble_lib.prior_shift(counts, tau))
    corrected = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    np.testing.assert_allclose(teacher_lib.uncorrect(corrected, tau, counts), raw, atol=1e-9)
    assert teacher_lib.recorded_correction(os.path.dirname(__file__)) == (0.0, None)


def test_saved_targets_round_trip_with_their_provenance(tmp_path):
    labels = _train_labels()
    probs = np.eye(K, dtype=np.float32)[labels]
    path = str(tmp_path / "t.npz")
    soft_targets.save(path, probs, labels, label_names=fx.LABEL_SET.labels, dataset="tiny",
                      split="train", teacher="x", tau_removed=0.35)
    np.testing.assert_array_equal(soft_targets.load(path, labels=labels, num_classes=K), probs)
    assert soft_targets.describe(path)["tau_removed"] == 0.35


def test_the_studys_verdict_needs_every_goal_metric_within_half_a_point_and_one_ms():
    from research.distillation import __main__ as study  # noqa: PLC0415

    def row(acc, bal, low, ms):
        return {"accuracy": {"mean": acc}, "balanced_accuracy": {"mean": bal},
                "min_recall": {"mean": low}, "ms_per_face": ms}
    reference = row(0.852, 0.834, 0.635, 1.3)
    assert study.verdict(reference, row(0.848, 0.830, 0.632, 0.9))["meets_goal"]
    short = study.verdict(reference, row(0.852, 0.828, 0.700, 0.9))
    assert not short["meets_goal"] and short["within"] == {
        "accuracy": True, "balanced_accuracy": False, "min_recall": True}
    assert not study.verdict(reference, row(0.86, 0.84, 0.64, 1.2))["meets_goal"]
