"""The README's results section is written from the measurements' and studies' outputs."""

import json

import pytest

from fer.gallery import detect
from tools import readme_tables as readme


def _results(tmp_path):
    results = tmp_path / "benchmarks" / "results"
    (results / "per_label_ferplus").mkdir(parents=True)
    (results / "per_label_ferplus" / "per_label.md").write_text(
        "## Accuracy per label (seed Table 7): net on ferplus / validation\n\n"
        "| label | correct | misclassified | accuracy % |\n| --- | --- | --- | --- |\n"
        "| happiness | 9 | 1 | 90.00 |\n")
    (results / "per_label_ferplus" / "confusion.png").write_bytes(b"png")
    (results / "compare_fer2013").mkdir()
    (results / "compare_fer2013" / "compare.md").write_text(
        "## Comparison of designs (seed Table 5)\n\nms on vm (AMD EPYC, 2 CPUs).\n\n"
        "| design | ms | measured |\n| --- | --- | --- |\n| big | 1.5 | 2026-12-01 |\n\n"
        "![accuracy against latency](accuracy_latency.png)\n")
    (results / "compare_fer2013" / "compare.json").write_text(json.dumps({"rows": [
        {"design": "small", "run": "small_seed1", "accuracy": 0.70, "params": 2_000_000},
        {"design": "huge", "accuracy": 0.80, "params": 20_000_000}]}))
    (results / "pipeline").mkdir()
    (results / "pipeline" / "pipeline.json").write_text(json.dumps({"groups": {
        "640x480": {"per_step": {"steps": {"total": {"mean_ms": 7.5}}}},
        "4000x3000": {"per_step": {"steps": {"total": {"mean_ms": 61.0}}}}}}))
    (results / "gallery_crops").mkdir()
    shipped, wider = {"margin": detect.CROP_MARGIN, "lift": detect.CROP_LIFT}, {"margin": 1.5}
    (results / "gallery_crops" / "gallery_crops.json").write_text(json.dumps({"settings": [
        {"context": 0.0, "margins": [{**wider, "gap_points": 4.2, "detected": 20},
                                     {**shipped, "gap_points": 0.5, "detected": 20}]},
        {"context": 0.25, "margins": [{**shipped, "gap_points": 1.5, "detected": 18}]}]}))
    return results


SHIPPED = {"variant": "float16", "bytes": 2_000_000, "run": {
    "accuracy": 0.86, "balanced_accuracy": 0.70, "params": 1_000_000,
    "per_label": {"happiness": 0.9, "contempt": 0.4, "disgust": 0.55}}}


def test_goals_compare_measurements_with_targets(tmp_path):
    _results(tmp_path)
    rows = readme.goals(str(tmp_path), SHIPPED)
    text = "\n".join(rows)
    assert "| 86.0% | met |" in text                       # FER+ accuracy >= 85%
    assert "| 70.0% | **missed** |" in text                 # balanced < 75%
    assert "lowest: contempt 40.0%; under the goal: contempt 40.0% | **missed**" in text
    # The 20M-parameter design is over budget: the goal is judged on the small one.
    assert "70.0% (small_seed1) | **missed**" in text  # Named by run: runs share designs.
    assert "| 7.5 ms | met |" in text and "| 61.0 ms | **missed** |" in text
    # The gallery is judged at the crop it ships, in every setting: one misses.
    assert "| +0.50 tight (20 faces), +1.50 with a border (18 faces) | **missed** |" in text


def test_fer2013_goal_counts_a_second_opinion_at_its_cross_fitted_accuracy(tmp_path):
    _results(tmp_path)
    results = tmp_path / "research" / "label_transfer" / "results"

    def transfer(folder, params, accuracy, dataset="fer2013"):
        (results / folder).mkdir(parents=True)
        (results / folder / "label_transfer.json").write_text(json.dumps({
            "dataset": dataset, "run": f"runs/{dataset}/{folder}_run", "helper_label_set": "ferplus",
            "total_params": params, "cross_fitted": {"accuracy": accuracy},
            "sweep": [{"weight": 0.5, "accuracy": 0.99}]}))

    transfer("label_transfer_a", 9_000_000, 0.73)
    transfer("label_transfer_b", 12_000_000, 0.90)  # Over the budget.
    transfer("label_transfer_c", 1_000_000, 0.95, dataset="ferplus")  # Not FER2013.
    text = "\n".join(readme.goals(str(tmp_path), None))
    assert "| 73.0% (label_transfer_a_run + the ferplus model, cross-fitted) | met |" in text
    (results / "label_transfer_a" / "label_transfer.json").unlink()
    text = "\n".join(readme.goals(str(tmp_path), None))
    assert "70.0% (small_seed1) | **missed**" in text


def test_section_replaces_only_between_markers(tmp_path):
    _results(tmp_path)
    study = tmp_path / "research" / "shipped_tau" / "results" / "ferplus"
    study.mkdir(parents=True)
    (study / "shipped_tau.md").write_text("## Prior correction\n\n![prior correction]"
                                          "(prior_correction.png)\n")
    path = tmp_path / "README.md"
    path.write_text(f"# fer\n\nintro\n\n## Results\n\n{readme.RESULTS_BEGIN}\nold numbers\n"
                    f"{readme.RESULTS_END}\n\n## Later\n\nkept\n")
    (tmp_path / "docs").mkdir()
    doc = tmp_path / "docs" / "results.md"
    doc.write_text(f"# Results\n\n{readme.RESULTS_BEGIN}\nold\n{readme.RESULTS_END}\n\nfindings\n")
    argv = ["--root", str(tmp_path), "--readme", str(path), "--doc", str(doc),
            "--shipped", str(tmp_path / "absent.json")]
    before = path.read_text(), doc.read_text()
    assert readme.main(argv) == 1  # Only checks by default: out of step, nothing written.
    assert (path.read_text(), doc.read_text()) == before
    argv.append("--write")
    assert readme.main(argv) == 0
    text, full = path.read_text(), doc.read_text()
    assert "old numbers" not in text and "\nold\n" not in full
    assert text.startswith("# fer\n\nintro\n") and text.endswith("## Later\n\nkept\n")
    assert full.startswith("# Results\n") and full.endswith("\nfindings\n")
    # The README gets the goals table only; the doc gets the goals and every table.
    assert "| goal | measured | |" in text and "Accuracy per label" not in text
    assert "\n### Accuracy per label (seed Table 7)" in full and "\n## Comparison" not in full
    # No dates or host names in the docs; the rest of the table stays.
    assert "| design | ms |\n| --- | --- |\n| big | 1.5 |\n" in full
    assert "2026" not in full and "vm" not in full and "on AMD EPYC (2 CPUs)" in full
    # Image links point from the doc to the results folder.
    assert "](../benchmarks/results/compare_fer2013/accuracy_latency.png)" in full
    assert "![confusion matrix](../benchmarks/results/per_label_ferplus/confusion.png)" in full
    # A study's table comes from its own folder under research/.
    assert "](../research/shipped_tau/results/ferplus/prior_correction.png)" in full
    # Without shipped.json the FER2013 and speed goals are still judged.
    assert "FER2013 PublicTest accuracy" in text and "FER+ accuracy" not in text
    # Written twice, the same files; then the check passes.
    readme.main(argv)
    assert path.read_text() == text and doc.read_text() == full
    assert readme.main(argv[:-1]) == 0


def test_missing_markers_is_a_clear_error():
    with pytest.raises(ValueError, match="lacks the markers"):
        readme.replace_section("# fer\n\n## Results\n\nnumbers\n", "body")


def _crossval_record():
    spread = lambda mean, sd: {"mean": mean, "sd": sd, "folds": 5}  # noqa: E731
    return {
        "folds": 5, "labels": ["happiness", "contempt"], "class_faces": [800, 16],
        "mean_sd": {"accuracy": spread(0.862, 0.015), "balanced_accuracy": spread(0.80, 0.04),
                    "macro_f1": spread(0.79, 0.03), "abstained": spread(0.046, 0.005)},
        "pooled": {"per_label": {"happiness": 0.95, "contempt": 0.8125},
                   "per_label_counts": {"happiness": {"recall_interval": [0.93, 0.96]},
                                        "contempt": {"recall_interval": [0.57, 0.934]}}},
        "pooled_abstention": {
            "precision": [0.92, 0.22], "precision_interval": [[0.9, 0.94], [0.134, 0.341]],
            "precision_abstaining": [0.92, None],
            "precision_abstaining_interval": [[0.9, 0.94], None]}}


def test_goals_come_from_cross_validation_when_it_was_run(tmp_path):
    results = _results(tmp_path)
    (results / "crossval_ferplus").mkdir()
    (results / "crossval_ferplus" / "crossval.json").write_text(json.dumps(_crossval_record()))
    text = "\n".join(readme.goals(str(tmp_path), SHIPPED))
    assert "| FER+ accuracy >= 85.0% (cross-validated, mean ± sd over 5 folds) | 86.2 ± 1.5% " \
           "| met |" in text
    assert "| FER+ accuracy >= 88.0% (issue 23, cross-validated" in text
    assert "| 86.2 ± 1.5% | **missed** |" in text
    assert "macro F1 >= 78.0% (cross-validated, mean ± sd over 5 folds) | 79.0 ± 3.0% | met" \
        in text
    # The rare class comes with its interval; the common one only when it is the worst.
    assert "| contempt 81.2% (57.0-93.4) | met |" in text
    assert "| contempt 22.0% (13.4-34.1) | **missed** |" in text
    # With abstention contempt is never shown: judged on the classes shown.
    assert "abstaining on 4.6% of faces" in text
    assert "| happiness 92.0% (90.0-94.0); never shown: contempt | met |" in text
    # The shipped model's own validation rows give way to the cross-validated ones.
    assert "(shipped model)" not in text and "| 3,683,640" not in text
    assert "params <= 10,000,000 | 1,000,000 | met" in text


def test_the_repository_docs_are_in_step_with_the_results():
    """A results file changed without `--write` leaves the docs stale: this turns red."""
    import os
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    argv = ["--root", root, "--readme", os.path.join(root, "README.md"),
            "--doc", os.path.join(root, "docs", "results.md"),
            "--shipped", os.path.join(root, "fer", "assets", "model", "shipped.json")]
    assert readme.main(argv) == 0
