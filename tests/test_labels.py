"""The label order is the one fact a model silently depends on: pin it."""

import numpy as np
import pytest

from fer import labels, spec


def test_published_orders():
    assert labels.FER2013.labels == (
        "angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
    assert labels.FERPLUS.labels == (
        "neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear",
        "contempt")
    assert labels.AFFECTNET.labels == (
        "neutral", "happy", "sad", "surprise", "fear", "disgust", "anger", "contempt")
    assert labels.FERPLUS_VOTE_COLUMNS[-2:] == ("unknown", "NF")


def test_fer2013_to_affectnet_mapping():
    # angry->anger(6), disgust(5), fear(4), happy(1), sad(2), surprise(3), neutral(0)
    np.testing.assert_array_equal(
        labels.mapping(labels.FER2013, labels.AFFECTNET), [6, 5, 4, 1, 2, 3, 0])


def test_ferplus_to_fer2013_drops_contempt():
    m = labels.mapping(labels.FERPLUS, labels.FER2013)
    np.testing.assert_array_equal(m, [6, 3, 5, 4, 0, 1, 2, -1])


def test_mappings_round_trip_by_name():
    for src in labels.LABEL_SETS.values():
        for dst in labels.LABEL_SETS.values():
            m = labels.mapping(src, dst)
            for i, j in enumerate(m):
                if j >= 0:
                    assert src.canonical[i] == dst.canonical[j]
                else:
                    assert src.canonical[i] not in dst.canonical


def test_remap_and_errors():
    np.testing.assert_array_equal(
        labels.remap(np.array([3, 7]), labels.FERPLUS, labels.AFFECTNET), [2, 7])
    with pytest.raises(ValueError):
        labels.remap(np.array([8]), labels.FERPLUS, labels.AFFECTNET)
    with pytest.raises(ValueError, match="unknown expression"):
        labels.canonical("bored")
    with pytest.raises(ValueError, match="not in label set"):
        labels.FER2013.index("contempt")
    assert labels.FERPLUS.index("Happy") == 1
    assert labels.FER2013.index("anger") == 0


def test_remap_probs_sums_by_name_and_renormalises_what_dst_lacks():
    # FER+ order: neutral, happiness, surprise, sadness, anger, disgust, fear, contempt.
    p = np.array([[0.1, 0.2, 0.1, 0.1, 0.1, 0.1, 0.1, 0.2],
                  [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.5, 0.5]])
    q = labels.remap_probs(p, labels.FERPLUS, labels.FER2013)
    # FER2013 order: angry, disgust, fear, happy, sad, surprise, neutral; contempt dropped.
    np.testing.assert_allclose(q[0], [0.125, 0.125, 0.125, 0.25, 0.125, 0.125, 0.125])
    np.testing.assert_allclose(q[1], [0, 0, 1, 0, 0, 0, 0])
    # Into a larger set the missing class gets nothing.
    r = labels.remap_probs(q, labels.FER2013, labels.AFFECTNET)
    assert r[0, labels.AFFECTNET.index("contempt")] == 0 and np.allclose(r.sum(1), 1)
    with pytest.raises(ValueError, match=r"\(N, 8\)"):
        labels.remap_probs(q, labels.FERPLUS, labels.FER2013)
    with pytest.raises(ValueError, match="no probability"):
        labels.remap_probs(np.eye(8)[[7]], labels.FERPLUS, labels.FER2013)


def test_every_label_has_an_emoji():
    assert set(labels.CANONICAL) <= set(labels.EMOJI)


def test_spec_round_trip(tmp_path):
    s = spec.ModelSpec.for_label_set("xcao2", "ferplus")
    s.save(str(tmp_path))
    loaded = spec.ModelSpec.load(str(tmp_path))
    assert loaded == s
    assert loaded.canonical_labels[1] == "happy"
    with pytest.raises(ValueError, match="do not match"):
        spec.ModelSpec(design="x", label_set="fer2013", labels=labels.FERPLUS.labels)
    with pytest.raises(FileNotFoundError):
        spec.ModelSpec.load(str(tmp_path / "missing"))


def test_normalise_range():
    x = spec.normalise(np.array([0, 255], dtype=np.uint8))
    assert x.dtype == np.float32 and x.tolist() == [0.0, 1.0]
