"""`--strategy` for the example jobs: one device, MirroredStrategy (the GPUs of one
machine, or logical CPU devices to try it), or MultiWorkerMirroredStrategy (the
machines in `TF_CONFIG`), and the custom training step multi-worker runs need."""

import numpy as np

STRATEGIES = ("default", "mirrored", "multi_worker")


def make(name, cpu_devices=0):
    """The `tf.distribute` strategy called `name`. Call it before TensorFlow runs
    anything: logical devices and multi-worker collectives are set up then only.

    `cpu_devices` > 1 splits the CPU into that many logical devices, and a mirrored
    strategy without GPUs mirrors over them (a way to try it on a laptop).
    """
    import tensorflow as tf

    if name not in STRATEGIES:
        raise ValueError(
            f"Unknown strategy. Expected one of {list(STRATEGIES)}. Received: {name!r}"
        )
    if cpu_devices > 1:
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * cpu_devices
        )
    if name == "mirrored":
        if cpu_devices > 1 and not tf.config.list_physical_devices("GPU"):
            return tf.distribute.MirroredStrategy([f"/cpu:{i}" for i in range(cpu_devices)])
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    return tf.distribute.get_strategy()


def is_multi_worker(strategy):
    import tensorflow as tf

    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)


def is_chief(strategy):
    """True except on the workers of a multi-worker run other than the chief."""
    return bool(strategy.extended.should_checkpoint)


def task(strategy):
    """(this worker's index, the number of workers): (0, 1) on one machine."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if not is_multi_worker(strategy) or resolver is None:
        return 0, 1
    spec = resolver.cluster_spec().as_dict()
    chiefs = len(spec.get("chief", []))
    workers = chiefs + len(spec.get("worker", []))
    index = resolver.task_id if resolver.task_type == "chief" else chiefs + resolver.task_id
    return index, max(workers, 1)


def epoch_trainer(strategy, model, loss):
    """`train(dataset) -> mean loss`: one epoch of `model` through `strategy.run`,
    each worker training on its share of every global batch (Keras's own `fit` fails
    under MultiWorkerMirroredStrategy unless a tf_aat callback has mended it; see the
    README)."""
    import tensorflow as tf

    index, workers = task(strategy)
    with strategy.scope():
        model.optimizer.build(model.trainable_variables)

    @tf.function
    def step(x, y, global_batch):
        def replica_step(x, y):
            with tf.GradientTape() as tape:
                value = tf.reduce_sum(loss(y, model(x, training=True))) / global_batch
                if model.losses:  # regularisers and added losses, once over the replicas
                    value += tf.add_n(model.losses) / strategy.num_replicas_in_sync
            variables = model.trainable_variables
            model.optimizer.apply_gradients(zip(tape.gradient(value, variables), variables))
            return value

        return strategy.reduce(
            tf.distribute.ReduceOp.SUM, strategy.run(replica_step, args=(x, y)), axis=None
        )

    def train(dataset):
        losses = []
        for x, y in dataset:
            size = int(x.shape[0])
            share = (x[index::workers], y[index::workers], tf.constant(size, tf.float32))
            losses.append(float(step(*share)))
        return float(np.mean(losses))

    return train
