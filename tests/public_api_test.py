"""Pins the public surface: removing or renaming a name is a breaking change."""

import tf_aat

# Adding a name is fine: add it here too (sorted, as `tf_aat.__all__` is).
EXPECTED = [
    "AccuracyAwareCallback",
    "AccuracyAwareParams",
    "AccuracyAwareResult",
    "AccuracyAwareSearch",
    "AccuracyAwareTrainingLoop",
    "ActivationQuantizer",
    "Algorithm",
    "CompositeCompressionController",
    "CompressionCallback",
    "CompressionConfig",
    "CompressionController",
    "CompressionPlan",
    "CompressionScheduler",
    "CompressionWrapper",
    "ConfigError",
    "FilterPruningController",
    "LayerRule",
    "MagnitudeSparsityController",
    "QuantizationController",
    "RBSparsityController",
    "RatedCompressionController",
    "ScaledLearningRateSchedule",
    "TFLiteExport",
    "TFLiteExportError",
    "UnsupportedModelError",
    "WeightQuantizer",
    "create_accuracy_aware_training_loop",
    "create_compressed_model",
    "export_tflite",
    "register_algorithm",
    "register_layer_rule",
    "strip_model",
    "tflite_ops",
]


def test_public_names_are_exported():
    assert tf_aat.__all__ == EXPECTED
    for name in tf_aat.__all__:
        assert hasattr(tf_aat, name), name


def test_all_is_sorted_so_a_reader_finds_a_name():
    assert tf_aat.__all__ == sorted(tf_aat.__all__)
    for package in (tf_aat.accuracy_aware, tf_aat.quantization, tf_aat.sparsity):
        assert package.__all__ == sorted(package.__all__), package.__name__
