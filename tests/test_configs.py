"""configs/: every past run's recipe is one argument string, and arguments are checked.

tests/data/config_recipes.json is a snapshot of the 26 config files that these
files with arguments replaced, and of Table 5's twenty rows (configs/table5.py, ten
designs under each protocol): each one's to_dict() (less data_dir, a machine's path)
and the argument string that is to reproduce it.
"""

import json
import os

import pytest

import configs
from configs import default
from configs import table5

RECIPES_PATH = os.path.join(os.path.dirname(__file__), "data", "config_recipes.json")
with open(RECIPES_PATH) as f:
    RECIPES = json.load(f)
AUGMENT_FIELDS = {"augment_flip", "augment_max_shift", "augment_max_rotation",
                  "augment_max_scale", "augment_noise_std"}


@pytest.mark.parametrize("old_name", sorted(RECIPES))
def test_every_old_config_is_one_argument_string(old_name):
    recipe = RECIPES[old_name]
    new = json.loads(json.dumps(configs.load(recipe["arg"]).to_dict()))  # Tuples -> lists.
    assert new.pop("data_dir") == ""  # A flag or $FER_DATA gives it, never a config.
    # Fields added since (augmentation strengths, protocol, ...) hold the defaults', which
    # the old code hard-coded or lacked.
    added = {k: new.pop(k) for k in set(new) - set(recipe["config"])}
    assert added == {k: default.get_config()[k] for k in added}
    assert new == recipe["config"]


def test_arguments_change_what_they_name_and_nothing_else():
    base = configs.load("configs/resnet_fer.py:size=tiny,data=ferplus").to_dict()
    changed = configs.load("resnet_fer:size=small,data=ferplus,seed=3,stride=1,"
                           "weights=full,epochs=7").to_dict()
    differ = {k for k in base if base[k] != changed[k]}
    assert differ == {"model", "seed", "model_kwargs", "class_weight_power", "epochs"}
    assert (changed["model"], changed["seed"], changed["model_kwargs"], changed["epochs"]) == (
        "resnet_fer_small", 3, {"stem_stride": 1}, 7)


def test_the_two_recipes_differ_where_the_datasets_do():
    ferplus = configs.load("resnet_fer:data=ferplus").to_dict()
    fer2013 = configs.load("resnet_fer:data=fer2013").to_dict()
    assert {k for k in ferplus if ferplus[k] != fer2013[k]} == {
        "dataset", "label_mode", "label_smoothing", "class_weights", "epochs"}


@pytest.mark.parametrize("protocol", sorted(table5.PROTOCOLS))
def test_table5_rows_differ_only_in_the_design_and_the_seed(protocol):
    """One protocol: a design with its own optimizer, epochs or labels fails here."""
    rows = [configs.load(table5.spec(model, protocol, seed)).to_dict()
            for model in table5.DESIGNS for seed in (0, 2)]
    assert len(rows) == 20 and all(r["protocol"] == protocol for r in rows)
    differ = {k for r in rows for k in r if r[k] != rows[0][k]}
    assert differ == {"model", "model_kwargs", "image_size", "seed"}
    assert {r["model"] for r in rows} == set(table5.DESIGNS) and len(table5.DESIGNS) == 10
    assert {r["image_size"] for r in rows} == {48, 75}  # InceptionV3 at Keras's minimum.


def test_table5_protocols_are_the_shipped_recipe_and_the_thesis():
    thesis = configs.load("table5:model=xcao2,protocol=thesis").to_dict()
    seed = configs.load("seed_designs:model=xcao2").to_dict()  # configs/default.py's recipe.
    assert {k for k in seed if seed[k] != thesis[k]} == {"dataset", "batch_size", "protocol"}
    assert (thesis["dataset"], thesis["epochs"], thesis["optimizer"]) == ("ferplus", 10, "adam")
    ours = configs.load("table5:model=resnet_fer_tiny,protocol=table5").to_dict()
    shipped = configs.load("resnet_fer:size=tiny,data=ferplus,epochs=30").to_dict()
    assert {k for k in shipped if shipped[k] != ours[k]} == {"batch_size", "protocol"}


def test_table5_seeds_three_times_exactly_the_designs_under_2m_params():
    import jax
    import jax.numpy as jnp
    from fer import models

    def params(model):
        side, kwargs = table5.DESIGNS[model]
        module = models.create_model(model, num_classes=8, input_shape=(side, side, 1), **kwargs)
        shapes = jax.eval_shape(module.init, jax.random.PRNGKey(0), jnp.zeros((1, side, side, 1)))
        return models.count_params(shapes)["trainable"]

    assert set(table5.MULTI_SEED) == {m for m in table5.DESIGNS if params(m) < 2_000_000}


def test_table5_script_lists_one_config_string_per_row():
    """scripts/table5.sh --list: what a lent GPU trains (scripts/device.sh train)."""
    import subprocess
    import sys

    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

    def listed(*args):
        out = subprocess.run(["bash", "scripts/table5.sh", "--list", *args], cwd=repo,
                             capture_output=True, text=True, env={**os.environ,
                                                                  "PYTHON": sys.executable})
        return out.returncode, out.stdout.split(), out.stderr

    rc, rows, _ = listed("--protocol", "thesis")
    assert rc == 0 and len(rows) == 6 + 3 * 4  # Three seeds for the four under 2M params.
    for row in rows:
        spec, name = row.rsplit(":", 1)
        config = configs.load(spec)
        assert (config.protocol, name) == (
            "thesis", config.model + (f"_seed{config.seed}" if config.seed else ""))
    assert {configs.load(r.rsplit(":", 1)[0]).model for r in rows} == set(table5.DESIGNS)
    rc, rows, _ = listed("--seeds", "2", "--designs", "xcao,baseline")
    assert rc == 0 and [r.rsplit(":", 1)[1] for r in rows] == ["xcao", "xcao_seed1", "baseline"]
    rc, _, err = listed("--designs", "resnet")
    assert rc == 2 and "no design resnet" in err


@pytest.mark.parametrize("spec,words", [
    ("resnet_fer:size=huge", ["size='huge'", "tiny"]),
    ("resnet_fer:sise=tiny", ["'sise=tiny'", "size"]),
    ("resnet_fer:seed=one", ["seed='one'", "int"]),
    ("resnet_fer:stride", ["'stride'", "key=value"]),
    ("resnet_fer:weights=half", ["weights='half'", "sqrt"]),
    ("seed_designs:model=resnet_fer", ["model='resnet_fer'", "xcao2"]),
    ("table5:model=resnet", ["model='resnet'", "resnet_fer_tiny"]),
    ("table5:protocol=keras", ["protocol='keras'", "thesis"]),
    ("demo:epochs=1", ["'epochs=1'", "takes no arguments"]),
    ("default:seed=1", ["'seed=1'", "takes no arguments"]),
    ("xcao2", ["no config configs/xcao2.py"]),
])
def test_a_bad_argument_is_an_error_naming_it(spec, words):
    with pytest.raises(ValueError) as error:
        configs.load(spec)
    for word in words:
        assert word in str(error.value)


def test_parse_arg_reads_each_value_as_its_defaults_type():
    arg = default.parse_arg("n=3, x=0.5,flag=False,name=a b", n=0, x=1.0, flag=True, name="")
    assert arg.to_dict() == {"n": 3, "x": 0.5, "flag": False, "name": "a b"}
    assert default.parse_arg(None, n=2).n == 2 and default.parse_arg("", n=2).n == 2
    with pytest.raises(ValueError, match="true or false"):
        default.parse_arg("flag=yes", flag=True)


def test_a_saved_config_is_laid_over_the_defaults(tmp_path):
    from fer.training import checkpoint as checkpoint_lib

    saved = configs.load("resnet_fer:size=tiny,data=ferplus,stride=1").to_dict()
    for field in AUGMENT_FIELDS | {"half_precision"}:  # As a run saved before they existed.
        del saved[field]
    (tmp_path / "config.json").write_text(json.dumps(saved))
    config = checkpoint_lib.load_config(str(tmp_path))
    assert config.to_dict() == configs.load("resnet_fer:size=tiny,data=ferplus,stride=1").to_dict()
