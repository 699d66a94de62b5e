"""What the zoo benchmarks share: the keras.applications families and their weights."""

import keras
import numpy as np

# One architecture per family (the family's smallest), at the smallest input it accepts.
FAMILIES = {
    "ConvNeXtTiny": 32,
    "DenseNet121": 32,
    "EfficientNetB0": 32,
    "EfficientNetV2B0": 32,
    "InceptionResNetV2": 75,
    "InceptionV3": 75,
    "MobileNet": 32,
    "MobileNetV2": 32,
    "MobileNetV3Small": 32,
    "MobileNetV3Large": 32,
    "NASNetMobile": 32,
    "ResNet50": 32,
    "ResNet50V2": 32,
    "VGG16": 32,
    "Xception": 71,
}


def randomize_constants(model, seed):
    """Random values for weights initialised to one constant (BatchNormalization's
    statistics, biases, ConvNeXt's 1e-6 layer scales), so that a stripped model
    that dropped a wrong channel cannot agree with the masked one by accident."""
    rng = np.random.default_rng(seed)
    for variable in model.weights:
        value = keras.ops.convert_to_numpy(variable)
        if value.size < 2 or np.ptp(value) > 0:
            continue
        if any(part in variable.path for part in ("bias", "beta", "moving_mean")):
            variable.assign(rng.normal(0.0, 0.2, value.shape).astype(value.dtype))
        else:  # scales and variances: positive
            variable.assign(rng.uniform(0.5, 1.5, value.shape).astype(value.dtype))
