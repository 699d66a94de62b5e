"""Compressed models as students of `keras.distillation.Distiller`.

Knowledge distillation from the uncompressed model is the usual way to win
back accuracy while pruning or quantizing; Keras 3 ships the distiller, and
the compressed model, its callbacks and the search must work inside it.
"""

import keras
import numpy as np
import pytest

import tf_aat
from tests import models

pytestmark = pytest.mark.skipif(
    not hasattr(keras, "distillation"), reason="keras.distillation needs Keras >= 3.12"
)


def _distiller(teacher, student, student_loss_weight=0.5):
    distiller = keras.distillation.Distiller(
        teacher=teacher,
        student=student,
        distillation_losses=keras.distillation.LogitsDistillation(
            temperature=4.0, loss=keras.losses.KLDivergence()
        ),
        student_loss_weight=student_loss_weight,
    )
    distiller.compile(
        optimizer=keras.optimizers.SGD(0.05),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return distiller


def _assert_strips_exactly(ctrl, student, teacher, x):
    """The student's masks hold: strip removes filters and keeps its outputs."""
    stripped = ctrl.strip_model(student)
    assert stripped.count_params() < teacher.count_params()
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(stripped(x)),
        keras.ops.convert_to_numpy(student(x)),
        atol=1e-4,
    )


def test_a_pruned_student_follows_the_schedule_and_strips_exactly():
    teacher = models.randomize_batchnorm(models.residual_net())
    teacher_weights = [w.copy() for w in teacher.get_weights()]
    config = models.pruning_config(0.1, schedule="exponential", pruning_target=0.5, pruning_steps=2)
    ctrl, student = tf_aat.create_compressed_model(teacher, config)
    student_weights = [w.copy() for w in student.get_weights()]
    x, y = models.images(32), np.arange(32) % 10
    history = _distiller(teacher, student).fit(
        x, y, batch_size=8, epochs=3, verbose=0, callbacks=[tf_aat.CompressionCallback(ctrl)]
    )
    assert history.history["compression_rate"] == pytest.approx(
        [ctrl.scheduler.level_at(e) for e in range(3)]
    )
    assert ctrl.compression_rate == pytest.approx(0.5)
    # The teacher is frozen: its weights (BN statistics included) did not move.
    for before, after in zip(teacher_weights, teacher.get_weights()):
        np.testing.assert_array_equal(before, after)
    moved = [not np.array_equal(a, b) for a, b in zip(student_weights, student.get_weights())]
    assert sum(moved) > len(moved) // 2
    # The student trained, and its masks hold: strip removes the filters exactly.
    _assert_strips_exactly(ctrl, student, teacher, x)


def test_the_accuracy_aware_search_runs_inside_a_distiller():
    teacher = models.randomize_batchnorm(models.residual_net())
    config = {
        "compression": {
            "algorithm": "filter_pruning",
            "pruning_init": 0.1,
            "params": {"schedule": "baseline"},
        },
        "accuracy_aware_training": {
            "mode": "adaptive_compression_level",
            "params": {
                "maximal_absolute_accuracy_degradation": 1.0,
                "initial_training_phase_epochs": 1,
                "patience_epochs": 1,
                "maximal_total_epochs": 4,
            },
        },
    }
    ctrl, student = tf_aat.create_compressed_model(teacher, config)
    x, y = models.images(16), np.arange(16) % 10
    callback = tf_aat.AccuracyAwareCallback(
        ctrl, config, uncompressed_model_accuracy=0.5, verbose=0
    )
    _distiller(teacher, student).fit(
        x, y, validation_data=(x, y), epochs=10, verbose=0, callbacks=[callback]
    )
    result = callback.result
    # Every rate passes an absolute budget of 1.0, so the search climbs, and the
    # student the Distiller trained holds the rate the result reports.
    assert result.compression_rate > 0.1
    assert ctrl.compression_rate == pytest.approx(result.compression_rate)
    _assert_strips_exactly(ctrl, student, teacher, x)
