import json
import subprocess
import sys

import pytest

from tf_aat.accuracy_aware._params import parse_accuracy_aware_training
from tf_aat.accuracy_aware._search import AccuracyAwareSearch, checkpoint_key

from . import oracles


def drive(search, levels, oracle, max_epochs=100):
    """Plays the driver: schedule during the initial phase, then the search."""
    rate = levels[0]
    decision = search.start(rate)
    if decision.compression_rate is not None:
        rate = decision.compression_rate
    decisions = []
    for epoch in range(max_epochs):
        if search.scheduler_active:
            rate = levels[min(epoch, len(levels) - 1)]
        decision = search.on_epoch_end(epoch, rate, oracle(rate))
        decisions.append(decision)
        if decision.stop:
            break
        if decision.compression_rate is not None:
            rate = decision.compression_rate
    return decisions


def make_search(overrides=None, maximal_rate=0.9, **kwargs):
    params = parse_accuracy_aware_training(oracles.seed_section(**(overrides or {})), "aa", "seed")
    return AccuracyAwareSearch(params, oracles.UNCOMPRESSED, maximal_rate=maximal_rate, **kwargs)


@pytest.mark.parametrize("name", sorted(oracles.SCENARIOS))
def test_scripted_trajectories(name):
    overrides, levels, maximal, oracle, rates, scales, final, met = oracles.SCENARIOS[name]
    search = make_search(overrides, maximal)
    drive(search, levels, oracle)
    result = search.result()
    assert result.rate_trajectory == rates
    assert [row["learning_rate_scale"] for row in result.history] == scales
    assert result.compression_rate == final
    assert result.criterion_met is met
    assert result.epochs == len(rates)
    assert result.checkpoint == checkpoint_key(final)
    assert search.finished


def test_decisions_restore_best_passing_checkpoint_and_scale_lr():
    search = make_search()
    decisions = drive(search, [0.1], oracles.threshold(0.27))
    # Epoch 2 (0.3) failed: restore the highest passing rate 0.2, go to 0.25.
    assert decisions[2].restore_checkpoint == checkpoint_key(0.2)
    assert decisions[2].compression_rate == 0.25
    assert decisions[2].learning_rate_scale == 0.5
    assert decisions[0].disable_scheduler
    assert not decisions[1].disable_scheduler
    # Every epoch is the first at its rate, so each one is saved.
    assert [d.save_checkpoint for d in decisions] == [
        checkpoint_key(r) for r in [0.1, 0.2, 0.3, 0.25, 0.275]
    ]
    assert decisions[-1].stop and decisions[-1].restore_checkpoint == checkpoint_key(0.25)


def test_failing_run_warns_loudly(caplog):
    search = make_search()
    drive(search, [0.1], oracles.fails_everywhere)
    assert "NO compression rate met the criterion" in caplog.text
    assert "NOT MET" in str(search.result())


def test_patience_uses_best_epoch_and_advance_on_pass_saves_epochs():
    # At each searched rate the first epoch passes and the second fails.
    def run(advance_on_pass):
        search = make_search(
            {"patience_epochs": 2, "advance_on_pass": advance_on_pass}, maximal_rate=0.3
        )
        seen = []

        def oracle(rate):
            seen.append(rate)
            return 0.9 if seen.count(rate) == 1 else 0.85

        drive(search, [0.1], oracle)
        return search.result()

    full = run(False)
    early = run(True)
    # A rate's metric is its best epoch's: 0.2 and 0.3 pass although their
    # last epochs failed, and the best (first) epoch is the checkpoint.
    assert full.rate_trajectory == [0.1, 0.2, 0.2, 0.3, 0.3]
    assert full.compression_rate == 0.3 and full.criterion_met
    assert [row["epoch"] for row in full.rates] == [0, 1, 3]
    # advance_on_pass leaves each rate after its first passing epoch.
    assert early.rate_trajectory == [0.1, 0.2, 0.3]
    assert early.compression_rate == 0.3 and early.criterion_met


def test_maximal_total_epochs_stops_the_search():
    search = make_search({"maximal_total_epochs": 3})
    drive(search, [0.1], oracles.passes_everywhere)
    result = search.result()
    assert result.epochs == 3
    assert result.rate_trajectory == [0.1, 0.2, 0.3]
    assert "maximal_total_epochs" in result.stop_reason
    assert result.compression_rate == 0.3


def test_no_initial_phase_starts_at_controller_rate():
    search = make_search({"initial_training_phase_epochs": 0})
    decision = search.start(0.2)
    assert decision.disable_scheduler and decision.compression_rate == 0.2
    assert not search.scheduler_active


def test_early_exit_stops_when_target_reached_within_budget():
    params = parse_accuracy_aware_training(
        {
            "mode": "early_exit",
            "params": {"maximal_absolute_accuracy_degradation": 0.01, "maximal_total_epochs": 10},
        },
        "accuracy_aware_training",
        "nncf",
    )
    search = AccuracyAwareSearch(params, 0.9, maximal_rate=0.9, target_rate=0.3)
    search.start(0.1)
    levels = [0.1, 0.2, 0.3, 0.3, 0.3, 0.3]
    metrics = [0.9, 0.85, 0.85, 0.895, 0.9, 0.9]
    for epoch, (rate, metric) in enumerate(zip(levels, metrics, strict=True)):
        decision = search.on_epoch_end(epoch, rate, metric)
        if decision.stop:
            break
    assert epoch == 3
    result = search.result()
    assert result.compression_rate == 0.3 and result.criterion_met
    assert decision.restore_checkpoint == checkpoint_key(0.3)


def test_state_round_trips_through_json_mid_search():
    reference = make_search()
    drive(reference, [0.1], oracles.threshold(0.27))

    search = make_search()
    search.start(0.1)
    oracle = oracles.threshold(0.27)
    rate = 0.1
    for epoch in range(10):
        if epoch == 3:  # Serialise, "crash", and continue from the copy.
            search = AccuracyAwareSearch.from_dict(json.loads(json.dumps(search.to_dict())))
        decision = search.on_epoch_end(epoch, rate, oracle(rate))
        if decision.stop:
            break
        rate = decision.compression_rate if decision.compression_rate is not None else rate
    assert search.result() == reference.result()


def test_checkpoint_keys_are_exact():
    assert checkpoint_key(0.1 + 0.2) != checkpoint_key(0.3)
    assert checkpoint_key(0.30000001) != checkpoint_key(0.3)
    key = checkpoint_key(0.275)
    assert key == "rate_0p275"
    assert float(key[5:].replace("p", ".")) == 0.275
    assert all(c.isalnum() or c == "_" for c in checkpoint_key(1e-20))


def test_search_module_does_not_import_tensorflow():
    code = (
        "import importlib.util, sys, types, pathlib\n"
        "root = pathlib.Path(sys.argv[1])\n"
        # Stub the parent packages so only the search's own imports run.
        "for name, path in [('tf_aat', root), ('tf_aat.accuracy_aware', root / 'accuracy_aware')]:\n"
        "    module = types.ModuleType(name); module.__path__ = [str(path)]\n"
        "    sys.modules[name] = module\n"
        "import tf_aat.accuracy_aware._search\n"
        "heavy = [m for m in ('tensorflow', 'keras', 'numpy') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    import tf_aat

    root = tf_aat.__path__[0]
    subprocess.run([sys.executable, "-c", code, root], check=True, timeout=60)
