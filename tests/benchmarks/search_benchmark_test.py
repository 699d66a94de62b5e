"""The search-efficiency benchmark end to end with tiny settings (~30 s on 2 cores)."""

import json
import os

import pytest

pytest.importorskip("sklearn.datasets")
pytest.importorskip("absl")

from examples.benchmarks import search_benchmark  # noqa: E402

_ROW_FIELDS = ("epochs", "final_rate", "final_accuracy", "criterion_met", "rates", "seconds")
_COMPARED_FIELDS = (
    "distance_rate",
    "distance_steps",
    "within_one_step",
    "fewer_epochs_than_sweep",
    "target_met",
)


def test_grid_stops_at_the_maximal_rate():
    assert search_benchmark.grid(0.1) == [0.025, 0.05, 0.075, 0.1]
    assert search_benchmark.grid(0.09) == [0.025, 0.05, 0.075]
    assert len(search_benchmark.grid(0.9)) == 36


def test_nncf_layout_overrides_go_into_params(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(
        json.dumps(
            {
                "compression": {
                    "algorithm": "filter_pruning",
                    "params": {"prune_first_conv": True},
                },
                "accuracy_aware_training": {
                    "mode": "adaptive_compression_level",
                    "params": {"maximal_relative_accuracy_degradation": 2.0},
                },
            }
        )
    )
    options = search_benchmark.Options(config=str(path), patience_epochs=3)
    params = search_benchmark.build_config(options, advance_on_pass=True).accuracy_aware_training
    assert params.patience_epochs == 3
    assert params.advance_on_pass
    assert params.maximal_relative_accuracy_degradation == 2.0


def test_tiny_benchmark_writes_the_report(tmp_path):
    output = tmp_path / "report.json"
    options = search_benchmark.Options(
        output_dir=str(tmp_path),
        output=str(output),
        baseline_epochs=2,
        initial_epochs=1,
        patience_epochs=1,
        maximal_total_epochs=3,
        sweep_max=0.075,
    )
    report = search_benchmark.run_benchmark(options)
    assert os.path.exists(output)
    with open(output, encoding="utf-8") as file:
        written = json.load(file)
    assert written["methods"].keys() == set(search_benchmark.METHODS)
    assert written["val_images"] == 450
    assert written["one_image_percent"] == pytest.approx(100 / 450)
    assert "noise" in written["noise_note"]
    assert 0.0 < written["baseline_accuracy"] <= 1.0
    assert written["table"] == report["table"]

    oracle = written["methods"]["oracle"]
    for field in _ROW_FIELDS:
        assert field in oracle
    assert [row["rate"] for row in oracle["rates"]] == [0.025, 0.05, 0.075]
    assert oracle["epochs"] == 1 + 3 * 1
    assert all(len(row["epoch_metrics"]) == 1 for row in oracle["rates"])

    for name in ("search", "search_advance_on_pass"):
        row = written["methods"][name]
        for field in _ROW_FIELDS + _COMPARED_FIELDS:
            assert field in row, (name, field)
        assert 1 <= row["epochs"] <= 3
        # The returned model is the one the search reports.
        assert row["returned_model_rate"] == pytest.approx(row["final_rate"])
        assert row["returned_model_accuracy"] == pytest.approx(row["final_accuracy"], abs=1e-6)
        if row["distance_rate"] is not None:
            assert row["distance_steps"] == pytest.approx(row["distance_rate"] / 0.025)

    # A rerun loads the cached baseline instead of training it again.
    options.methods = ("oracle",)
    options.sweep_max = 0.025
    again = search_benchmark.run_benchmark(options)
    assert not again["baseline_trained_now"]
    assert again["baseline_accuracy"] == written["baseline_accuracy"]
