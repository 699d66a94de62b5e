"""`tf.distribute` checks shared by the callbacks and the accuracy-aware drivers.

Keras binds a variable to the strategy in force when it is created, so a
compressed model trained under a strategy must have been created inside its
`scope()`; the checks here say so before the first training step instead of
TensorFlow's errors from deep inside it. Under `MultiWorkerMirroredStrategy`
every worker runs the same search, and only the chief writes files.
"""

import tensorflow as tf


def controlled_model(ctrl):
    """The compressed model a controller (composite or not) drives, or None."""
    model = getattr(ctrl, "model", None)
    if model is None:
        for child in getattr(ctrl, "children", None) or ():
            model = getattr(child, "model", None)
            if model is not None:
                break
    return model


def _is_default(strategy):
    """Whether `strategy` is TensorFlow's default (no distribution at all)."""
    return strategy is None or type(strategy).__name__ == "_DefaultDistributionStrategy"


def _name(strategy):
    return type(strategy).__name__


def _created_in(strategy, variable):
    value = getattr(variable, "value", variable)
    try:
        return bool(strategy.extended.variable_created_in_scope(value))
    except (AttributeError, TypeError, ValueError):
        return True  # a strategy that cannot tell: assume the user knows


def _scope_hint(strategy):
    return (
        f"Create the compressed model inside the {_name(strategy)}'s scope, and compile it "
        "there: `with strategy.scope(): ctrl, model = tf_aat.create_compressed_model(model, "
        "config, init_data=...); model.compile(...)`. The uncompressed model may come from "
        "outside the scope: create_compressed_model builds new layers and variables."
    )


def _distributed_variable(model):
    return next(iter(model.weights), None) if model is not None else None


def check_created_in_scope(ctrl, where):
    """At a callback's creation inside `strategy.scope()`: the controller's model must
    have been created in that scope too."""
    if not tf.distribute.has_strategy():
        return
    strategy = tf.distribute.get_strategy()
    variable = _distributed_variable(controlled_model(ctrl))
    if variable is not None and not _created_in(strategy, variable):
        raise ValueError(
            f"{where} was created inside the scope of a {_name(strategy)}, but the compressed "
            f"model of its controller was created outside it (its variable {variable.path!r} "
            "belongs to no strategy), so it cannot train under this strategy. "
            + _scope_hint(strategy)
        )


def training_strategy(model):
    """The strategy `fit` trains `model` with: the one its optimizer was created under
    (Keras 3's TensorFlow optimizer records it), else the one in force, else the model's."""
    optimizer = getattr(model, "optimizer", None)
    strategy = getattr(optimizer, "_distribution_strategy", None)
    if not _is_default(strategy):
        return strategy
    if tf.distribute.has_strategy():
        return tf.distribute.get_strategy()
    return getattr(model, "distribute_strategy", None)


def check_training_strategy(model, where):
    """Before the first training step: the model's variables belong to the strategy it
    trains with (else TensorFlow fails inside the first step, with `colocate_vars_with`
    or "Need to be inside strategy.scope()")."""
    strategy = training_strategy(model)
    variable = _distributed_variable(model)
    if _is_default(strategy) or variable is None or _created_in(strategy, variable):
        return
    raise ValueError(
        f"{where}: the model is trained with a {_name(strategy)} (it was compiled, or "
        "fit is called, inside the strategy's scope), but its variables were created "
        f"outside that scope ({variable.path!r} belongs to no strategy). " + _scope_hint(strategy)
    )


def is_multi_worker(strategy):
    """Whether `strategy` spans several worker processes (MultiWorkerMirroredStrategy
    with a cluster in `TF_CONFIG`)."""
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return False
    return _worker_count(strategy) > 1


def _worker_count(strategy):
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None:
        return 1
    spec = resolver.cluster_spec().as_dict()
    return sum(len(tasks) for name, tasks in spec.items() if name in ("chief", "worker")) or 1


def writes_files(model):
    """Whether this process writes the search's files: True except on the non-chief
    workers of a multi-worker strategy (`strategy.extended.should_checkpoint`)."""
    strategy = training_strategy(model)
    if strategy is None:
        return True
    try:
        return bool(strategy.extended.should_checkpoint)
    except (AttributeError, NotImplementedError):
        return True


def worker_description(model):
    """`"worker 1 of 2"`-style words for log lines, or None on one machine."""
    strategy = training_strategy(model)
    if not is_multi_worker(strategy):
        return None
    resolver = strategy.cluster_resolver
    return f"{resolver.task_type} {resolver.task_id} of {_worker_count(strategy)}"


def agree_across_workers(model, value):
    """None when every worker holds the same `value` (a small number) or there is one
    worker, else `(the workers' mean, this worker's value)`. Every worker must call it
    (a collective all-reduce of `value` and its square)."""
    strategy = training_strategy(model)
    if not is_multi_worker(strategy):
        return None
    own = float(value)
    local = tf.constant([own, own * own], tf.float64)
    per_replica = strategy.run(lambda: tf.identity(local))
    mean = strategy.reduce(tf.distribute.ReduceOp.MEAN, per_replica, axis=None).numpy()
    if abs(mean[1] - mean[0] ** 2) > 1e-9 * max(1.0, mean[1]):
        return float(mean[0]), own
    return None


def check_fit_supported(ctrl, where):
    """At a callback's creation under a multi-worker strategy: Keras 3's `fit` fails
    there before any callback runs (keras-team/keras#20585), so apply tf_aat's fix
    (`_keras_multi_worker.apply`), and refuse with the workaround where this Keras
    lacks the internals the fix replaces."""
    import keras

    from tf_aat import _keras_multi_worker

    model = controlled_model(ctrl)
    strategy = training_strategy(model) if model is not None else None
    if not is_multi_worker(strategy) or _keras_multi_worker.apply():
        return
    raise ValueError(
        f"{where} drives model.fit(), which Keras {keras.version()} cannot run under "
        "MultiWorkerMirroredStrategy: fit() reduces the first batch with strategy.reduce, "
        "which this strategy refuses for an (x, y) batch (keras-team/keras#20585), and "
        "tf_aat's fix for Keras 3.12 to 3.15 does not apply to this version. Drive the "
        "search with tf_aat.create_accuracy_aware_training_loop and a train_epoch_fn whose "
        "training step runs through strategy.run (see the README section 'Training on "
        "several devices')."
    )
