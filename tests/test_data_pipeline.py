"""Preprocessing, augmentation, the demo set and the grain input pipeline (no TFDS)."""

from __future__ import annotations

import hashlib
import itertools

import cv2
import numpy as np
import pytest

import configs.default as default_config
from fer import labels as labels_lib
from fer import spec
from fer.data import augment as augment_lib
from fer.data import demo_faces as demo
from fer.data import input_pipeline as ip
from fer.data import preprocessing
from fer.data import sources


def demo_config(**overrides):
    config = default_config.get_config()
    config.dataset = "demo"
    for key, value in overrides.items():
        config[key] = value
    return config


def face(seed: int = 0) -> np.ndarray:
    """A gray test image with structure (a gradient and a bright disc) and noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:48, 0:48]
    image = 40 + 2 * xx + rng.normal(0, 5, (48, 48))
    image[(yy - 24) ** 2 + (xx - 20) ** 2 < 100] += 80
    return np.clip(image, 0, 255).astype(np.uint8)


# ----------------------------------------------------------------------------
# Preprocessing.

def test_equalize_flattens_the_histogram():
    dim = (face() // 4 + 60).astype(np.uint8)  # Low contrast.
    out = preprocessing.equalize(dim)
    assert out.dtype == np.uint8 and out.shape == dim.shape
    assert out.max() - out.min() > 2 * (dim.max() - dim.min())
    np.testing.assert_array_equal(out, cv2.equalizeHist(dim))
    # Keeps a channel axis when given one.
    assert preprocessing.equalize(dim[..., None]).shape == (48, 48, 1)


def test_difference_of_gaussians_keeps_edges_not_flat_shading():
    ramp = np.tile(np.arange(48, dtype=np.uint8) * 5, (48, 1))  # Smooth: no contours.
    edge = np.zeros((48, 48), np.uint8)
    edge[:, 24:] = 200
    dog_ramp = preprocessing.difference_of_gaussians(ramp).astype(np.float32)
    dog_edge = preprocessing.difference_of_gaussians(edge).astype(np.float32)
    # Away from the border, a linear ramp band-passes to a constant; a step does not.
    assert dog_ramp[8:-8, 8:-8].std() < 2.0
    assert dog_edge[:, 20:28].std() > 40.0
    assert (preprocessing.difference_of_gaussians(np.full((8, 8), 7, np.uint8)) == 128).all()


def test_gamma_lightens_below_one_and_matches_the_formula():
    image = np.arange(256, dtype=np.uint8).reshape(16, 16)
    out = preprocessing.gamma(image)  # The seed's 0.75.
    expected = np.round(255 * (image / 255.0) ** 0.75).astype(np.uint8)
    np.testing.assert_array_equal(out, expected)
    assert (out >= image).all() and out[0, 0] == 0 and out[-1, -1] == 255
    assert (preprocessing.gamma(image, 1.5) <= image).all()
    with pytest.raises(ValueError):
        preprocessing.gamma(image, 0.0)


def test_resize_and_apply():
    image = face()
    assert preprocessing.resize(image, 98).shape == (98, 98)
    assert preprocessing.resize(image[..., None], 24).shape == (24, 24, 1)
    assert preprocessing.resize(image, 48) is image
    for name in preprocessing.NAMES:
        assert preprocessing.apply(name, image).shape == image.shape
    np.testing.assert_array_equal(preprocessing.apply("histeq", image),
                                  preprocessing.equalize(image))
    np.testing.assert_array_equal(preprocessing.apply("none", image), image)
    with pytest.raises(ValueError, match="unknown preprocessing"):
        preprocessing.apply("sharpen", image)
    with pytest.raises(TypeError):
        preprocessing.equalize(image.astype(np.float32))


def test_augment_changes_pixels_reproducibly_and_stays_in_range():
    image = preprocessing.resize(face(), 48).astype(np.float32) / 255
    options = augment_lib.AugmentOptions.from_config(default_config.get_config())
    a = augment_lib.augment(image, np.random.default_rng(1), options)
    b = augment_lib.augment(image, np.random.default_rng(1), options)
    c = augment_lib.augment(image, np.random.default_rng(2), options)
    np.testing.assert_array_equal(a, b)
    assert a.shape == image.shape and a.dtype == np.float32
    assert 0.0 <= a.min() and a.max() <= 1.0
    assert np.abs(a - image).mean() > 0.005 and np.abs(a - c).mean() > 0.005
    # Small changes: the augmented image still resembles the original.
    assert np.corrcoef(a.ravel(), image.ravel())[0, 1] > 0.5
    # Resizing inside the warp: the same picture as resizing first.
    big = augment_lib.augment(image, np.random.default_rng(1), options, output_size=96)
    assert big.shape == (96, 96)
    shrunk = cv2.resize(big, (48, 48), interpolation=cv2.INTER_AREA)
    assert np.corrcoef(shrunk.ravel(), a.ravel())[0, 1] > 0.9
    still = augment_lib.augment(image, np.random.default_rng(1), augment_lib.AugmentOptions(
        flip=False, max_shift=0, max_rotation=0, max_scale=0, noise_std=0), output_size=96)
    np.testing.assert_allclose(still[2:-2, 2:-2], cv2.resize(image, (96, 96))[2:-2, 2:-2],
                               atol=1e-5)  # Borders: reflected here, replicated by resize.


# ----------------------------------------------------------------------------
# The demo set.

def test_demo_is_deterministic_stratified_and_uses_ferplus_labels():
    train = demo.load_split("train")
    assert train["image"].shape == (demo.SPLIT_SIZES["train"], 48, 48, 1)
    assert train["image"].dtype == np.uint8
    counts = np.bincount(train["label"], minlength=8)
    np.testing.assert_allclose(counts / counts.sum(), demo.CLASS_SHARES / demo.CLASS_SHARES.sum(),
                               atol=0.002)
    # Drawn afresh, the same pixels (no state between calls besides the cache).
    demo.load_split.cache_clear()
    again = demo.load_split("train")
    assert hashlib.sha1(again["image"].tobytes()).digest() == hashlib.sha1(
        train["image"].tobytes()).digest()
    assert ip.get_dataset_info(demo_config()).label_set == labels_lib.FERPLUS
    # Votes: the drawn class keeps the plurality, and the majority FER+ scores by.
    np.testing.assert_array_equal(sources.ferplus_plurality(train["votes"]), train["label"])
    np.testing.assert_array_equal(sources.ferplus_majority(train["votes"]), train["label"])
    # Images of one class are not all alike (jitter, lighting, noise).
    happy = train["image"][train["label"] == 1].astype(np.float32)
    assert happy.std(axis=0).mean() > 20


def test_demo_classes_are_learnable_by_a_linear_model():
    """Softmax regression on DoG features far beats chance: a CNN has signal to find."""
    train, val = demo.load_split("train"), demo.load_split("validation")

    def features(images):
        x = np.stack([preprocessing.resize(preprocessing.difference_of_gaussians(
            im[..., 0]), 24).ravel() for im in images]).astype(np.float32) / 255
        return x - x.mean(axis=1, keepdims=True)

    x, y, xv = features(train["image"]), train["label"], features(val["image"])
    w, b, onehot = np.zeros((x.shape[1], 8), np.float32), np.zeros(8, np.float32), np.eye(8)[y]
    for _ in range(150):
        z = x @ w + b
        p = np.exp(z - z.max(axis=1, keepdims=True))
        g = (p / p.sum(axis=1, keepdims=True) - onehot) / len(x)
        w -= 2.0 * x.T @ g
        b -= 2.0 * g.sum(axis=0)
    accuracy = ((xv @ w + b).argmax(axis=1) == val["label"]).mean()
    assert accuracy > 0.6, accuracy  # Chance is 1/8 (0.22 for the largest class).


# ----------------------------------------------------------------------------
# The pipeline.

def collect(config, split, limit=None, **kwargs):
    return list(itertools.islice(ip.create_split(config, split, **kwargs), limit))


def test_batches_follow_the_contract():
    config = demo_config(image_size=32, channels=3)
    batch = next(iter(ip.create_split(config, "train", train=True, batch_size=16, seed=0,
                                      shard_index=0, shard_count=1)))
    assert batch["image"].shape == (16, 32, 32, 3) and batch["image"].dtype == np.float32
    assert 0.0 <= batch["image"].min() and batch["image"].max() <= 1.0
    assert batch["label"].dtype == np.int32 and batch["label"].shape == (16,)
    assert batch["target"].shape == (16, 8) and batch["target"].dtype == np.float32
    np.testing.assert_array_equal(batch["target"].argmax(1), batch["label"])
    np.testing.assert_array_equal(batch["mask"], np.ones(16, np.float32))
    np.testing.assert_array_equal(batch["image"][..., 0], batch["image"][..., 2])


def test_training_epochs_are_a_function_of_seed_and_epoch():
    config = demo_config(augment=True)
    kw = dict(train=True, batch_size=64, shard_index=0, shard_count=1)
    first = collect(config, "train", seed=3, epoch=1, limit=5, **kw)
    again = collect(config, "train", seed=3, epoch=1, limit=5, **kw)
    for a, b in zip(first, again):
        for key in a:
            np.testing.assert_array_equal(a[key], b[key])
    other_epoch = collect(config, "train", seed=3, epoch=2, limit=1, **kw)[0]
    other_seed = collect(config, "train", seed=4, epoch=1, limit=1, **kw)[0]
    assert not np.array_equal(first[0]["label"], other_epoch["label"])
    assert not np.array_equal(first[0]["label"], other_seed["label"])


def test_augmentation_strengths_come_from_the_config():
    kw = dict(train=True, batch_size=32, seed=0, epoch=1, limit=1, shard_index=0,
              shard_count=1)
    plain = collect(demo_config(augment=False), "train", **kw)[0]["image"]
    default = collect(demo_config(augment=True), "train", **kw)[0]["image"]
    still = dict(augment=True, augment_flip=False, augment_max_shift=0.0,
                 augment_max_rotation=0.0, augment_max_scale=0.0)
    none = collect(demo_config(**still, augment_noise_std=0.0), "train", **kw)[0]["image"]
    noisy = collect(demo_config(**still, augment_noise_std=0.1), "train", **kw)[0]["image"]
    assert np.abs(default - plain).mean() > 0.01
    np.testing.assert_allclose(none, plain, atol=1e-5)  # Zero strengths: an identity warp.
    # Gaussian noise of std 0.1: a mean absolute change of 0.08, less where clipped to [0, 1].
    assert 0.05 < np.abs(noisy - plain).mean() < 0.085


def test_a_training_epoch_drops_the_remainder_and_sees_each_example_once():
    config = demo_config()
    batches = collect(config, "train", train=True, batch_size=300, seed=0,
                      shard_index=0, shard_count=1)
    n = demo.SPLIT_SIZES["train"]
    assert len(batches) == n // 300
    labels = np.concatenate([b["label"] for b in batches])
    full = np.bincount(demo.load_split("train")["label"], minlength=8)
    assert (np.bincount(labels, minlength=8) <= full).all()  # No repeats beyond the data.


def test_shards_split_an_epoch_without_overlap():
    config = demo_config()
    keys = []
    for shard in range(2):
        batches = collect(config, "train", train=True, batch_size=100, seed=0,
                          shard_index=shard, shard_count=2)
        assert len(batches) == demo.SPLIT_SIZES["train"] // 2 // 100
        keys.append({hashlib.sha1(im.tobytes()).hexdigest()
                     for b in batches for im in b["image"]})
    assert not keys[0] & keys[1]


@pytest.mark.parametrize("shard_count", [1, 3])
def test_evaluation_covers_every_example_once_with_padding(shard_count):
    config = demo_config()
    n, batch_size = demo.SPLIT_SIZES["validation"], 100
    expected = {}
    for image, label in zip(demo.load_split("validation")["image"],
                            demo.load_split("validation")["label"]):
        key = hashlib.sha1(spec.normalise(image[..., 0]).tobytes()).hexdigest()
        expected[key] = expected.get(key, 0) + 1
    seen, lengths = {}, []
    for shard in range(shard_count):
        batches = collect(config, "validation", train=False, batch_size=batch_size, seed=0,
                          shard_index=shard, shard_count=shard_count)
        lengths.append(len(batches))
        for batch in batches:
            assert batch["image"].shape[0] == batch_size
            for image, mask in zip(batch["image"], batch["mask"]):
                if mask:
                    key = hashlib.sha1(image[..., 0].tobytes()).hexdigest()
                    seen[key] = seen.get(key, 0) + 1
                else:
                    assert not image.any()
    assert seen == expected and sum(seen.values()) == n
    assert len(set(lengths)) == 1  # Every process runs the same number of eval steps.


def test_eval_order_is_file_order_and_not_augmented():
    config = demo_config(augment=True)
    batch = collect(config, "validation", train=False, batch_size=8, seed=5,
                    shard_index=0, shard_count=1)[0]
    np.testing.assert_array_equal(batch["label"], demo.load_split("validation")["label"][:8])
    np.testing.assert_allclose(batch["image"][..., 0],
                               demo.load_split("validation")["image"][:8, ..., 0] / 255.0,
                               atol=1e-6)


def test_balanced_sampling_roughly_balances_classes():
    config = demo_config(balanced_sampling=True)
    batches = collect(config, "train", train=True, batch_size=200, seed=0,
                      shard_index=0, shard_count=1)
    counts = np.bincount(np.concatenate([b["label"] for b in batches]), minlength=8)
    share = counts / counts.sum()
    assert np.abs(share - 1 / 8).max() < 0.035, share
    plain = collect(demo_config(), "train", train=True, batch_size=200, seed=0,
                    shard_index=0, shard_count=1)
    plain_share = np.bincount(np.concatenate([b["label"] for b in plain]), minlength=8)
    assert plain_share.max() / plain_share.min() > 3  # The demo set is imbalanced.


def test_probability_mode_uses_the_vote_distribution():
    config = demo_config(label_mode="probability")
    batch = collect(config, "train", train=True, batch_size=64, seed=0,
                    shard_index=0, shard_count=1)[0]
    np.testing.assert_allclose(batch["target"].sum(1), 1.0, atol=1e-6)
    assert (batch["target"].max(1) < 1).any()  # Some raters disagreed.
    np.testing.assert_array_equal(batch["target"].argmax(1), batch["label"])


def test_preprocessing_variant_reaches_the_batches():
    plain = collect(demo_config(), "validation", train=False, batch_size=4, seed=0,
                    shard_index=0, shard_count=1)[0]["image"]
    eq = collect(demo_config(preprocessing="equalize"), "validation", train=False,
                 batch_size=4, seed=0, shard_index=0, shard_count=1)[0]["image"]
    raw = demo.load_split("validation")["image"][0, ..., 0]
    np.testing.assert_allclose(eq[0, ..., 0], preprocessing.equalize(raw) / 255.0, atol=1e-6)
    assert not np.allclose(plain, eq)


def test_class_weights():
    weights = ip.class_weights(np.array([100, 50, 25, 0]))
    np.testing.assert_allclose(weights[:3].mean(), 1.0, rtol=1e-6)
    np.testing.assert_allclose(weights[:3] * [100, 50, 25], weights[0] * 100, rtol=1e-6)
    assert weights[3] == 0
    with pytest.raises(ValueError):
        ip.class_weights(np.array([0, 0]))
    root = ip.class_weights(np.array([100, 25]), power=0.5)
    np.testing.assert_allclose(root, [2 / 3, 4 / 3], rtol=1e-6)
    np.testing.assert_allclose(ip.class_weights(np.array([100, 25]), power=0), [1, 1])


def test_unknown_dataset_and_split_are_clear_errors():
    with pytest.raises(ValueError, match="unknown dataset"):
        ip.get_dataset_info(demo_config(dataset="mnist"))
    with pytest.raises(ValueError, match="no split 'holdout'"):
        next(iter(ip.create_split(demo_config(), "holdout", train=False, batch_size=4,
                                  seed=0, shard_index=0, shard_count=1)))


def test_two_workers_give_the_same_batches_as_none():
    """Order and augmentation depend on (seed, epoch) only, not on the worker count."""
    config = demo_config(augment=True)
    kw = dict(train=True, batch_size=128, seed=1, epoch=0, shard_index=0, shard_count=1)
    in_process = collect(config, "train", **kw)
    config.num_workers = 2
    workers = collect(config, "train", **kw)
    assert len(workers) == len(in_process) == demo.SPLIT_SIZES["train"] // 128
    for a, b in zip(in_process, workers):
        np.testing.assert_array_equal(a["image"], b["image"])
        np.testing.assert_array_equal(a["label"], b["label"])


def _equal_batches(a, b) -> bool:
    return len(a) == len(b) and all(
        x.keys() == y.keys() and all(np.array_equal(x[k], y[k]) for k in x)
        for x, y in zip(a, b))


def test_the_training_iterator_runs_the_epochs_back_to_back():
    """One iterator for a run: epoch e's batches are create_split's for epoch e."""
    config = demo_config(augment=True, balanced_sampling=True)
    kw = dict(batch_size=32, seed=2, steps_per_epoch=3, shard_index=0, shard_count=1)
    it = ip.create_train_iterator(config, "train", num_epochs=2, **kw)
    stream = list(it)
    epochs = [collect(config, "train", train=True, epoch=e, **kw) for e in (0, 1)]
    assert _equal_batches(stream, epochs[0] + epochs[1])
    assert not np.array_equal(epochs[0][0]["label"], epochs[1][0]["label"])


@pytest.mark.parametrize("workers", [0, 2])
def test_the_training_iterator_resumes_mid_epoch_from_its_state(workers):
    config = demo_config(augment=True, num_workers=workers)
    kw = dict(batch_size=32, seed=1, steps_per_epoch=4, num_epochs=2, shard_index=0,
              shard_count=1)
    it = ip.create_train_iterator(config, "train", **kw)
    for _ in range(3):
        next(it)
    state = it.get_state()
    rest = list(it)  # Steps 3..7: across the epoch boundary.
    resumed = ip.create_train_iterator(config, "train", **kw)
    resumed.set_state(state)
    assert len(rest) == 5 and _equal_batches(list(resumed), rest)
    assert _equal_batches(list(ip.create_train_iterator(config, "train", start=3, **kw)),
                          rest)
    for iterator in (it, resumed):
        iterator.close()


def test_default_shard_is_this_jax_process():
    config = demo_config()
    implicit = next(iter(ip.create_split(config, "validation", train=False, batch_size=8,
                                         seed=0)))
    explicit = next(iter(ip.create_split(config, "validation", train=False, batch_size=8,
                                         seed=0, shard_index=0, shard_count=1)))
    np.testing.assert_array_equal(implicit["image"], explicit["image"])
