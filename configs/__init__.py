"""ml_collections configs, big_vision style: a file and its arguments name a recipe.

  default.py       every field and its default (the seed's recipe);
  seed_designs.py  the seed's designs: `configs/seed_designs.py:model=xcao2`;
  resnet_fer.py    ours: `configs/resnet_fer.py:size=tiny,data=ferplus,seed=1,stride=1`;
  table5.py        Table 5, every design under one protocol:
                   `configs/table5.py:model=xcao2,protocol=table5,seed=0`;
  demo.py          what `python launch.py` runs without flags.

launch.py's --config passes the text after ':' to get_config; `load` does the same
for code and tests.
"""

import importlib
import os

import ml_collections


def load(spec: str) -> ml_collections.ConfigDict:
    """The config `spec` names, as --config reads it: 'configs/resnet_fer.py:size=tiny'.

    The folder and '.py' may be left out ('resnet_fer:size=tiny').
    """
    path, _, arg = spec.partition(":")
    name = os.path.basename(path)
    name = name[:-3] if name.endswith(".py") else name
    if name.startswith("_") or not os.path.isfile(os.path.join(os.path.dirname(__file__),
                                                                f"{name}.py")):
        raise ValueError(f"no config configs/{name}.py (from {spec!r})")
    module = importlib.import_module(f"configs.{name}")
    return module.get_config(arg) if arg else module.get_config()
