"""Scripted accuracy oracles (metric = f(rate)) and their expected runs.

Each trajectory below is written out by hand from the search's rules
(initial phase, then rate +/- step, step and learning rate halved when the
direction flips, stop below the minimal step or at a bound).
"""

UNCOMPRESSED = 0.9
# 1 % relative degradation: the budget is 0.9 * 0.99 = 0.891.
BUDGET = 0.891


def seed_section(**overrides):
    section = {
        "maximal_accuracy_degradation": 1.0,
        "initial_training_phase_epochs": 1,
        "patience_epochs": 1,
        "minimal_compression_rate_step": 0.025,
        "compression_rate_step": 0.1,
        "step_reduction_factor": 0.5,
        "lr_reduction_factor": 0.5,
    }
    section.update(overrides)
    return section


def passes_everywhere(rate):
    return 0.9


def fails_everywhere(rate):
    # Lower rates are better but none reaches the budget.
    return 0.8 - rate


def threshold(limit):
    def oracle(rate):
        return 0.9 if rate <= limit + 1e-12 else 0.8

    return oracle


# name -> (section overrides, schedule levels of the initial phase, maximal
# rate, oracle, expected rate per epoch, expected lr scale per epoch,
# expected final rate, expected criterion_met)
SCENARIOS = {
    # Initial phase of 2 epochs at 0.05 then 0.1; everything passes, so the
    # search climbs by 0.1 and clamps the last move at the maximum 0.45,
    # which is trained; going up from a passing maximum stops.
    "passes_to_maximum": (
        {"initial_training_phase_epochs": 2},
        [0.05, 0.1],
        0.45,
        passes_everywhere,
        [0.05, 0.1, 0.2, 0.3, 0.4, 0.45],
        [1.0, 1.0, 1.0, 1.0, 1.0, 1.0],
        0.45,
        True,
    ),
    # 0.1 fails, 0.0 fails, going below the failed minimum stops; the
    # best-metric model (rate 0.0) is returned with criterion_met=False.
    "fails_from_first_rate": (
        {},
        [0.1],
        0.9,
        fails_everywhere,
        [0.1, 0.0],
        [1.0, 1.0],
        0.0,
        False,
    ),
    # Passing up to 0.27: 0.1 p, 0.2 p, 0.3 f (flip: step 0.05, lr 0.5),
    # 0.25 p (flip: step 0.025, lr 0.25), 0.275 f (flip: step 0.0125 <
    # 0.025, stop). Best passing rate: 0.25.
    "oscillates_to_step_limit": (
        {},
        [0.1],
        0.9,
        threshold(0.27),
        [0.1, 0.2, 0.3, 0.25, 0.275],
        [1.0, 1.0, 1.0, 0.5, 0.25],
        0.25,
        True,
    ),
    # Passing up to 0.33: ..., 0.4 f (step 0.05), 0.35 f, next 0.3 already
    # passed, so without training it the search flips (step 0.025) to
    # 0.325 p; next 0.35 already failed: flip, step 0.0125, stop.
    "revisit_uses_known_outcome": (
        {},
        [0.1],
        0.9,
        threshold(0.33),
        [0.1, 0.2, 0.3, 0.4, 0.35, 0.325],
        [1.0, 1.0, 1.0, 1.0, 0.5, 0.25],
        0.325,
        True,
    ),
}
