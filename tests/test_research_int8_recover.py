"""research.int8.recover: an ensemble's members rebuilt from its dynamic-range TFLite file.

Two resnet_fer_tiny members (stem stride 1 and 2) with BatchNorms far from the identity
are exported as make_ensemble exports them; the members read back from the file, as
run folders, must compute what the original ensemble computes up to the int8 rounding
of the weights.
"""

import jax
import numpy as np

from fer import labels as labels_lib
from fer import spec as spec_lib
from fer.export import tflite
from fer.models import ensemble as ensemble_lib
from fer.training import checkpoint as checkpoint_lib
from research.int8 import recover


def _member(stride: int, seed: int, spec):
    from configs import resnet_fer
    from fer.training import state as state_lib

    config = resnet_fer.get_config(f"size=tiny,data=ferplus,stride={stride}")
    module = state_lib.create_model(config, spec.num_classes)
    variables = module.init(jax.random.PRNGKey(seed), np.zeros((1, 48, 48, 1), np.float32))
    rng = np.random.default_rng(seed)

    def perturb(path, leaf):
        name = path[-1].key
        if name == "scale":
            return rng.uniform(0.5, 1.5, leaf.shape).astype(np.float32)
        if name in ("bias", "mean"):
            return rng.normal(0, 0.2, leaf.shape).astype(np.float32)
        if name == "var":
            return rng.uniform(0.5, 2.0, leaf.shape).astype(np.float32)
        if path[0].key == "params" and path[1].key == "head" and name == "kernel":
            return np.asarray(leaf) * 20.0  # Confident answers: a wrong weight shows.
        return np.asarray(leaf)

    return module, jax.tree_util.tree_map_with_path(perturb, dict(variables))


def test_recovered_members_compute_what_the_shipped_file_was_made_from(tmp_path):
    spec = spec_lib.ModelSpec.for_label_set("resnet_fer_tiny", labels_lib.FERPLUS.name,
                                            input_shape=(48, 48, 1))
    members = [_member(1, 0, spec), _member(2, 1, spec)]
    shift = tuple(float(v) for v in np.linspace(-0.5, 0.5, spec.num_classes))
    ensemble = ensemble_lib.Ensemble(members=tuple(m for m, _ in members), mirror=True,
                                     logit_shift=shift)
    variables = ensemble_lib.combine_variables([v for _, v in members])
    # Smooth random patterns (6x6 blown up to 48x48): unlike pixel noise, they differ in
    # what the convolutions see, so the members' answers differ from face to face.
    coarse = np.random.default_rng(2).integers(0, 256, (40, 6, 6, 1), dtype=np.uint8)
    faces = np.repeat(np.repeat(coarse, 8, axis=1), 8, axis=2)
    x = spec_lib.normalise(faces)
    expected = np.asarray(jax.nn.softmax(ensemble.apply(variables, x)))
    export_dir = tmp_path / "export"
    tflite.export(ensemble, variables, spec, str(export_dir), variants=("dynamic_range",),
                  validation_images=faces)
    spec.save(str(export_dir))

    read = recover.read_members(str(export_dir / "model.tflite"))
    assert [len(ops) for ops in read] == [13, 13]
    assert [ops[-1]["pooled"] for ops in read] == [36, 9]  # 6x6 and 3x3 final maps.
    for i, ops in enumerate(read):
        recover.write_member(str(tmp_path / f"m{i}"), ops, spec, stride=1 + i,
                             data_dir=str(tmp_path / "unused"))
    loaded = [checkpoint_lib.restore_model(str(tmp_path / f"m{i}")) for i in range(2)]
    assert [c.model_kwargs.stem_stride for _, _, _, c in loaded] == [1, 2]
    rebuilt = ensemble_lib.Ensemble(members=tuple(m for m, _, _, _ in loaded), mirror=True,
                                    logit_shift=shift)
    got = np.asarray(jax.nn.softmax(rebuilt.apply(
        ensemble_lib.combine_variables([v for _, v, _, _ in loaded]), x)))
    # Log-probabilities: sensitive to every class, not only the few likely ones.
    log_gap = np.abs(np.log(got) - np.log(expected)).max()
    assert log_gap < 0.25, log_gap
    assert (got.argmax(-1) == expected.argmax(-1)).mean() >= 0.95
