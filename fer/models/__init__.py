"""The model zoo: every design by name, and the seed's reported sizes.

    model = fer.models.create_model("resnet_fer", num_classes=8,
                                    input_shape=(48, 48, 1))
    variables = model.init({"params": rng, "dropout": rng}, x, train=False)

Every design is a `flax.linen.Module` that takes NHWC float32 images in [0, 1]
of exactly `input_shape` and returns float32 logits `(B, num_classes)`;
`jax.nn.softmax` gives probabilities. Keyword arguments beyond the two
required ones go to the design (`dtype`, `dropout_rate`, ...); `dtype` is the
computation dtype (parameters always stay float32). See docs/models.md.
"""

from __future__ import annotations

from fer.models.registry import (  # noqa: F401 (the package's API)
    Constructor, count_params, create_model, list_models, register, unregister)

# Table 5 of the seed: "Number of parameters" as Keras reports it (total,
# including BatchNorm moving statistics), at 224x224x1 and 8 classes for the
# seed's own designs and 224x224x3 with 1000 classes for the two references.
SEED_PARAMS: dict[str, int] = {
    "baseline": 102_839_056,
    "baseline_bn": 102_830_856,
    "xcao": 6_970_728,
    "xcao2": 7_509_672,
    "fractal": 26_399_016,
    "inception_v3": 23_851_784,
    "mobilenet_v1": 4_253_864,
}


# Importing the design modules fills the registry.
from fer.models import baseline as _baseline  # noqa: E402,F401
from fer.models import fractal as _fractal  # noqa: E402,F401
from fer.models import reference as _reference  # noqa: E402,F401
from fer.models import resnet as _resnet  # noqa: E402,F401
from fer.models import xcao as _xcao  # noqa: E402,F401
