"""benchmarks.input_pipeline_speed: loader rows and the training step of each named config."""

import json

from benchmarks import input_pipeline_speed as input_pipeline


def test_an_unknown_step_config_is_refused_before_anything_is_timed(usage_error):
    with usage_error("no_such_config"):
        input_pipeline.main(["--step_configs", "default,no_such_config", "--sizes", "48"])


def test_times_the_step_of_each_named_config(tmp_path):
    out = str(tmp_path / "ip.json")
    assert input_pipeline.main(["--dataset", "demo", "--sizes", "48", "--workers", "0",
                                "--augment", "false", "--batches", "2", "--batch_size", "4",
                                "--step_steps", "1", "--step_configs", "default",
                                "--json", out]) == 0
    with open(out) as f:
        record = json.load(f)
    [step] = record["train_steps"]
    assert step["config"] == "default" and step["model"] == "xcao"
    assert step["batch_size"] == 4 and step["images_per_s"] > 0
    assert "Training step of default (xcao, 48x48, batch 4)" in record["markdown"]


def test_the_table_names_a_design_s_arguments():
    step = {"config": "ferplus_resnet_fer_tiny", "model": "resnet_fer_tiny",
            "model_kwargs": {"stem_stride": 2}, "image_size": 48, "batch_size": 64,
            "images_per_s": 150.0}
    rows = [{"dataset": "demo", "image_size": 48, "workers": 0, "augment": False,
             "images_per_s": 200.0, "startup_s": 0.1, "main_cpu_ms_per_image": 0.3}]
    table = input_pipeline.markdown(rows, [step])
    assert "Training step of ferplus_resnet_fer_tiny (resnet_fer_tiny stem_stride=2" in table
    assert "the loader must give >= 300; slowest loader setting at that size: 200 (TOO SLOW)" \
        in table
