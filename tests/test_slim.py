"""The TF-Slim bridge against the real tf_slim: eager, tf.function and TF1 graph + Session.

Every net of `tf_slim.nets` runs in all three modes with names equal to the TF1 names;
endpoints, regularization losses, batch-norm updates, error messages and the legacy
fixes are checked on small nets so the file stays fast.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

tf_slim = pytest.importorskip("tf_slim")

import tfunite as tu  # noqa: E402
from tfunite import fixes  # noqa: E402
from tfunite.bridges import slim_fixes  # noqa: E402
from tfunite.bridges.slim import SlimOwner  # noqa: E402
from tfunite.errors import DuplicateVariablesError, OwnershipError  # noqa: E402

slim = tf_slim
ops = tf.compat.v1.get_default_graph  # the eager "global" graph holding TF1 collections


def _nets():
    from tf_slim.nets import alexnet, inception, overfeat, resnet_v1, resnet_v2, vgg

    return {
        # name: (net fn, arg_scope fn, input size)
        "alexnet_v2": (alexnet.alexnet_v2, alexnet.alexnet_v2_arg_scope, 224),
        "overfeat": (overfeat.overfeat, overfeat.overfeat_arg_scope, 231),
        "vgg_a": (vgg.vgg_a, vgg.vgg_arg_scope, 224),
        "vgg_16": (vgg.vgg_16, vgg.vgg_arg_scope, 224),
        "vgg_19": (vgg.vgg_19, vgg.vgg_arg_scope, 224),
        "inception_v1": (inception.inception_v1, inception.inception_v1_arg_scope, 224),
        "inception_v2": (inception.inception_v2, inception.inception_v2_arg_scope, 32),
        "inception_v3": (inception.inception_v3, inception.inception_v3_arg_scope, 128),
        "resnet_v1_50": (resnet_v1.resnet_v1_50, resnet_v1.resnet_arg_scope, 32),
        "resnet_v1_101": (resnet_v1.resnet_v1_101, resnet_v1.resnet_arg_scope, 32),
        "resnet_v1_152": (resnet_v1.resnet_v1_152, resnet_v1.resnet_arg_scope, 32),
        "resnet_v1_200": (resnet_v1.resnet_v1_200, resnet_v1.resnet_arg_scope, 32),
        "resnet_v2_50": (resnet_v2.resnet_v2_50, resnet_v2.resnet_arg_scope, 32),
        "resnet_v2_101": (resnet_v2.resnet_v2_101, resnet_v2.resnet_arg_scope, 32),
        "resnet_v2_152": (resnet_v2.resnet_v2_152, resnet_v2.resnet_arg_scope, 32),
        "resnet_v2_200": (resnet_v2.resnet_v2_200, resnet_v2.resnet_arg_scope, 32),
    }


NET_NAMES = [
    "alexnet_v2",
    "overfeat",
    "vgg_a",
    "vgg_16",
    "vgg_19",
    "inception_v1",
    "inception_v2",
    "inception_v3",
    "resnet_v1_50",
    "resnet_v1_101",
    "resnet_v1_152",
    "resnet_v1_200",
    "resnet_v2_50",
    "resnet_v2_101",
    "resnet_v2_152",
    "resnet_v2_200",
]


def net_owner(name: str, num_classes: int = 2) -> tuple[SlimOwner, int]:
    fn, arg_scope, size = _nets()[name]

    def build(inputs, is_training):
        return fn(inputs, num_classes=num_classes, is_training=is_training)

    return tu.slim(build, name=name, arg_scope=arg_scope()), size


def collection_sizes() -> dict[str, int]:
    """Sizes of the non-empty TF1 collections of the eager global graph (tf.function itself
    leaves empty 'variables'-style keys behind)."""
    graph = ops()
    sizes = {key: len(graph.get_collection(key)) for key in graph.get_all_collection_keys()}
    return {key: size for key, size in sizes.items() if size}


def image(size: int, seed: int = 0) -> np.ndarray:
    return np.random.RandomState(seed).uniform(-1, 1, (1, size, size, 3)).astype(np.float32)


# ---------------------------------------------------------------------- all 16 nets


@pytest.mark.parametrize("name", NET_NAMES)
def test_net_eager_function_graph(name):
    """One test per net (the heaviest part of this file): eager, tf.function, graph."""
    owner, size = net_owner(name)
    x = image(size)
    before = collection_sizes()

    out = owner(tf.constant(x)).numpy()
    names = list(owner.variables)
    assert names[0].startswith(name.replace("inception_v", "InceptionV"))
    assert all(":" not in n for n in names)
    assert owner.endpoints and len(owner.losses) > 0
    again = owner(tf.constant(x)).numpy()
    np.testing.assert_allclose(again, out, rtol=1e-6, atol=1e-6)
    assert list(owner.variables) == names  # reused, not duplicated

    traced = tf.function(lambda inputs: owner(inputs))(tf.constant(x)).numpy()
    # tf.function runs grappler (conv+bias+relu / batch-norm fusion), which rounds
    # differently from eager op-by-op execution: float noise, not different weights. Untrained
    # 200-layer nets give logits up to ~5e8, so the error is relative to the largest logit
    # (measured 3e-6..5e-6; elementwise it reached 3e-4 on the smaller of two logits).
    assert np.max(np.abs(traced - out)) <= 1e-4 * np.max(np.abs(out))
    assert list(owner.variables) == names
    assert collection_sizes() == before  # no end_points (or other) collection leak

    graph = tf.Graph()
    with graph.as_default():
        g_owner, _ = net_owner(name)
        placeholder = tf.compat.v1.placeholder(tf.float32, x.shape)
        g_out = g_owner(placeholder)
        assert [(n, v.shape.as_list()) for n, v in g_owner.variables.items()] == [
            (n, v.shape.as_list()) for n, v in owner.variables.items()
        ]
        assert sorted(g_owner.endpoints) == sorted(owner.endpoints)
        assert len(g_owner.losses) == len(owner.losses)
        assert {v.name for v in tf.compat.v1.global_variables()} == {
            v.name for v in g_owner.variables.values()
        }
        with tf.compat.v1.Session(graph=graph) as sess:
            g_owner.initialize(session=sess)
            assert sess.run(g_out, {placeholder: x}).shape == out.shape


# ---------------------------------------------------------------------- endpoints


def test_endpoints_of_last_call_and_no_collection_growth():
    owner, size = net_owner("resnet_v1_50")
    before = collection_sizes()
    counts = []
    for _ in range(3):
        owner(tf.constant(image(size)))
        counts.append(len(owner.endpoints))
        assert collection_sizes() == before
    assert counts[0] == counts[1] == counts[2] > 70
    points = owner.endpoints
    assert "resnet_v1_50/block1" in points and isinstance(points["resnet_v1_50/block1"], tf.Tensor)


def test_endpoints_collected_when_fn_returns_only_net():
    def fn(inputs, is_training):
        with tf.compat.v1.variable_scope("tiny", values=[inputs]) as sc:
            with slim.arg_scope(
                [slim.conv2d, slim.max_pool2d],
                outputs_collections=sc.original_name_scope + "_end_points",
            ):
                net = slim.conv2d(inputs, 4, [3, 3], scope="conv1")
                return slim.max_pool2d(net, [2, 2], scope="pool1")

    eager = tu.slim(fn, name="tiny")
    eager(tf.ones([1, 8, 8, 3]))
    assert sorted(eager.endpoints) == ["tiny/conv1", "tiny/pool1"]
    with tf.Graph().as_default():
        g_owner = tu.slim(fn, name="tiny")
        g_owner(tf.ones([1, 8, 8, 3]))
        assert sorted(g_owner.endpoints) == ["tiny/conv1", "tiny/pool1"]


# ---------------------------------------------------------------------- losses


WEIGHT_DECAY = 0.01


def small_fn(inputs, is_training):
    with tf.compat.v1.variable_scope("small", values=[inputs]):
        net = slim.conv2d(inputs, 4, [3, 3], scope="conv1")
        net = slim.batch_norm(net, is_training=is_training, scope="bn")
        net = slim.flatten(net)
        return slim.fully_connected(net, 3, activation_fn=None, scope="logits")


def small_scope():
    with slim.arg_scope(
        [slim.conv2d, slim.fully_connected], weights_regularizer=slim.l2_regularizer(WEIGHT_DECAY)
    ) as sc:
        return sc


def expected_decay(owner) -> float:
    weights = [v for n, v in owner.variables.items() if n.endswith("/weights")]
    assert len(weights) == 2
    return sum(WEIGHT_DECAY * float(np.sum(np.square(w.numpy()))) / 2 for w in weights)


def test_weight_decay_losses_eager_and_function():
    owner = tu.slim(small_fn, name="small", arg_scope=small_scope())
    owner(tf.ones([2, 6, 6, 3]))
    assert len(owner.losses) == 2
    total = float(tf.add_n(owner.losses))
    np.testing.assert_allclose(total, expected_decay(owner), rtol=1e-6)

    @tf.function
    def in_function(x):
        owner(x)
        return tf.add_n(owner.losses)

    np.testing.assert_allclose(float(in_function(tf.ones([2, 6, 6, 3]))), total, rtol=1e-6)
    for var in owner.trainable_variables:  # losses follow the current values
        var.assign(var * 2.0)
    np.testing.assert_allclose(float(tf.add_n(owner.losses)), 4 * total, rtol=1e-6)


def test_weight_decay_losses_graph():
    with tf.Graph().as_default() as graph:
        owner = tu.slim(small_fn, name="small", arg_scope=small_scope())
        owner(tf.ones([2, 6, 6, 3]))
        owner(tf.ones([2, 6, 6, 3]))  # a second call adds no second set of losses
        assert len(owner.losses) == 2
        total = tf.add_n(owner.losses)
        with tf.compat.v1.Session(graph=graph) as sess:
            owner.initialize(session=sess)
            weights = [v for n, v in owner.variables.items() if n.endswith("/weights")]
            values = sess.run(weights)
            expected = sum(WEIGHT_DECAY * float(np.sum(np.square(w))) / 2 for w in values)
            np.testing.assert_allclose(sess.run(total), expected, rtol=1e-6)


# ---------------------------------------------------------------------- batch norm


def moving_mean(owner):
    return owner.variables["small/bn/moving_mean"]


def test_batch_norm_updates_eager_and_function():
    owner = tu.slim(small_fn, name="small")
    x = tf.constant(image(6) + 3.0)
    owner(x, training=False)
    start = moving_mean(owner).numpy().copy()
    owner(x, training=False)
    np.testing.assert_array_equal(moving_mean(owner).numpy(), start)
    owner(x, training=True)
    eager_moved = moving_mean(owner).numpy().copy()
    assert not np.allclose(eager_moved, start)
    step = tf.function(lambda inputs: owner(inputs, training=True))
    step(x)
    assert not np.allclose(moving_mean(owner).numpy(), eager_moved)
    assert owner._updates() == []  # eagerly the updates ran during the call


def test_batch_norm_update_ops_in_session():
    with tf.Graph().as_default() as graph:
        owner = tu.slim(small_fn, name="small")
        x = tf.constant(image(6) + 3.0)
        train_out = owner(x, training=True)
        owner(x, training=False)
        updates = owner._updates()
        assert len(updates) == 2  # moving_mean and moving_variance
        assert all(
            u in tf.compat.v1.get_collection(tf.compat.v1.GraphKeys.UPDATE_OPS) for u in updates
        )
        mean = moving_mean(owner)
        with tf.compat.v1.Session(graph=graph) as sess:
            owner.initialize(session=sess)
            start = sess.run(mean)
            sess.run(train_out)  # without the update ops nothing moves (TF1 semantics)
            np.testing.assert_array_equal(sess.run(mean), start)
            sess.run([train_out, updates])
            assert not np.allclose(sess.run(mean), start)


def test_optimizer_train_op_moves_weights_and_moving_statistics_in_session():
    tf_keras = pytest.importorskip("tf_keras")
    with tf.Graph().as_default() as graph:
        owner = tu.slim(small_fn, name="small")
        logits = owner(tf.constant(image(6) + 3.0), training=True)
        loss = tf.reduce_mean(tf.square(logits))
        opt = tu.Optimizer(tf_keras.optimizers.SGD(0.1), owner)
        train = opt.train_op(loss)
        weights, mean = owner.variables["small/logits/weights"], moving_mean(owner)
        grad = tf.gradients(loss, [weights])[0]
        batch_mean = tf.reduce_mean(graph.get_tensor_by_name("small/conv1/Relu:0"), [0, 1, 2])
        with tf.compat.v1.Session(graph=graph) as sess:
            tu.Parameters("run", model=owner, opt=opt).initialize(session=sess)
            w0, m0, g, b = sess.run([weights, mean, grad, batch_mean])
            sess.run(train)  # one op: the gradient step and the batch-norm updates
            w1, m1 = sess.run([weights, mean])
            np.testing.assert_allclose(w1, w0 - 0.1 * g, rtol=1e-6, atol=1e-6)
            # Slim's batch_norm: moving_mean += (batch mean - moving_mean) * (1 - 0.999)
            np.testing.assert_allclose(m1, m0 + (b - m0) * (1 - 0.999), rtol=1e-6, atol=1e-6)
            assert np.abs(m1 - m0).max() > 0 and np.abs(w1 - w0).max() > 0
            assert sess.run(opt.optimizer.iterations) == 1


# ---------------------------------------------------------------------- reuse and errors


def unscoped_fn(inputs, is_training):
    return slim.fully_connected(slim.fully_connected(inputs, 4), 2)


@pytest.mark.parametrize("mode", ["eager", "function"])
def test_layers_without_scope_reuse_their_variables(mode):
    owner = tu.slim(unscoped_fn, name="fc")
    call = owner if mode == "eager" else tf.function(lambda x, t: owner(x, training=t))
    first = call(tf.ones([1, 3]), False)
    names = list(owner.variables)
    assert names == [
        "fully_connected/weights",
        "fully_connected/biases",
        "fully_connected_1/weights",
        "fully_connected_1/biases",
    ]
    second = call(tf.ones([1, 3]), True)  # a retrace in tf.function
    assert list(owner.variables) == names
    np.testing.assert_allclose(second.numpy(), first.numpy(), rtol=1e-6, atol=1e-6)


def test_layers_without_scope_reuse_in_graph():
    with tf.Graph().as_default():
        owner = tu.slim(unscoped_fn, name="fc")
        owner(tf.ones([1, 3]))
        owner(tf.ones([1, 3]))
        assert len(owner.variables) == len(tf.compat.v1.global_variables()) == 4


def test_unscoped_owner_beside_native_slim_training_in_one_graph():
    """Code built after the owner in its graph gets the next default names, as natively
    (fully_connected_2, ...), instead of colliding with the owner's variables."""
    xv = np.random.RandomState(0).uniform(-1, 1, (8, 3)).astype(np.float32)
    with tf.Graph().as_default() as graph:
        x = tf.compat.v1.placeholder(tf.float32, [None, 3])
        owner = tu.slim(unscoped_fn, name="fc")
        first = owner(x)
        native = unscoped_fn(x, True)  # plain Slim, no scopes, same graph
        other = tu.slim(unscoped_fn, name="other")
        other(x)
        again = owner(x, training=True)  # a later call still reuses the first call's names
        layer = "fully_connected{}/weights".format
        assert list(owner.variables)[::2] == [layer(""), layer("_1")]
        assert list(other.variables)[::2] == [layer("_4"), layer("_5")]
        native_vars = [
            v
            for v in tf.compat.v1.trainable_variables()
            if v.name.startswith(("fully_connected_2/", "fully_connected_3/"))
        ]
        assert len(native_vars) == 4 and len(tf.compat.v1.global_variables()) == 12
        loss = tf.reduce_mean(tf.square(native - 1.0))
        step = tf.compat.v1.train.GradientDescentOptimizer(0.1).minimize(loss, var_list=native_vars)
        with tf.compat.v1.Session(graph=graph) as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            before = sess.run(first, {x: xv})
            losses = [sess.run([loss, step], {x: xv})[0] for _ in range(20)]
            assert losses[-1] < losses[0]  # the native net trains ...
            np.testing.assert_array_equal(sess.run(first, {x: xv}), before)  # ... alone
            np.testing.assert_array_equal(sess.run(again, {x: xv}), before)


def changing_fn(inputs, is_training):
    net = slim.fully_connected(inputs, 4, scope="fc1")
    if is_training:  # a layer built only on some calls: a new variable on a later call
        net = slim.fully_connected(net, 4, scope="extra")
    return net


@pytest.mark.parametrize("mode", ["eager", "function", "graph"])
def test_new_variable_on_later_call_raises(mode):
    match = r"'changing' \(tf_slim\) tried to create variable 'extra/weights' on a later call"
    if mode == "graph":
        with tf.Graph().as_default():
            owner = tu.slim(changing_fn, name="changing")
            owner(tf.ones([1, 3]), training=False)
            with pytest.raises(DuplicateVariablesError, match=match + r" \(in graph"):
                owner(tf.ones([1, 3]), training=True)
        return
    owner = tu.slim(changing_fn, name="changing")
    call = owner if mode == "eager" else tf.function(lambda x, t: owner(x, training=t))
    call(tf.ones([1, 3]), False)
    where = "eagerly" if mode == "eager" else "inside tf.function"
    with pytest.raises(DuplicateVariablesError, match=match + rf" \({where}\)"):
        call(tf.ones([1, 3]), True)
    assert list(owner.variables) == ["fc1/weights", "fc1/biases"]


def bn_changing_fn(inputs, is_training):
    net = slim.fully_connected(
        inputs,
        4,
        scope="fc1",
        normalizer_fn=slim.batch_norm,
        normalizer_params={"is_training": True},
        weights_regularizer=slim.l2_regularizer(0.1),
    )
    if is_training:
        net = slim.fully_connected(net, 4, scope="extra")
    return net


def test_failed_later_call_in_graph_leaves_collections_unchanged():
    with tf.Graph().as_default() as graph:
        owner = tu.slim(bn_changing_fn, name="changing")
        owner(tf.ones([2, 3]))

        def snapshot():
            return {
                key: [id(item) for item in graph.get_collection(key)]
                for key in graph.get_all_collection_keys()
            }

        before = snapshot()
        keys = tf.compat.v1.GraphKeys
        assert len(before[keys.UPDATE_OPS]) == 2 and len(before[keys.REGULARIZATION_LOSSES]) == 1
        with pytest.raises(
            DuplicateVariablesError,
            match=r"tried to create variable "
            r"'extra/weights' on a later call \(in graph",
        ):
            owner(tf.ones([2, 3]), training=True)  # batch_norm ran before the failure
        assert snapshot() == before  # UPDATE_OPS, REGULARIZATION_LOSSES, variables, ...
        assert [id(u) for u in owner._updates()] == before[keys.UPDATE_OPS]
        assert len(owner.losses) == 1
        owner(tf.ones([2, 3]))  # and the owner still works
        assert len(owner.variables) == 4  # fc1/weights and batch_norm beta, mean, variance


def loose_fn(inputs, is_training):
    net = slim.fully_connected(inputs, 2, scope="fc")
    scale = tf.Variable(2.0, name="scale")  # not get_variable: would be re-created each call
    return net * scale


@pytest.mark.parametrize("mode", ["eager", "function", "graph"])
def test_loose_tf_variable_raises(mode):
    match = (
        r"'loose' \(tf_slim\) created variable 'scale' with tf.Variable, outside any "
        r"TF1 variable scope/store \({}\)\. Expected every variable to come from "
        r"tf.compat.v1.get_variable .*Fix: create it with slim.model_variable"
    )
    if mode == "graph":
        with tf.Graph().as_default():
            owner = tu.slim(loose_fn, name="loose")
            with pytest.raises(OwnershipError, match=match.format(r"in graph 0x[0-9a-f]+")):
                owner(tf.ones([1, 3]))  # refused on the first call, not the second
            assert not owner.built
            assert tf.compat.v1.global_variables() == []  # nothing left behind
            assert tf.compat.v1.get_collection(tf.compat.v1.GraphKeys.MODEL_VARIABLES) == []
            # The failed call's ops stay in the graph (TF1 cannot delete ops): a retry in
            # it would get renamed variables (fc/weights_1), which is refused, not hidden.
            fixed = tu.slim(lambda x, t: slim.fully_connected(x, 2, scope="fc"), name="fixed")
            with pytest.raises(
                DuplicateVariablesError,
                match=r"'fixed' \(tf_slim\): variable "
                r"'fc/weights' would be created as 'fc/weights_1' in graph "
                r"0x[0-9a-f]+, because the graph already has an op named "
                r"'fc/weights' .*Fix: build the model in a fresh tf.Graph\(\)",
            ):
                fixed(tf.ones([1, 3]))
            assert tf.compat.v1.global_variables() == []
        with tf.Graph().as_default():
            fixed = tu.slim(lambda x, t: slim.fully_connected(x, 2, scope="fc"), name="fixed")
            fixed(tf.ones([1, 3]))
            assert list(fixed.variables) == ["fc/weights", "fc/biases"]
        return
    owner = tu.slim(loose_fn, name="loose")
    call = owner if mode == "eager" else tf.function(lambda x: owner(x))
    where = "eagerly" if mode == "eager" else "inside tf.function"
    with pytest.raises(OwnershipError, match=match.format(where)):
        call(tf.ones([1, 3]))
    assert not owner.built


def test_second_owner_of_same_net_in_one_graph_raises():
    with tf.Graph().as_default():
        tu.slim(changing_fn, name="a")(tf.ones([1, 3]))
        with pytest.raises(
            DuplicateVariablesError,
            match=r"'b' \(tf_slim\): variable 'fc1/weights' already exists in graph",
        ):
            tu.slim(changing_fn, name="b")(tf.ones([1, 3]))


def test_a_slim_nets_function_passed_directly():
    """tf_slim.nets functions are (inputs, num_classes=..., is_training=...): the flag
    must arrive by keyword (positionally it became num_classes: a silent 1-class head)."""
    from tf_slim.nets import resnet_v1

    owner = tu.slim(
        resnet_v1.resnet_v1_50, name="resnet_v1_50", arg_scope=resnet_v1.resnet_arg_scope()
    )
    x = tf.constant(image(32) + 1.0)
    out = owner(x, training=False)
    assert out.shape == (1, 1, 1, 2048)  # num_classes=None by default: pooled features
    assert not any("logits" in name for name in owner.variables)
    mean = owner.variables["resnet_v1_50/conv1/BatchNorm/moving_mean"]
    start = mean.numpy().copy()
    np.testing.assert_array_equal(owner(x, training=False), out)
    np.testing.assert_array_equal(mean.numpy(), start)  # is_training=False: no update
    owner(x, training=True)
    assert not np.allclose(mean.numpy(), start)  # is_training=True: statistics move


def test_training_flag_reaches_fn_by_keyword_or_position():
    seen = []

    def by_keyword(inputs, num_classes=7, is_training=True):
        seen.append(("keyword", num_classes, is_training))
        return slim.fully_connected(inputs, 2, scope="fc")

    def by_position(inputs, flag):
        seen.append(("position", flag))
        return slim.fully_connected(inputs, 2, scope="fc")

    tu.slim(by_keyword, name="k")(tf.ones([1, 3]), training=False)
    tu.slim(by_position, name="p")(tf.ones([1, 3]), training=True)
    assert seen == [("keyword", 7, False), ("position", True)]


def test_bad_arguments_raise():
    with pytest.raises(TypeError, match=r"expected fn to be a function .* got int"):
        tu.slim(3, name="x")
    with pytest.raises(TypeError, match=r"expected arg_scope to be the dict .* got function"):
        tu.slim(small_fn, name="x", arg_scope=small_scope)
    with pytest.raises(tu.NoBridgeError, match=r"slim: wraps functions through tu.slim"):
        tu.wrap(small_fn)


def test_built_eagerly_then_called_in_graph_raises():
    owner = tu.slim(small_fn, name="small")
    owner(tf.ones([1, 6, 6, 3]))
    with tf.Graph().as_default():
        with pytest.raises(tu.GraphModeError, match="was built eagerly but is now called in graph"):
            owner(tf.ones([1, 6, 6, 3]))


# ---------------------------------------------------------------------- legacy fixes


def test_import_tfunite_applies_no_fix():
    code = (
        "import sys, tfunite, tfunite.bridges\n"
        "from tfunite import fixes\n"
        "from tensorflow.python.framework import ops\n"
        "assert not any(f.applied for f in fixes.FIXES.values()), fixes.status()\n"
        "assert 'slim-batch-norm-import' not in fixes.FIXES\n"
        "assert 'tf_slim' not in sys.modules\n"
        "assert not hasattr(ops, 'Tensor')\n"
        "print('clean')\n"
    )
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "clean" in result.stdout


def test_fix_checks_need_no_tf_slim_import_and_follow_the_patches():
    code = (
        "import json, sys, tensorflow as tf\n"
        "from tfunite import fixes\n"
        "from tfunite.bridges import slim_fixes\n"
        "needed = {n: fixes.FIXES[n].needed() for n in slim_fixes.SLIM_FIXES}\n"
        "print(json.dumps({'needed': needed, 'tf_slim': 'tf_slim' in sys.modules,"
        " 'eager': tf.executing_eagerly(),"
        " 'bridges': sorted({b for n in slim_fixes.SLIM_FIXES for b in fixes.FIXES[n].bridges})}))\n"
    )
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    got = json.loads(result.stdout.strip().splitlines()[-1])
    # TF 2.21 + tf-slim 1.1 have every bug; asking imports neither tf_slim nor TFLearn.
    assert got == {
        "needed": dict.fromkeys(slim_fixes.SLIM_FIXES, True),
        "tf_slim": False,
        "eager": True,
        "bridges": ["slim"],
    }

    fixes.ensure("slim")  # applied: nothing left to fix
    checks = (slim_fixes.SLIM_EAGER_NAME_SCOPES, slim_fixes.SLIM_COLLECTIONS_IDENTITY)
    assert [fix.needed() for fix in checks] == [False, False]
    try:
        for fix in checks:
            fixes.undo(fix.name)
        assert [fix.needed() for fix in checks] == [True, True]
    finally:
        fixes.ensure("slim")


def test_fixes_apply_once_and_undo():
    from tensorflow.python.framework import ops as tf_ops
    from tensorflow.python.layers import normalization
    from tf_slim.layers import layers

    tu.slim(small_fn, name="small")  # first use applies the fixes
    applied = fixes.ensure("slim")
    assert set(slim_fixes.SLIM_FIXES) <= set(applied)
    patched = (layers.ops, layers._add_variable_to_collections, normalization.normalization)
    assert fixes.ensure("slim") == applied  # twice is harmless: nothing re-patched
    assert (layers.ops, layers._add_variable_to_collections, normalization.normalization) == patched

    try:
        for name in slim_fixes.SLIM_FIXES:
            fixes.undo(name)
            fixes.undo(name)  # undoing twice is harmless too
        assert layers.ops is tf_ops
        assert layers._add_variable_to_collections is not patched[1]
        assert not hasattr(tf_ops, "Tensor")
        assert not any(f["applied"] for f in fixes.status() if f["name"] in slim_fixes.SLIM_FIXES)
    finally:
        fixes.ensure("slim")
    assert hasattr(tf_ops, "Tensor") and type(layers.ops) is type(patched[0])


def test_batch_norm_without_update_collection_and_variables_collections():
    """Paths that needed `ops.Tensor` and an identity `in` test on collections."""

    def fn(inputs, is_training):
        net = slim.conv2d(inputs, 4, [3, 3], scope="conv", variables_collections=["mine"])
        return slim.batch_norm(net, is_training=is_training, updates_collections=None, scope="bn")

    owner = tu.slim(fn, name="bn")
    x = tf.constant(image(6) + 3.0)
    owner(x, training=True)
    owner(x, training=True)
    assert ops().get_collection("mine") == []  # eager collections do not leak
    with tf.Graph().as_default() as graph:
        g_owner = tu.slim(fn, name="bn")
        out = g_owner(tf.constant(image(6) + 3.0), training=True)
        assert len(tf.compat.v1.get_collection("mine")) == 2
        with tf.compat.v1.Session(graph=graph) as sess:
            g_owner.initialize(session=sess)
            start = sess.run(g_owner.variables["bn/moving_mean"])
            sess.run(out)  # updates_collections=None: updates run in place
            assert not np.allclose(sess.run(g_owner.variables["bn/moving_mean"]), start)


# ---------------------------------------------------------------------- checkpoints


@pytest.fixture(scope="module")
def graph_checkpoints(tmp_path_factory):
    """resnet_v2_50 built, initialized and saved by TF1 Savers (V1 and V2) in a graph.

    Returns ({"V1": path, "V2": path}, x, graph output for x).
    """
    x = image(32, seed=1)
    root = tmp_path_factory.mktemp("slim_ckpt")
    paths = {}
    graph = tf.Graph()
    with graph.as_default():
        owner, _ = net_owner("resnet_v2_50", num_classes=3)
        placeholder = tf.compat.v1.placeholder(tf.float32, x.shape)
        out = owner(placeholder)
        # non-trivial moving statistics, so that loading them is checked too
        randomize = tf.group(
            [
                var.assign(tf.random.uniform(var.shape, 0.5, 1.5, seed=7))
                for var in owner.non_trainable_variables
            ]
        )
        with tf.compat.v1.Session(graph=graph) as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            sess.run(randomize)
            y = sess.run(out, {placeholder: x})
            for version in ("V1", "V2"):
                saver = tf.compat.v1.train.Saver(
                    write_version=getattr(tf.compat.v1.train.SaverDef, version)
                )
                (root / version).mkdir()
                paths[version] = saver.save(sess, str(root / version / "model.ckpt"))
    return paths, x, y


@pytest.mark.parametrize("version", ["V1", "V2"])
def test_saver_checkpoint_names_map_one_to_one(graph_checkpoints, version):
    paths, x, _ = graph_checkpoints
    owner, _ = net_owner("resnet_v2_50", num_classes=3)
    owner(tf.constant(x))
    in_checkpoint = dict(tf.train.list_variables(paths[version]))
    assert {n: v.shape.as_list() for n, v in owner.variables.items()} == in_checkpoint


@pytest.mark.parametrize("version", ["V1", "V2"])
def test_saver_checkpoint_loads_into_eager_owner(graph_checkpoints, version):
    paths, x, y = graph_checkpoints
    owner, _ = net_owner("resnet_v2_50", num_classes=3)
    owner(tf.constant(x))
    owner.load(paths[version])
    np.testing.assert_allclose(owner(tf.constant(x)).numpy(), y, rtol=1e-6, atol=1e-6)
