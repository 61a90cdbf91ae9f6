"""configs/: every past run's recipe is one argument string, and arguments are checked.

tests/data/config_recipes.json is a snapshot of the 26 config files that these
files with arguments replaced: each one's to_dict() (less data_dir, a machine's
path) and the argument string that is to reproduce it.
"""

import json
import os

import pytest

import configs
from configs import default

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
    # The augmentation strengths came later: the defaults', which the old code hard-coded.
    added = {k: new.pop(k) for k in set(new) - set(recipe["config"])}
    assert added == {k: default.get_config()[k] for k in AUGMENT_FIELDS}
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


@pytest.mark.parametrize("spec,words", [
    ("resnet_fer:size=huge", ["size='huge'", "tiny"]),
    ("resnet_fer:sise=tiny", ["'sise=tiny'", "size"]),
    ("resnet_fer:seed=one", ["seed='one'", "int"]),
    ("resnet_fer:stride", ["'stride'", "key=value"]),
    ("resnet_fer:weights=half", ["weights='half'", "sqrt"]),
    ("seed_designs:model=resnet_fer", ["model='resnet_fer'", "xcao2"]),
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
