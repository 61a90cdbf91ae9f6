"""Every design: builds, runs under jit, and keeps the train/eval contract."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fer import models

SEED_DESIGNS = ("baseline", "baseline_bn", "xcao", "xcao2", "fractal",
                "inception_v3", "mobilenet_v1")
NUM_CLASSES = 8


def _rngs(seed: int, impl: str = "unsafe_rbg"):
    """Init keys. XLA's RngBitGenerator compiles ~3x faster on CPU than the
    default threefry, whose compile dominates these tests; the designs do not
    depend on the key type (test_threefry_keys_work checks the default)."""
    params, dropout = jax.random.split(jax.random.key(seed, impl=impl))
    return {"params": params, "dropout": dropout}


def _images(shape, batch=2):
    return jax.random.uniform(jax.random.key(42), (batch, *shape), jnp.float32)


@functools.partial(jax.jit, static_argnums=0)
def _init(model, rngs, x):
    return model.init(rngs, x, train=False)


@functools.partial(jax.jit, static_argnums=0)
def _eval(model, variables, x):
    return model.apply(variables, x, train=False, mutable=["batch_stats"])


@functools.partial(jax.jit, static_argnums=0)
def _train(model, variables, x, key):
    return model.apply(variables, x, train=True, rngs={"dropout": key},
                       mutable=["batch_stats"])


def _equal(a, b) -> list[bool]:
    return jax.tree.leaves(jax.tree.map(
        lambda u, v: bool(jnp.array_equal(u, v)), a, b))


def _check_logits(logits, batch):
    assert logits.shape == (batch, NUM_CLASSES) and logits.dtype == jnp.float32
    assert np.isfinite(np.asarray(logits)).all()
    np.testing.assert_allclose(jax.nn.softmax(logits).sum(-1), 1.0, rtol=1e-5)


def test_registry_has_every_design():
    names = models.list_models()
    assert set(SEED_DESIGNS) <= set(names)
    own = set(names) - set(SEED_DESIGNS)
    assert own, "at least one design of our own beyond the seed's"
    assert set(models.SEED_PARAMS) == set(SEED_DESIGNS)


def test_unknown_design_lists_known_names():
    with pytest.raises(ValueError, match="unknown design 'nope'") as e:
        models.create_model("nope", num_classes=8, input_shape=(48, 48, 1))
    for name in SEED_DESIGNS:
        assert name in str(e.value)


def test_register_twice_is_an_error():
    with pytest.raises(ValueError, match="registered twice"):
        models.register("baseline")(lambda **kw: None)


@pytest.mark.parametrize("shape", [(48, 48), (48, 48, 0), (48, 48, 1, 1)])
def test_bad_input_shape_is_an_error(shape):
    with pytest.raises(ValueError, match="input_shape"):
        models.create_model("baseline", num_classes=8, input_shape=shape)


def test_batch_of_the_wrong_shape_is_an_error():
    model = models.create_model("resnet_fer_tiny", num_classes=8,
                                input_shape=(48, 48, 1))
    with pytest.raises(ValueError, match=r"expected images of shape \(B, 48, 48, 1\)"):
        model.init(_rngs(0), jnp.zeros((1, 64, 64, 1)))
    with pytest.raises(ValueError, match="fer.spec.normalise"):
        model.init(_rngs(0), jnp.zeros((1, 48, 48, 1), jnp.uint8))


@pytest.mark.parametrize("name", models.list_models())
def test_design_contract_at_48(name):
    shape = (48, 48, 1)
    model = models.create_model(name, num_classes=NUM_CLASSES, input_shape=shape)
    # Same parameters, dropout switched on everywhere (some designs have none
    # by default, as in the seed): dropout must act in train mode only.
    dropout_model = models.create_model(name, num_classes=NUM_CLASSES,
                                        input_shape=shape, dropout_rate=0.5)
    x = _images(shape, batch=4)  # 4, not 2: BatchNorm on 2 logits is ~ +-1.
    variables = _init(model, _rngs(0), x)
    assert {a.dtype for a in jax.tree.leaves(variables)} == {jnp.dtype("float32")}
    assert all(_equal(variables, _init(model, _rngs(0), x))), "init not deterministic"
    assert not all(_equal(variables["params"], _init(model, _rngs(1), x)["params"]))

    # Eval needs no dropout key and repeats exactly even at rate 0.5.
    logits, eval_state = _eval(dropout_model, variables, x)
    _check_logits(logits, 4)
    np.testing.assert_array_equal(logits, _eval(dropout_model, variables, x)[0])
    train_a, train_state = _train(dropout_model, variables, x, jax.random.key(1))
    train_b, _ = _train(dropout_model, variables, x, jax.random.key(2))
    _check_logits(train_a, 4)
    assert np.abs(train_a - train_b).max() > 1e-3, "dropout inactive in train mode"

    if "batch_stats" in variables:
        assert all(_equal(variables["batch_stats"], eval_state["batch_stats"]))
        assert not any(_equal(variables["batch_stats"], train_state["batch_stats"])), (
            "some BatchNorm statistics were not updated in training")
    else:
        assert not jax.tree.leaves(train_state)
        assert not jax.tree.leaves(eval_state)


def test_threefry_keys_work():
    model = models.create_model("baseline", num_classes=NUM_CLASSES,
                                input_shape=(16, 16, 1))
    x = _images((16, 16, 1))
    variables = _init(model, _rngs(0, impl="threefry2x32"), x)
    assert not all(_equal(variables, _init(model, _rngs(1, impl="threefry2x32"), x)))
    _check_logits(_eval(model, variables, x)[0], 2)


@pytest.mark.parametrize("name", models.list_models())
def test_design_runs_at_224(name):
    shape = (224, 224, 1)
    model = models.create_model(name, num_classes=NUM_CLASSES, input_shape=shape)
    x = _images(shape, batch=1)
    rngs = _rngs(0)
    small = models.create_model(name, num_classes=NUM_CLASSES, input_shape=(48, 48, 1))
    shapes = jax.eval_shape(lambda r: model.init(r, x), rngs)
    small_shapes = jax.eval_shape(lambda r: small.init(r, _images((48, 48, 1), 1)), rngs)
    if jax.tree.map(np.shape, shapes) == jax.tree.map(np.shape, small_shapes):
        # Fully convolutional: the same variables serve every input size, so
        # the (slow to compile) init at 48 px is reused.
        variables = _init(small, rngs, _images((48, 48, 1), batch=4))
    else:
        variables = _init(model, rngs, x)
    # Train-mode behaviour (dropout, BatchNorm updates) does not depend on the
    # input size and is checked at 48 px; here the 224 px graph must run.
    logits, eval_state = _eval(model, variables, x)
    _check_logits(logits, 1)
    if "batch_stats" in variables:
        assert all(_equal(variables["batch_stats"], eval_state["batch_stats"]))


@pytest.mark.parametrize("name", models.list_models())
def test_bfloat16_compute_keeps_float32_params_and_logits(name):
    model = models.create_model(name, num_classes=NUM_CLASSES,
                                input_shape=(48, 48, 1), dtype=jnp.bfloat16)
    x = jax.ShapeDtypeStruct((1, 48, 48, 1), jnp.float32)
    variables = jax.eval_shape(lambda r, x: model.init(r, x), _rngs(0), x)
    assert {a.dtype for a in jax.tree.leaves(variables)} == {jnp.dtype("float32")}
    out = jax.eval_shape(lambda v, x: model.apply(v, x), variables, x)
    assert out.dtype == jnp.float32 and out.shape == (1, NUM_CLASSES)


def _count(name, shape, num_classes, **kwargs):
    model = models.create_model(name, num_classes=num_classes,
                                input_shape=shape, **kwargs)
    x = jax.ShapeDtypeStruct((1, *shape), jnp.float32)
    return models.count_params(
        jax.eval_shape(lambda r, x: model.init(r, x), _rngs(0), x))


@pytest.mark.parametrize("name", ["inception_v3", "mobilenet_v1"])
def test_reference_designs_match_keras_exactly(name):
    counts = _count(name, (224, 224, 3), 1000)
    assert counts["total"] == models.SEED_PARAMS[name]
    assert counts["trainable"] < counts["total"]


def test_baseline_bn_matches_the_seed_exactly():
    assert _count("baseline_bn", (224, 224, 1), 8)["total"] == 102_830_856


def test_baseline_count_by_hand():
    # 8x8x1 -> convs 32,32 -> pool 4x4 -> convs 64,64 -> pool 2x2x64 = 256.
    convs = (9 * 1 * 32 + 32) + (9 * 32 * 32 + 32) + (9 * 32 * 64 + 64) + (9 * 64 * 64 + 64)
    dense = 256 * 512 + 512 + 512 * 3 + 3
    assert _count("baseline", (8, 8, 1), 3) == {
        "trainable": convs + dense, "non_trainable": 0, "total": convs + dense}


def test_our_designs_fit_the_phone_budget():
    own = set(models.list_models()) - set(SEED_DESIGNS)
    for name in own:
        for size in (48, 112):
            assert _count(name, (size, size, 1), 8)["total"] <= 10_000_000, name


def test_resnet_fer_small_is_resnet_fer_less_one_last_block_and_ships():
    # Counted by hand: the last stage's second block (384 wide, stride 1, no projection)
    # is two bias-free 3x3 convolutions, each with a BatchNorm (scale and bias trained,
    # mean and variance not).
    small = _count("resnet_fer_small", (48, 48, 1), 8)
    full = _count("resnet_fer", (48, 48, 1), 8)
    w = 384
    block = {"trainable": 2 * (9 * w * w + 2 * w), "non_trainable": 2 * 2 * w}
    assert {k: full[k] - small[k] for k in block} == block
    # int8 weights take a byte each: under 5M parameters fits the 5 MB shipping budget.
    assert small["total"] < 5_000_000 < full["total"]
