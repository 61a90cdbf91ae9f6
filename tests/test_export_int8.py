"""int8 export of a BatchNorm that follows a ReLU (xcao, xcao2, baseline_bn).

The converter folds a BatchNorm into the convolution before it, but not one placed
after the ReLU. Flax computes that one as (x - mean) * a + bias: once converted, a
MUL whose output carries -mean * a, which for a rarely active channel (tiny
variance, large a) sets the int8 range of the whole tensor. The exporter computes
every inference BatchNorm as x * a + b instead (fer.export.tflite.probability_fn);
these tests build such a channel by hand in a small net and check that its int8
model is accepted by the accuracy rule only with that rewrite.
"""

import json
import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fer import labels as labels_lib
from fer import spec as spec_lib
from fer.export import runtime
from fer.export import tflite

SIZE = 12
CHANNELS = 8


class ReluThenBatchNorm(nn.Module):
    """conv -> ReLU -> BatchNorm (-> conv -> ReLU -> BatchNorm) -> dense, as in xcao."""

    num_classes: int

    @nn.compact
    def __call__(self, x, train: bool = False):
        for _ in range(2):
            x = nn.relu(nn.Conv(CHANNELS, (3, 3))(x))
            x = nn.BatchNorm(use_running_average=not train)(x)
        return nn.Dense(self.num_classes)(x.reshape((x.shape[0], -1)))


@pytest.fixture(scope="module")
def model():
    """(module, variables, spec, calibration faces, validation faces, their labels).

    The net's first BatchNorm has one dead channel with a tiny running variance and a
    mean away from its values (a = 100), the pattern of trained xcao runs. The labels
    are the float model's own answers, on faces it answers with a clear margin (top
    two logits more than 1 apart), so int8 rounding alone flips none of them.
    """
    spec = spec_lib.ModelSpec.for_label_set("relu_bn_test", labels_lib.FERPLUS.name,
                                            input_shape=(SIZE, SIZE, 1))
    module = ReluThenBatchNorm(spec.num_classes)
    rng = np.random.default_rng(0)
    faces = rng.integers(0, 256, (400, SIZE, SIZE, 1), dtype=np.uint8)
    x = spec_lib.normalise(faces)
    variables = module.init(jax.random.PRNGKey(0), x[:1])
    params = jax.tree_util.tree_map(np.array, variables["params"])  # Writable copies.
    params["Conv_0"]["kernel"][..., 0] = 0.0  # Channel 0 never fires...
    params["Conv_0"]["bias"][0] = 0.0
    hidden = nn.relu(nn.Conv(CHANNELS, (3, 3)).apply({"params": params["Conv_0"]}, x))
    stats = {"BatchNorm_0": {"mean": np.array(hidden.mean((0, 1, 2))),
                             "var": np.array(hidden.var((0, 1, 2))) + 1e-3},
             "BatchNorm_1": {"mean": np.zeros(CHANNELS, np.float32),
                             "var": np.ones(CHANNELS, np.float32)}}
    # ...its running statistics say mean 0.5, variance 1e-4 (a = 100), and its
    # bias brings (0 - 0.5) * 100 back to 0: the BatchNorm's output is 0 there.
    stats["BatchNorm_0"]["mean"][0], stats["BatchNorm_0"]["var"][0] = 0.5, 1e-4
    params["BatchNorm_0"]["bias"][0] = 50.0
    params["Dense_0"]["kernel"] *= 10.0
    variables = {"params": params, "batch_stats": stats}
    logits = np.sort(np.asarray(module.apply(variables, x, train=False)), -1)
    clear = np.nonzero(logits[200:, -1] - logits[200:, -2] > 1.0)[0] + 200
    labels = np.asarray(module.apply(variables, x[clear], train=False)).argmax(-1)
    return module, variables, spec, faces[:200], faces[clear], labels


def _export(tmp_path, model, **kwargs):
    module, variables, spec, calibration, faces, labels = model
    return tflite.export(module, variables, spec, str(tmp_path),
                         variants=("float32", "int8"), calibration_images=calibration,
                         validation_images=faces, validation_labels=labels, **kwargs)


def test_a_batch_norm_after_relu_quantizes_to_int8_as_one_affine_op(tmp_path, model):
    record = _export(tmp_path, model)
    assert record["batch_norm"] == {"affine": True, "as_depthwise": 2}
    int8 = record["variants"]["int8"]
    assert int8["top1_agreement"] >= 0.99 and int8["num_validation"] > 150
    assert int8["accuracy_drop_points"] <= tflite.MAX_ACCURACY_DROP
    assert "SUB" not in int8["ops"] and "MUL" not in int8["ops"]
    assert int8["float_ops"] == []  # Still full integer...
    classifier = runtime.LiteRTClassifier(str(tmp_path), variant="int8")
    assert classifier.input_dtype == np.int8  # ...input included.
    # The float32 file, by contrast, computes every op in float.
    assert "SOFTMAX" in tflite.float_ops(str(tmp_path / "model.tflite"))


def test_the_rewritten_float32_graph_equals_jax(tmp_path, model):
    module, variables, _, _, faces, _ = model
    _export(tmp_path, model)
    expected = np.asarray(jax.nn.softmax(
        module.apply(variables, spec_lib.normalise(faces), train=False)))
    got = runtime.LiteRTClassifier(str(tmp_path)).predict_probs(faces)
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_flax_batch_norm_is_what_int8_refuses(tmp_path, model):
    """The same net converted with Flax's (x - mean) * a + bias loses the accuracy rule."""
    with pytest.raises(tflite.QuantizationRefused, match="int8 model refused"):
        _export(tmp_path, model, affine_batch_norm=False)
    record = json.loads((tmp_path / "export.json").read_text())
    assert record["refused"]["int8"]["top1_agreement"] < 0.9
    assert record["batch_norm"] == {"affine": False}
    assert "SUB" in record["variants"]["float32"]["ops"]
    assert not os.path.exists(tmp_path / "model_int8.tflite")


def test_a_batch_norm_after_a_convolution_still_folds_into_it(tmp_path):
    """conv -> BatchNorm -> ReLU (resnet_fer's ConvBN): the multiply-add joins the conv."""

    class ConvBatchNorm(nn.Module):
        @nn.compact
        def __call__(self, x, train: bool = False):
            x = nn.relu(nn.BatchNorm(use_running_average=not train)(nn.Conv(4, (3, 3))(x)))
            return nn.Dense(8)(x.reshape((x.shape[0], -1)))

    spec = spec_lib.ModelSpec.for_label_set("conv_bn_test", labels_lib.FERPLUS.name,
                                            input_shape=(SIZE, SIZE, 1))
    faces = np.random.default_rng(1).integers(0, 256, (40, SIZE, SIZE, 1), dtype=np.uint8)
    module = ConvBatchNorm()
    variables = module.init(jax.random.PRNGKey(0), spec_lib.normalise(faces[:1]))
    variables = {**variables, "batch_stats": {"BatchNorm_0": {
        "mean": jnp.full(4, 0.1), "var": jnp.full(4, 2.0)}}}
    record = tflite.export(module, variables, spec, str(tmp_path), validation_images=faces)
    assert record["batch_norm"] == {"affine": True, "into_linear": 1}
    ops = record["variants"]["float32"]["ops"]  # A one-channel conv is DEPTHWISE_CONV_2D.
    assert not set(ops) & {"SUB", "MUL", "ADD"}, ops
    assert record["variants"]["float32"]["max_abs_delta_p"] < 1e-5


def test_an_ensemble_is_exported_as_the_mean_of_its_members_logits(tmp_path, model):
    """log_softmax(z) is z minus one number per face: the mean of logits gives the same
    probabilities without REDUCE_MAX/EXP/LOG, whose int8 scale TFLite ties to the
    logits' (a mirrored, prior-corrected resnet_fer_tiny fell to 4.7 % agreement)."""
    from fer.models import ensemble as ensemble_lib

    module, variables, spec, calibration, faces, _ = model
    shift = tuple(float(v) for v in np.linspace(-1.0, 1.0, spec.num_classes))
    ensemble = ensemble_lib.Ensemble(members=(module,), mirror=True, logit_shift=shift)
    both = ensemble_lib.combine_variables([variables])
    expected = np.asarray(jax.nn.softmax(ensemble.apply(both, spec_lib.normalise(faces))))
    labels = expected.argmax(-1)
    record = tflite.export(ensemble, both, spec, str(tmp_path / "logits"),
                           variants=("float32", "int8"), calibration_images=calibration,
                           validation_images=faces, validation_labels=labels,
                           max_accuracy_drop=100.0,  # The shift narrows margins: floor only.
                           int8_combination="int8")
    assert record["ensemble_combination"] == "mean of logits"
    for variant in ("float32", "int8"):
        ops = set(record["variants"][variant]["ops"])
        assert not ops & {"LOG", "EXP", "REDUCE_MAX"}, ops
        assert {"REVERSE_V2", "CONCATENATION", "SOFTMAX"} <= ops  # Mirror and shift kept.
    got = runtime.LiteRTClassifier(str(tmp_path / "logits")).predict_probs(faces)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert record["variants"]["int8"]["top1_agreement"] >= 0.95
    assert record["variants"]["int8"]["float_ops"] == []
    assert record["variants"]["int8"]["combination"] == "int8"
    kept = tflite.export(ensemble, both, spec, str(tmp_path / "log_probs"),
                         validation_images=faces, ensemble_logits=False)
    assert kept["ensemble_combination"] == "mean of log-probabilities"
    assert {"LOG", "EXP", "REDUCE_MAX"} <= set(kept["variants"]["float32"]["ops"])


def test_an_ensembles_int8_keeps_its_members_integer_and_its_combination_float(tmp_path,
                                                                               model):
    """The default int8 of an ensemble: every member full-integer, the mean over members
    and views, the prior shift and the softmax in float (full integer rounds them to
    int8 steps, and ties then go to the lower class index: research/int8)."""
    from fer.models import ensemble as ensemble_lib

    module, variables, spec, calibration, faces, _ = model
    ensemble = ensemble_lib.Ensemble(members=(module, module), mirror=True,
                                     logit_shift=(0.5,) * spec.num_classes)
    both = ensemble_lib.combine_variables([variables, variables])
    expected = np.asarray(jax.nn.softmax(ensemble.apply(both, spec_lib.normalise(faces))))
    record = tflite.export(ensemble, both, spec, str(tmp_path), variants=("int8",),
                           calibration_images=calibration, validation_images=faces,
                           validation_labels=expected.argmax(-1))
    int8 = record["variants"]["int8"]
    assert int8["combination"] == "float"
    assert "SOFTMAX" in int8["float_ops"] and "SUM" in int8["float_ops"], int8["float_ops"]
    assert not {"CONV_2D", "FULLY_CONNECTED", "REVERSE_V2"} & set(int8["float_ops"])
    classifier = runtime.LiteRTClassifier(str(tmp_path), variant="int8")
    interpreter = runtime.make_interpreter(str(tmp_path / "model_int8.tflite"))
    assert interpreter.get_input_details()[0]["dtype"] == np.int8  # An int8 interface.
    assert interpreter.get_output_details()[0]["dtype"] == np.int8
    assert (classifier.predict_probs(faces).argmax(-1) == expected.argmax(-1)).mean() >= 0.95


def _graph(scope: str) -> bytes:
    import tensorflow as tf

    weights = tf.constant(np.arange(12, dtype=np.float32).reshape(4, 3) / 10)

    @tf.function(input_signature=[tf.TensorSpec((1, 4), tf.float32)])
    def fn(x):
        with tf.name_scope(scope):
            logits = tf.nn.relu(tf.matmul(x, weights) + 1.0)
        return tf.nn.softmax(logits * 2.0)

    return tf.lite.TFLiteConverter.from_concrete_functions(
        [fn.get_concrete_function()], fn).convert()


def test_combination_nodes_are_the_ops_after_the_last_member():
    nodes = tflite.combination_nodes(_graph("members_0"))
    assert nodes and not any("members_" in n for n in nodes), nodes
    with pytest.raises(ValueError, match="no ensemble member"):
        tflite.combination_nodes(_graph("head"))
