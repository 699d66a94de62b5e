"""Lets Keras's `fit` and `evaluate` run under `MultiWorkerMirroredStrategy`.

Keras 3.12 to 3.15 (TensorFlow backend) cannot train under a strategy spanning
several workers (keras-team/keras#20585, tensorflow/tensorflow#72388), in two
places, both in `keras/src/backend/tensorflow/trainer.py`:

- `TensorFlowTrainer._maybe_symbolic_build` reduces the first batch with
  `strategy.reduce("MEAN", (x, y), axis=None)` only to read its shapes;
  CollectiveAllReduceStrategy cannot reduce a nested structure ("Attempt to
  convert a value (PerReplica...) with an unsupported type").
- `reduce_per_replica(..., reduction="auto")` averages each step's logs with
  `strategy.reduce("MEAN", value, axis=0)`, which fails on the scalar losses
  and metrics every step returns ("Invalid reduction dimension 0 for input with
  0 dimensions").

`apply()` replaces the two for multi-worker collective strategies only: the
symbolic build reads the shapes from this worker's first replica (what it
needs: shapes, not values), and the logs are averaged across replicas element
by element, as Keras does on one worker (`reduce_mean` over the local
results). Under any other strategy, or none, Keras's own code runs unchanged.
The callbacks call it when they are created under a multi-worker strategy;
it is idempotent, and leaves Keras alone where its internals are not the ones
above (`apply()` then returns False and the callbacks refuse, as before).
"""

import tensorflow as tf

_APPLIED = False


def _trainer_module():
    try:
        from keras.src.backend.tensorflow import trainer
    except ImportError:
        return None
    needed = ("reduce_per_replica", "_collective_all_reduce_multi_worker", "TensorFlowTrainer")
    if not all(hasattr(trainer, name) for name in needed):
        return None
    if not hasattr(trainer.TensorFlowTrainer, "_maybe_symbolic_build"):
        return None
    return trainer


def apply():
    """Makes Keras's `fit`/`evaluate` work under MultiWorkerMirroredStrategy.

    Returns:
        True if Keras now runs there (patched now or before), False if this
        Keras does not have the internals the fix replaces.
    """
    global _APPLIED
    if _APPLIED:
        return True
    trainer = _trainer_module()
    if trainer is None:
        return False
    from keras.src import tree

    multi_worker = trainer._collective_all_reduce_multi_worker
    keras_reduce_per_replica = trainer.reduce_per_replica
    keras_symbolic_build = trainer.TensorFlowTrainer._maybe_symbolic_build

    def reduce_per_replica(values, strategy, reduction):
        if reduction in ("auto", "mean") and multi_worker(strategy):
            # Element-wise mean across all replicas (every worker gets the same).
            return tree.map_structure(
                lambda value: strategy.reduce("MEAN", value, axis=None), values
            )
        return keras_reduce_per_replica(values, strategy, reduction)

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        strategy = self._distribute_strategy
        if strategy is None or iterator is None or not multi_worker(strategy):
            return keras_symbolic_build(self, iterator=iterator, data_batch=data_batch)
        for _, _, batches in iterator:
            batch = next(batches)
            data_batch = tree.map_structure(
                lambda value: (
                    strategy.experimental_local_results(value)[0]
                    if isinstance(value, tf.distribute.DistributedValues)
                    else value
                ),
                batch,
            )
            break
        with strategy.scope():
            self._symbolic_build(data_batch=data_batch)

    trainer.reduce_per_replica = reduce_per_replica
    trainer.TensorFlowTrainer._maybe_symbolic_build = _maybe_symbolic_build
    _APPLIED = True
    return True
