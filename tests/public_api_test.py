"""Pins the public surface: removing or renaming a name is a breaking change."""

import tf_aat

EXPECTED = {
    "ActivationQuantizer",
    "QuantizationController",
    "TFLiteExport",
    "TFLiteExportError",
    "WeightQuantizer",
    "export_tflite",
    "tflite_ops",
    "AccuracyAwareCallback",
    "AccuracyAwareParams",
    "AccuracyAwareResult",
    "AccuracyAwareSearch",
    "AccuracyAwareTrainingLoop",
    "CompositeCompressionController",
    "CompressionCallback",
    "CompressionConfig",
    "CompressionWrapper",
    "ConfigError",
    "FilterPruningController",
    "MagnitudeSparsityController",
    "RBSparsityController",
    "ScaledLearningRateSchedule",
    "UnsupportedModelError",
    "create_accuracy_aware_training_loop",
    "create_compressed_model",
    "strip_model",
}


def test_public_names_are_exported():
    assert EXPECTED <= set(tf_aat.__all__)
    for name in tf_aat.__all__:
        assert hasattr(tf_aat, name), name
