"""Model factories shared by the tests and by fresh-process checks.

Each factory builds the same model code every time; fresh-process tests import them
after building unrelated layers first, so Keras' per-process auto-numbering differs.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf


def example(shape=(4, 6), seed=0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


def keras_sequential():
    import keras

    return keras.Sequential(
        [
            keras.layers.Dense(8, activation="relu"),
            keras.layers.BatchNormalization(),
            keras.layers.Dropout(0.25),
            keras.layers.Dense(3),
        ]
    )


def keras_functional():
    import keras

    inp = keras.Input((6,))
    h = keras.layers.Dense(8, activation="tanh")(inp)
    h = keras.layers.Dense(8, activation="tanh", name="hidden")(h)
    return keras.Model(inp, keras.layers.Dense(2)(h))


def keras_subclassed():
    import keras

    class Block(keras.Model):
        def __init__(self):
            super().__init__()
            self.a = keras.layers.Dense(5)
            self.inner = keras.Sequential(
                [keras.layers.Dense(4), keras.layers.LayerNormalization()]
            )

        def call(self, x, training=False):
            return self.inner(tf.nn.relu(self.a(x)), training=training)

    return Block()


def tf_keras_sequential():
    import tf_keras

    return tf_keras.Sequential(
        [
            tf_keras.layers.Dense(8, activation="relu"),
            tf_keras.layers.BatchNormalization(),
            tf_keras.layers.Dense(3),
        ]
    )


def sonnet_mlp():
    import sonnet as snt

    return snt.nets.MLP([8, 3], name="mlp")


def sonnet_bn():
    import sonnet as snt

    class Net(snt.Module):
        def __init__(self):
            super().__init__(name="net")
            self.lin = snt.Linear(8)
            self.bn = snt.BatchNorm(create_scale=True, create_offset=True)
            self.out = snt.Linear(3)

        def __call__(self, x, is_training=False):
            return self.out(tf.nn.relu(self.bn(self.lin(x), is_training=is_training)))

    return Net()


def tf_module():
    class Affine(tf.Module):
        def __init__(self):
            super().__init__(name="affine")
            self.w = tf.Variable(tf.random.normal([6, 3], seed=1))
            self.b = tf.Variable(tf.zeros([3]))

        def __call__(self, x):
            return x @ self.w + self.b

    return Affine()


def keras_unnamed_weights():
    """The Keras guide's custom layer: `add_weight` without names (Keras numbers them
    per process: `variable_7`)."""
    import keras

    class Linear(keras.layers.Layer):
        def build(self, shape):
            self.w = self.add_weight(shape=(shape[-1], 3), initializer="random_normal")
            self.b = self.add_weight(shape=(3,), initializer="random_normal")

        def call(self, x):
            return x @ self.w + self.b

    return keras.Sequential([Linear()])


def tf_keras_nested_functional():
    """A functional tf_keras model inside another (tf_keras names them `model_N`)."""
    import tf_keras

    i = tf_keras.Input((6,))
    inner = tf_keras.Model(i, tf_keras.layers.Dense(4)(i))
    j = tf_keras.Input((6,))
    return tf_keras.Model(j, tf_keras.layers.Dense(3)(inner(j)))


def pollute() -> None:
    """Build unrelated layers so Keras' auto-numbering is not at zero."""
    import keras

    for _ in range(3):
        keras.layers.Dense(1)(tf.zeros([1, 1]))
        keras.Sequential([keras.layers.Dense(1), keras.layers.BatchNormalization()])
        keras_unnamed_weights()(tf.zeros([1, 2]))
    try:
        import tf_keras

        tf_keras.layers.Dense(1)(tf.zeros([1, 1]))
        tf_keras.layers.BatchNormalization()(tf.zeros([1, 1]))
        tf_keras_nested_functional()
    except ImportError:
        pass


FACTORIES = {
    "keras_sequential": keras_sequential,
    "keras_functional": keras_functional,
    "keras_subclassed": keras_subclassed,
    "tf_keras_sequential": tf_keras_sequential,
    "sonnet_mlp": sonnet_mlp,
    "sonnet_bn": sonnet_bn,
    "tf_module": tf_module,
}


# ---------------------------------------------------------------- function-based bridges
def slim_net():
    """A small Slim model: arg_scope weight decay, batch norm, explicit scopes."""

    def fn(inputs, is_training):
        import tf_slim as slim

        with tf.compat.v1.variable_scope("net"):
            with slim.arg_scope(
                [slim.fully_connected], weights_regularizer=slim.l2_regularizer(1e-3)
            ):
                net = slim.fully_connected(inputs, 8, scope="fc1")
                net = slim.batch_norm(net, is_training=is_training, scope="bn")
                return slim.fully_connected(net, 3, activation_fn=None, scope="logits")

    return fn


def tflearn_net():
    """A small TFLearn model with explicit layer names."""

    def fn(inputs):
        import tflearn

        net = tflearn.fully_connected(inputs, 8, activation="relu", name="fc1")
        return tflearn.fully_connected(net, 3, name="logits")

    return fn


def native_tf1(call, x: np.ndarray, owner) -> tuple[np.ndarray, int]:
    """Run `call(placeholder)` natively in a TF1 graph + Session with the owner's variable
    values loaded by name; returns (output, number of variables the graph created)."""
    values = {k: v.numpy() for k, v in owner.variables.items()}
    with tf.Graph().as_default():
        ph = tf.compat.v1.placeholder(tf.float32, x.shape)
        out = call(ph)
        variables = tf.compat.v1.global_variables()
        with tf.compat.v1.Session() as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            for var in variables:
                var.load(values[var.op.name], sess)
            return sess.run(out, {ph: x}), len(variables)
