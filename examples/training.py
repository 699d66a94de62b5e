"""Optimizers, input pipelines and evaluation shared by the example scripts and benchmarks."""

import keras
import numpy as np

OPTIMIZERS = ("adam", "sgd")


def make_optimizer(name="adam", learning_rate=1e-3, decay_steps=None, weight_decay=None):
    """Adam, or SGD with Nesterov momentum 0.9; cosine decay to 0 over `decay_steps` if given."""
    if name not in OPTIMIZERS:
        raise ValueError(
            f"Unknown optimizer. Expected one of {list(OPTIMIZERS)}. Received: {name!r}"
        )
    rate = learning_rate
    if decay_steps:
        rate = keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps)
    if name == "adam":
        return keras.optimizers.Adam(rate, weight_decay=weight_decay)
    return keras.optimizers.SGD(rate, momentum=0.9, nesterov=True, weight_decay=weight_decay)


def compile_classifier(
    model, learning_rate=1e-3, optimizer="adam", decay_steps=None, weight_decay=None
):
    """Sparse cross-entropy on logits, accuracy; Adam unless `optimizer="sgd"`."""
    model.compile(
        optimizer=make_optimizer(optimizer, learning_rate, decay_steps, weight_decay),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )


def distiller(teacher, student, temperature=4.0, student_loss_weight=0.5):
    """A `keras.distillation.Distiller` training `student` on labels and on a copy
    of `teacher`'s logits (the Distiller freezes its teacher; the copy keeps
    `teacher` trainable for anything compressed from it later)."""
    frozen = keras.models.clone_model(teacher)
    frozen.set_weights(teacher.get_weights())
    return keras.distillation.Distiller(
        teacher=frozen,
        student=student,
        distillation_losses=keras.distillation.LogitsDistillation(
            temperature=temperature,
            # An instance: with the string default, Keras 3.15 skips the softmax.
            loss=keras.losses.KLDivergence(),
        ),
        student_loss_weight=student_loss_weight,
    )


def train_data(x, y, batch_size, augment=False, seed=0):
    """Shuffled batches for `fit`; `augment` adds the standard CIFAR augmentation
    (random horizontal flip, 4-pixel zero padding and a random 32x32 crop)."""
    import tensorflow as tf

    dataset = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(len(x), seed=seed)
    if augment:
        height, width = x.shape[1:3]

        def jitter(image, label):
            image = tf.image.random_flip_left_right(image)
            image = tf.image.pad_to_bounding_box(image, 4, 4, height + 8, width + 8)
            image = tf.image.random_crop(image, (height, width, x.shape[3]))
            return image, label

        dataset = dataset.map(jitter, num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def accuracy(model, x, y, batch_size):
    """Top-1 accuracy of a logits model.

    Plain calls instead of `predict`: `predict` on ever new models warns about
    retracing.
    """
    correct = 0
    for start in range(0, len(x), batch_size):
        logits = keras.ops.convert_to_numpy(model(x[start : start + batch_size], training=False))
        correct += int(np.sum(np.argmax(logits, axis=-1) == y[start : start + batch_size]))
    return correct / len(x)


def baseline_recipe(path):
    """The recipe `load_or_train` wrote beside the model at `path` (None if none)."""
    import json
    import os

    if not os.path.exists(f"{path}.json"):
        return None
    with open(f"{path}.json", encoding="utf-8") as f:
        return json.load(f)


def load_or_train(
    path,
    build,
    train,
    test,
    *,
    epochs,
    batch_size,
    optimizer="adam",
    learning_rate=1e-3,
    weight_decay=None,
    augment=False,
    seed=0,
    verbose=2,
):
    """Loads the model cached at `path`, or builds, trains and saves it there.

    `build()` returns a fresh model; SGD decays its learning rate to 0 over
    the run (cosine). The recipe and the training time are written beside the
    model (`<path>.json`); loading a model cached with another recipe warns.
    Returns the model.
    """
    import json
    import os
    import time

    recipe = {
        "epochs": epochs,
        "batch_size": batch_size,
        "optimizer": optimizer,
        "learning_rate": learning_rate,
        "weight_decay": weight_decay,
        "augment": augment,
        "seed": seed,
        "train_images": len(train[0]),
    }
    if os.path.exists(path):
        print(f"Loading the cached baseline from {path}")
        model = keras.models.load_model(path)
        cached = baseline_recipe(path)
        if cached is not None:
            differs = {
                key: (cached.get(key), value)
                for key, value in recipe.items()
                if cached.get(key) != value
            }
            if cached.get("model") not in (None, model.name) or differs:
                print(
                    f"WARNING: the cached baseline {path} was trained with another recipe "
                    f"(cached, requested): {differs}. It is used as it is; delete it or pass "
                    "another path to train one with this recipe."
                )
        return model
    model = build()
    steps = epochs * -(-len(train[0]) // batch_size)
    compile_classifier(
        model,
        learning_rate,
        optimizer,
        decay_steps=steps if optimizer == "sgd" else None,
        weight_decay=weight_decay,
    )
    print(f"Training the baseline {model.name} for {epochs} epochs")
    started = time.time()
    model.fit(
        train_data(train[0], train[1], batch_size, augment, seed),
        epochs=epochs,
        shuffle=False,  # the dataset shuffles itself, every epoch
        validation_data=test,
        verbose=verbose,
    )
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    model.save(path)
    with open(f"{path}.json", "w", encoding="utf-8") as f:
        json.dump({"model": model.name, **recipe, "seconds": time.time() - started}, f, indent=2)
    return model
