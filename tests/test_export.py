"""Export to TFLite: four variants of a trained tiny BN model, checked against JAX.

One run is trained (tiny stand-in model and in-memory pipeline of the training
tests) and exported once per module: TF conversion is the slow part.
"""

import json
import os

import jax
import numpy as np
import pytest

import training_fixtures as fx
from fer import spec as spec_lib
from fer.export import runtime
from fer.export import tflite
from fer import loading
from fer.evaluation import evaluate as evaluate_lib
from fer.training import train as train_lib

# BatchNorm at inference is x * a + b; folded into the convolution it leaves none.
BATCH_NORM_OPS = {"MUL", "SUB", "RSQRT", "ADD"}


@pytest.fixture(scope="module", autouse=True)
def stand_ins():
    with fx.stand_ins():
        yield


@pytest.fixture(scope="module")
def data():
    """{split: (uint8 images, labels)} of the dataset the run trains on."""
    return fx.split_arrays(fx.DATASETS["tiny_val200"])


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(workdir, export dir, export record) of a 3-epoch tiny run with BatchNorm."""
    workdir = str(tmp_path_factory.mktemp("run"))
    config = fx.tiny_config(model_kwargs={"batch_norm": True}, learning_rate=1e-2,
                            dataset="tiny_val200")
    train_lib.train_and_evaluate(config, workdir)
    out_dir = tflite.export_workdir(workdir, tflite.VARIANTS)
    yield workdir, out_dir, tflite.load_record(out_dir)


@pytest.fixture(scope="module")
def loaded(trained):
    return loading.load_model(trained[0], "best")


def _validation_uint8(data):
    return data["validation"][0]


def test_every_variant_is_written_with_builtin_ops_only(trained):
    _, out_dir, record = trained
    assert set(record["variants"]) == set(tflite.VARIANTS) and not record["refused"]
    for variant, entry in record["variants"].items():
        path = os.path.join(out_dir, entry["file"])
        assert entry["file"] == runtime.model_filename(variant)
        assert os.path.getsize(path) == entry["bytes"] > 0
        ops = runtime.LiteRTClassifier(path).op_names()
        assert ops and not tflite.builtin_op_problems(ops), ops
        assert not any(op.startswith("Flex") or op == "CUSTOM" for op in ops)
    assert os.path.exists(os.path.join(out_dir, "model.tflite"))
    assert os.path.exists(os.path.join(out_dir, "model.json"))
    sizes = {v: e["bytes"] for v, e in record["variants"].items()}
    assert sizes["int8"] < sizes["float32"] and sizes["float16"] < sizes["float32"]


def test_batch_norm_is_folded(trained, loaded):
    _, out_dir, record = trained
    assert "batch_stats" in loaded[1]  # The model really has BatchNorm...
    ops = set(record["variants"]["float32"]["ops"])
    assert not ops & BATCH_NORM_OPS, ops  # ...and the exported graph does not.


def test_float32_probabilities_equal_jax(trained, loaded, data):
    _, out_dir, record = trained
    module, variables, spec, _ = loaded
    faces = _validation_uint8(data)
    expected = np.asarray(jax.nn.softmax(
        module.apply(variables, spec_lib.normalise(faces), train=False)))
    got = runtime.LiteRTClassifier(out_dir).predict_probs(faces)
    assert got.dtype == np.float32 and got.shape == expected.shape
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert record["variants"]["float32"]["max_abs_delta_p"] < 1e-5
    assert record["variants"]["float32"]["top1_agreement"] == 1.0


def test_int8_agreement_is_recorded_and_measured_on_validation(trained, data):
    _, out_dir, record = trained
    entry = record["variants"]["int8"]
    assert record["validation_source"] == "validation"
    assert entry["num_validation"] == len(data["validation"][1])
    assert entry["top1_agreement"] >= tflite.MIN_AGREEMENT
    classifier = runtime.LiteRTClassifier(out_dir, variant="int8")
    assert classifier.input_dtype == np.int8  # Full integer, input included.
    faces = _validation_uint8(data)
    int8 = classifier.predict_probs(faces)
    float32 = runtime.LiteRTClassifier(out_dir).predict_probs(faces)
    agreement = np.mean(int8.argmax(-1) == float32.argmax(-1))
    assert agreement >= 0.98
    np.testing.assert_allclose(int8.sum(-1), 1.0, atol=0.05)


def _accuracies(probs, labels):
    from fer.evaluation import metrics
    cm = metrics.confusion_matrix(labels, probs.argmax(-1), probs.shape[-1])
    return metrics.accuracy(cm), metrics.balanced_accuracy(cm)


def test_every_variant_is_judged_by_accuracy_on_labelled_faces(trained, data):
    """export_workdir passes the validation labels: each variant's accuracy and its
    drop from the float32 model are recorded, and an accepted one is within the limit."""
    _, out_dir, record = trained
    labels = data["validation"][1]
    faces = _validation_uint8(data)
    assert record["acceptance"]["labelled"]
    reference = record["float32_reference"]
    for variant, entry in record["variants"].items():
        probs = runtime.LiteRTClassifier(out_dir, variant=variant).predict_probs(faces)
        accuracy, balanced = _accuracies(probs, labels)
        assert entry["accuracy"] == pytest.approx(accuracy, abs=0.011)
        assert entry["balanced_accuracy"] == pytest.approx(balanced, abs=0.011)
        assert entry["accuracy_drop_points"] == pytest.approx(
            100 * (reference["accuracy"] - entry["accuracy"]))
        if variant in tflite.QUANTIZED:
            assert entry["accuracy_drop_points"] <= tflite.MAX_ACCURACY_DROP
            assert entry["balanced_accuracy_drop_points"] <= tflite.MAX_ACCURACY_DROP


def test_int8_that_loses_accuracy_is_refused_with_the_numbers(tmp_path, loaded, data):
    module, variables, spec, _ = loaded
    faces = _validation_uint8(data)
    labels = data["validation"][1]
    stale = tmp_path / "model_int8.tflite"
    stale.write_bytes(b"an earlier export")
    with pytest.raises(tflite.QuantizationRefused, match="int8 model refused") as error:
        # Black calibration images: every activation range collapses to zero.
        tflite.export(module, variables, spec, str(tmp_path), variants=("float32", "int8"),
                      calibration_images=np.zeros_like(faces[:20]),
                      validation_images=faces, validation_labels=labels,
                      min_agreement=0.0)  # Refused on accuracy alone.
    assert not stale.exists()
    assert (tmp_path / "model.tflite").exists()
    record = json.loads((tmp_path / "export.json").read_text())
    assert set(record["variants"]) == {"float32"}
    refused = record["refused"]["int8"]
    assert refused["accuracy_drop_points"] > tflite.MAX_ACCURACY_DROP
    message = str(error.value)
    for value in (refused["accuracy"], record["float32_reference"]["accuracy"]):
        assert f"{value:.2%}" in message
    assert f"{refused['accuracy_drop_points']:.2f} points lost" in message
    assert f"{len(faces)} validation faces" in message


def test_the_accuracy_limit_decides(tmp_path, loaded, data):
    """The same int8 model, judged against labels it loses on or gains on."""
    module, variables, spec, _ = loaded
    faces = _validation_uint8(data)
    calibration = np.zeros_like(faces[:20])  # Black faces: a lossy int8.
    float_labels = np.asarray(jax.nn.softmax(module.apply(
        variables, spec_lib.normalise(faces), train=False))).argmax(-1)
    kwargs = dict(variants=("int8",), calibration_images=calibration,
                  validation_images=faces, min_agreement=0.0)
    record = tflite.export(module, variables, spec, str(tmp_path / "lenient"),
                           validation_labels=float_labels, max_accuracy_drop=100.0, **kwargs)
    entry = record["variants"]["int8"]
    drop = entry["accuracy_drop_points"]
    assert record["float32_reference"]["accuracy"] == 1.0
    assert drop == pytest.approx(100 * (1 - entry["top1_agreement"]))
    assert drop > 0
    with pytest.raises(tflite.QuantizationRefused, match="accuracy"):
        tflite.export(module, variables, spec, str(tmp_path / "strict"),
                      validation_labels=float_labels, max_accuracy_drop=drop / 2, **kwargs)
    # Against its own answers the int8 model loses nothing: accepted at the default limit.
    int8_probs = runtime.LiteRTClassifier(str(tmp_path / "lenient"),
                                          variant="int8").predict_probs(faces)
    record = tflite.export(module, variables, spec, str(tmp_path / "own"),
                           validation_labels=int8_probs.argmax(-1), **kwargs)
    assert record["variants"]["int8"]["accuracy_drop_points"] < 0


def test_agreement_floor_is_enforced(tmp_path, loaded, data):
    module, variables, spec, _ = loaded
    faces = _validation_uint8(data)
    with pytest.raises(tflite.QuantizationRefused, match="below the floor") as error:
        tflite.export(module, variables, spec, str(tmp_path), variants=("int8",),
                      calibration_images=faces, validation_images=faces,
                      min_agreement=1.01)
    assert error.value.record["refused"]["int8"]["top1_agreement"] <= 1.0
    assert not error.value.record["acceptance"]["labelled"]
    assert not list(tmp_path.glob("*.tflite"))


def test_model_json_round_trips(trained, loaded):
    _, out_dir, record = trained
    spec = loaded[2]
    assert spec_lib.ModelSpec.load(out_dir) == spec
    assert spec_lib.ModelSpec.from_dict(record["spec"]) == spec
    classifier = runtime.LiteRTClassifier(os.path.join(out_dir, "model_float16.tflite"))
    assert classifier.spec == spec and classifier.labels == spec.labels


def test_runtime_accepts_both_layouts_and_rejects_bad_input(trained, data):
    _, out_dir, _ = trained
    classifier = runtime.LiteRTClassifier(out_dir, num_threads=2)
    faces = _validation_uint8(data)[:5]
    with_channel = classifier.predict_probs(faces)
    without = classifier.predict_probs(faces[..., 0])
    np.testing.assert_array_equal(with_channel, without)
    assert classifier.predict(faces) == [
        classifier.spec.labels[i] for i in with_channel.argmax(-1)]
    assert classifier.predict_probs(faces[:0]).shape == (0, classifier.spec.num_classes)
    with pytest.raises(ValueError, match="expected faces of shape"):
        classifier.predict_probs(np.zeros((2, 5, 5), np.uint8))
    with pytest.raises(TypeError, match="uint8"):
        classifier.predict_probs(faces.astype(np.float32))
    with pytest.raises(FileNotFoundError, match="no TFLite model"):
        runtime.LiteRTClassifier(out_dir, variant="bfloat3")


def test_evaluate_export_matches_the_jax_evaluation(trained, loaded, data):
    workdir, out_dir, _ = trained
    module, variables, _, config = loaded
    jax_summary = evaluate_lib.evaluate_model(config, module, variables, "validation")
    lite = runtime.evaluate_export(out_dir, config, "validation")
    assert lite["num_examples"] == jax_summary["num_examples"]
    assert lite["confusion"] == jax_summary["confusion"]
    assert lite["loss"] == pytest.approx(jax_summary["loss"], rel=1e-4)
    bins = np.asarray(lite["calibration"]["bins"])  # Every face in one confidence bin.
    assert bins[:, 0].sum() == lite["num_examples"]
    assert bins[:, 2].sum() == np.trace(np.asarray(lite["confusion"]))
    assert 0.0 <= lite["calibration"]["ece"] <= 1.0


def test_one_load_reads_a_run_and_its_export(trained, loaded):
    """fer.loading.load: a workdir gives the Flax model, its export/ the LiteRT one and
    the run's config; both score through the same loop to the same confusion matrix."""
    workdir, out_dir, _ = trained
    run, export = loading.load(workdir), loading.load(out_dir)
    assert run.classifier is None and export.module is None
    assert export.classifier.spec == run.spec == loaded[2]
    assert export.config.to_dict() == run.config.to_dict()  # From the run beside export/.
    config = run.config
    scores = [evaluate_lib.evaluate(config, "validation", model.predictor())
              for model in (run, export)]
    assert scores[0]["confusion"] == scores[1]["confusion"]
    assert scores[0]["num_examples"] == scores[1]["num_examples"] == 200


def test_bad_requests_fail_clearly(tmp_path, loaded):
    module, variables, spec, _ = loaded
    images = np.zeros((4, *spec.input_shape), np.uint8)
    with pytest.raises(ValueError, match="variants"):
        tflite.export(module, variables, spec, str(tmp_path), variants=("bf16",),
                      validation_images=images)
    with pytest.raises(ValueError, match="validation images: expected"):
        tflite.export(module, variables, spec, str(tmp_path),
                      validation_images=np.zeros((4, 3, 3), np.uint8))
    with pytest.raises(ValueError, match="needs calibration images"):
        tflite.export(module, variables, spec, str(tmp_path), variants=("int8",),
                      validation_images=images)
    with pytest.raises(ValueError, match="validation labels: expected 4 integers"):
        tflite.export(module, variables, spec, str(tmp_path), validation_images=images,
                      validation_labels=np.zeros(3, np.int64))
    with pytest.raises(ValueError, match="validation labels: expected 0.."):
        tflite.export(module, variables, spec, str(tmp_path), validation_images=images,
                      validation_labels=np.full(4, len(spec.labels)))


def test_runtime_resizes_a_dynamic_batch_model(tmp_path, trained, loaded, data):
    """Models exported elsewhere with a polymorphic batch run in one invoke."""
    import tensorflow as tf
    from jax.experimental import jax2tf

    module, variables, spec, _ = loaded
    fn = tf.function(jax2tf.convert(tflite.probability_fn(module, variables),
                                    with_gradient=False, polymorphic_shapes=["(b, ...)"]),
                     autograph=False)
    cf = fn.get_concrete_function(tf.TensorSpec((None, *spec.input_shape), tf.float32))
    (tmp_path / "model.tflite").write_bytes(
        tf.lite.TFLiteConverter.from_concrete_functions([cf], fn).convert())
    spec.save(str(tmp_path))
    classifier = runtime.LiteRTClassifier(str(tmp_path))
    assert classifier._dynamic_batch  # pylint: disable=protected-access
    faces = _validation_uint8(data)[:7]
    fixed = runtime.LiteRTClassifier(trained[1])
    np.testing.assert_allclose(classifier.predict_probs(faces),
                               fixed.predict_probs(faces), atol=1e-5)
    assert classifier.predict_probs(faces[:3]).shape == (3, spec.num_classes)


def test_ship_copies_a_variant_with_its_labels_and_provenance(tmp_path, trained, data):
    from fer.export import ship

    workdir, out_dir, record = trained
    dest = tmp_path / "assets"
    shipped = ship.ship(out_dir, "float16", str(dest))
    assert shipped["bytes"] == os.path.getsize(dest / "model.tflite")
    assert shipped["export"] == record["variants"]["float16"]
    spec = spec_lib.ModelSpec.load(out_dir)
    assert (dest / "labels.txt").read_text().splitlines() == list(spec.labels)
    assert json.loads((dest / "model.json").read_text())["labels"] == list(spec.labels)
    # The shipped directory is a model directory every reader accepts as is.
    classifier = runtime.LiteRTClassifier(str(dest))
    faces = _validation_uint8(data)[:8]
    np.testing.assert_allclose(
        classifier.predict_probs(faces),
        runtime.LiteRTClassifier(out_dir, variant="float16").predict_probs(faces), atol=1e-6)


def test_ship_refuses_what_the_export_did_not_accept(tmp_path, trained):
    from fer.export import ship

    out_dir = trained[1]
    with pytest.raises(ValueError, match="not an accepted export"):
        ship.ship(out_dir, "int4", str(tmp_path / "a"))
    with pytest.raises(ValueError, match="budget"):
        ship.ship(out_dir, "float32", str(tmp_path / "b"), max_bytes=10)
    assert not (tmp_path / "b").exists()
    assert ship.main(["--export", str(tmp_path / "missing"), "--variant", "int8",
                      "--dest", str(tmp_path / "c")]) == 2


def test_recorded_params_come_from_the_run_or_the_shipped_record(tmp_path):
    run = tmp_path / "run"
    export_dir = run / "export"
    export_dir.mkdir(parents=True)
    assert runtime.recorded_params(str(export_dir)) is None
    (run / "report.json").write_text(json.dumps({"params": 1234}))
    assert runtime.recorded_params(str(export_dir)) == 1234
    assert runtime.recorded_params(str(export_dir / "model_float16.tflite")) == 1234
    shipped = tmp_path / "shipped"
    shipped.mkdir()
    (shipped / "shipped.json").write_text(json.dumps({"run": {"params": 99}}))
    assert runtime.recorded_params(str(shipped)) == 99


def test_refusal_reasons_at_the_limits():
    reference = {"accuracy": 0.85, "balanced_accuracy": 0.80}
    rule = dict(max_accuracy_drop=1.0, min_agreement=0.95)
    exactly_one_point = {"accuracy": 0.84, "balanced_accuracy": 0.79, "top1_agreement": 0.95}
    assert tflite.refusal_reasons(exactly_one_point, reference, **rule) == []
    balanced_only = {**exactly_one_point, "balanced_accuracy": 0.7899}
    assert [r.split(" ")[0] for r in tflite.refusal_reasons(balanced_only, reference, **rule)] \
        == ["balanced"]
    assert tflite.refusal_reasons({**exactly_one_point, "top1_agreement": 0.949}, None,
                                  **rule) == ["top-1 agreement 94.90% with float32, below the "
                                              "floor of 95.00%"]
