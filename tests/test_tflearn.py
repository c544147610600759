"""The TFLearn bridge against the real tflearn 0.5: eager, tf.function and TF1 graph + Session.

Each supported layer runs eagerly and in tf.function with identical outputs and its
variables created once; names equal the TF1 names; the training flag, regularizers,
errors, legacy fixes, a TFLearn `DNN` beside an owner, and checkpoints (tfunite's own and
`DNN.save` files) are checked on small nets so the file stays fast.
"""

from __future__ import annotations

import importlib.util
import itertools
import os

import numpy as np
import pytest
import tensorflow as tf

if importlib.util.find_spec("tflearn") is None:  # importorskip would `import tflearn`
    pytest.skip("tflearn is not installed", allow_module_level=True)

import tfunite as tu  # noqa: E402
from tfunite import fixes  # noqa: E402
from tfunite.bridges import tflearn_fixes  # noqa: E402
from tfunite.bridges.tflearn import TFLEARN_DNN_EXTRAS, TFLearnOwner  # noqa: E402
from tfunite.bridges.tflearn_fixes import import_tflearn  # noqa: E402
from tfunite.errors import DuplicateVariablesError, GraphModeError  # noqa: E402
from tfunite.owner import canonical  # noqa: E402

from tests.conftest import run_fresh  # noqa: E402

tflearn = import_tflearn()
RTOL = ATOL = 1e-6


def _example(shape: tuple[int, ...], seed: int = 0) -> tf.Tensor:
    return tf.constant(np.random.default_rng(seed).standard_normal(shape).astype("float32"))


def _ids() -> tf.Tensor:
    return tf.constant([[1, 2, 3, 0], [4, 5, 0, 0], [9, 8, 7, 6]])


# name: (fn, example input, expected variable names after the training flag)
LAYERS = {
    "fully_connected": (
        lambda x: tflearn.fully_connected(x, 5, activation="relu", scope="fc"),
        lambda: _example((3, 6)),
        ["fc/W", "fc/b"],
    ),
    "conv_2d": (
        lambda x: tflearn.conv_2d(x, 4, 3, activation="relu", scope="conv"),
        lambda: _example((2, 8, 8, 3)),
        ["conv/W", "conv/b"],
    ),
    "max_pool_2d": (
        lambda x: tflearn.max_pool_2d(tflearn.conv_2d(x, 4, 3, scope="conv"), 2),
        lambda: _example((2, 8, 8, 3)),
        ["conv/W", "conv/b"],
    ),
    "avg_pool_2d": (
        lambda x: tflearn.avg_pool_2d(tflearn.conv_2d(x, 4, 3, scope="conv"), 2),
        lambda: _example((2, 8, 8, 3)),
        ["conv/W", "conv/b"],
    ),
    "batch_normalization": (
        lambda x: tflearn.batch_normalization(x, scope="bn"),
        lambda: _example((4, 6)),
        ["bn/beta", "bn/gamma", "bn/moving_mean", "bn/moving_variance"],
    ),
    "dropout": (
        lambda x: tflearn.dropout(tflearn.fully_connected(x, 5, scope="fc"), 0.5),
        lambda: _example((3, 6)),
        ["fc/W", "fc/b"],
    ),
    "lstm": (
        lambda x: tflearn.lstm(x, 5, scope="lstm"),
        lambda: _example((2, 4, 3)),
        ["lstm/lstm/BasicLSTMCell/Linear/Matrix", "lstm/lstm/BasicLSTMCell/Linear/Bias"],
    ),
    "gru": (
        lambda x: tflearn.gru(x, 5, scope="gru"),
        lambda: _example((2, 4, 3)),
        [
            "gru/gru/GRUCell/Gates/Linear/Matrix",
            "gru/gru/GRUCell/Gates/Linear/Bias",
            "gru/gru/GRUCell/Candidate/Linear/Matrix",
            "gru/gru/GRUCell/Candidate/Linear/Bias",
        ],
    ),
    "embedding": (
        lambda x: tflearn.embedding(x, input_dim=10, output_dim=4, scope="emb"),
        _ids,
        ["emb/W"],
    ),
}


# ------------------------------------------------------------------ import and fixes


def test_wrapping_keeps_eager_on_in_a_fresh_process():
    result = run_fresh(
        "import json, tensorflow as tf, tfunite as tu\n"
        "before = tf.executing_eagerly()\n"
        "owner = tu.tflearn(lambda x: __import__('tflearn').fully_connected(x, 2, scope='fc'),"
        " name='m')\n"
        "y = owner(tf.ones([1, 3]))\n"
        "bn = tu.tflearn(lambda x: __import__('tflearn').batch_normalization(x), name='bn')\n"
        "bn(tf.ones([2, 3]), training=True)\n"
        "import tflearn\n"  # a plain import afterwards is harmless too
        "from tfunite import fixes\n"
        "print(json.dumps({'before': before, 'after': tf.executing_eagerly(),"
        " 'v2': tf.compat.v1.executing_eagerly_outside_functions(),"
        " 'tflearn_loaded': 'tflearn' in __import__('sys').modules,"
        " 'other_fixes': [n for n in fixes.FIXES if not n.startswith('tflearn-')]}))\n"
    )
    # TFLearn (batch_normalization included) needs none of the Slim bridge's fixes.
    assert result == {
        "before": True,
        "after": True,
        "v2": True,
        "tflearn_loaded": True,
        "other_fixes": [],
    }


def test_import_tfunite_applies_no_tflearn_fix():
    result = run_fresh(
        "import json, sys, tfunite, tfunite.bridges.tflearn, tfunite.bridges.tflearn_fixes\n"
        "from tfunite import fixes\n"
        "print(json.dumps({'applied': [f['name'] for f in fixes.status() if f['applied']],"
        " 'tflearn': 'tflearn' in sys.modules}))\n"
    )
    assert result == {"applied": [], "tflearn": False}


TFLEARN_FIXES = [
    "tflearn-nest-is-sequence",
    "tflearn-pil-antialias",
    "tflearn-keep-eager",
    "tflearn-embedding-seq-length",
    "tflearn-owned-regularizers",
    "tflearn-graph-only-layers",
]


def test_fixes_are_listed_applied_and_idempotent():
    assert list(tflearn_fixes.TFLEARN_FIXES) == TFLEARN_FIXES
    status = {f["name"]: f for f in fixes.status()}
    for name in TFLEARN_FIXES:
        assert status[name]["applied"] and status[name]["undoable"], name
        assert "tflearn" in status[name]["bridges"]
    assert fixes.ensure("tflearn") == fixes.ensure("tflearn")
    assert set(TFLEARN_FIXES) <= set(fixes.ensure("tflearn"))
    # Applying twice patches once: the wrappers are not wrapped again.
    assert tflearn.variables.variable._tfunite_original.__module__ == "tflearn.variables"


def test_nest_fix_undo_and_reapply():
    from tensorflow.python.util import nest

    fixes.undo("tflearn-nest-is-sequence")
    try:
        assert not hasattr(nest, "is_sequence")
    finally:
        fixes.ensure("tflearn")
    assert nest.is_sequence is nest.is_nested


def test_embedding_fix_is_what_makes_embedding_run_eagerly():
    def embed():  # plain TFLearn, eagerly, outside any owner (which would re-apply fixes)
        return tflearn.embedding(_ids(), input_dim=10, output_dim=4, name="emb")

    fixes.undo("tflearn-embedding-seq-length")
    try:
        with pytest.raises((tf.errors.InvalidArgumentError, ValueError)):
            embed()
    finally:
        fixes.ensure("tflearn")
    assert embed().shape == (3, 4, 4)


def test_keep_eager_fix_only_ignores_tflearns_own_call():
    """Through tfunite, `import tflearn` leaves eager execution on; a user's own
    `disable_v2_behavior()` still switches it off; undo restores TensorFlow's function."""
    result = run_fresh(
        "import json, tensorflow as tf\n"
        "from tfunite import fixes\n"
        "from tfunite.bridges.tflearn_fixes import import_tflearn\n"
        "v1 = tf.compat.v1\n"
        "original = v1.disable_v2_behavior\n"
        "import_tflearn()\n"
        "after_import = tf.executing_eagerly()\n"
        "fixes.undo('tflearn-keep-eager')\n"
        "restored = v1.disable_v2_behavior is original\n"
        "fixes.ensure('tflearn')\n"
        "v1.disable_v2_behavior()  # the user's own call\n"
        "print(json.dumps({'after_import': after_import, 'restored': restored,"
        " 'after_user_call': tf.executing_eagerly()}))\n"
    )
    assert result == {"after_import": True, "restored": True, "after_user_call": False}


def test_without_keep_eager_fix_import_tflearn_switches_eager_off():
    """The control: the same import with only the fixes it needs to import at all."""
    result = run_fresh(
        "import json, tensorflow as tf\n"
        "from tfunite import fixes\n"
        "import tfunite.bridges.tflearn_fixes\n"
        "for name in ('tflearn-nest-is-sequence', 'tflearn-pil-antialias'):\n"
        "    fixes.FIXES[name].apply()\n"
        "import tflearn\n"
        "print(json.dumps({'eager': tf.executing_eagerly()}))\n"
    )
    assert result == {"eager": False}


# ------------------------------------------------------------------ layers


@pytest.mark.parametrize("layer", list(LAYERS))
def test_layer_eager_and_tf_function(layer):
    fn, example, names = LAYERS[layer]
    x = example()
    owner = tu.tflearn(fn, name=layer)
    assert isinstance(owner, TFLearnOwner)
    first = owner(x)
    assert list(owner.variables) == ["is_training", *names]
    ids = [id(v) for v in owner.variables.values()]

    second = owner(x)
    compiled = tf.function(lambda t: owner(t))(x)
    np.testing.assert_allclose(second, first, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(compiled, first, rtol=RTOL, atol=ATOL)
    assert [id(v) for v in owner.variables.values()] == ids  # created once, reused
    trainable = {canonical(v.name) for v in owner.trainable_variables}
    assert trainable == {n for n in names if "moving" not in n}


def test_names_equal_tf1_graph_names():
    def fn(x):
        x = tflearn.conv_2d(x, 4, 3, scope="conv")
        x = tflearn.batch_normalization(x, scope="bn")
        x = tflearn.max_pool_2d(x, 2)
        x = tflearn.reshape(x, [-1, 4, 16])
        x = tflearn.lstm(x, 5, return_seq=True, scope="lstm")
        x = tflearn.gru(x, 3, scope="gru")
        return tflearn.fully_connected(x, 2)  # default name: FullyConnected

    with tf.Graph().as_default():
        fn(tf.compat.v1.placeholder(tf.float32, [None, 8, 8, 3]))
        native = [canonical(v.name) for v in tf.compat.v1.global_variables()]
    owner = tu.tflearn(fn, name="net")
    owner(_example((2, 8, 8, 3)))
    # Natively the flag is created by the first layer that reads it ('bn/is_training');
    # the owner's own flag is always 'is_training'. Every other name and the order match.
    assert native[6] == "bn/is_training"
    assert list(owner.variables) == ["is_training", *native[:6], *native[7:]]


def test_unnamed_layers_get_the_same_default_names_on_every_call():
    def fn(x):
        return tflearn.fully_connected(tflearn.fully_connected(x, 4), 2)

    owner = tu.tflearn(fn, name="mlp")
    x = _example((3, 5))
    first = owner(x)
    names = list(owner.variables)
    assert names == [
        "is_training",
        "FullyConnected/W",
        "FullyConnected/b",
        "FullyConnected_1/W",
        "FullyConnected_1/b",
    ]
    np.testing.assert_allclose(owner(x), first, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(tf.function(owner)(x), first, rtol=RTOL, atol=ATOL)
    assert list(owner.variables) == names


def test_endpoints_and_no_growing_collections():
    def fn(x):
        x = tflearn.fully_connected(x, 4, scope="fc1", regularizer="L2")
        x = tflearn.dropout(x, 0.5)
        return tflearn.fully_connected(x, 2, scope="fc2")

    graph = tf.compat.v1.get_default_graph()  # eager TF1 collections live here
    before = {k: len(graph.get_collection(k)) for k in graph.get_all_collection_keys()}
    owner = tu.tflearn(fn, name="mlp")
    y = None
    for _ in range(3):
        y = owner(_example((3, 5)))
    after = {k: len(graph.get_collection(k)) for k in graph.get_all_collection_keys()}
    assert {k: n for k, n in after.items() if n} == {k: n for k, n in before.items() if n}
    assert list(owner.endpoints) == ["fc1", "Dropout", "fc2"]
    np.testing.assert_allclose(owner.endpoints["fc2"], y, rtol=RTOL, atol=ATOL)


# ------------------------------------------------------------------ training flag


def test_training_flag_is_owned_and_follows_training():
    owner = tu.tflearn(LAYERS["dropout"][0], name="drop")
    x = _example((3, 6))
    owner(x)
    flag = owner.variables["is_training"]
    assert flag.dtype == tf.bool and not flag.trainable
    assert any(v is flag for v in owner.non_trainable_variables)
    owner(x, training=True)
    assert bool(flag.numpy()) is True
    owner(x, training=False)
    assert bool(flag.numpy()) is False
    step = tf.function(lambda t: owner(t, training=True))
    step(x)
    assert bool(flag.numpy()) is True


@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "tf_function"])
def test_dropout_differs_between_training_and_inference(compiled):
    owner = tu.tflearn(lambda x: tflearn.dropout(x, 0.5), name="drop")
    x = tf.ones([64, 32])
    call = tf.function(owner) if compiled else owner
    np.testing.assert_array_equal(call(x, training=False), x)
    y = call(x, training=True).numpy()
    assert set(np.unique(y)) == {0.0, 2.0}  # kept units are scaled by 1 / keep_prob
    assert 0.3 < (y == 0).mean() < 0.7


@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "tf_function"])
def test_batch_normalization_updates_only_in_training(compiled):
    owner = tu.tflearn(lambda x: tflearn.batch_normalization(x, decay=0.5, scope="bn"), name="bn")
    x = _example((16, 3)) * 3.0 + 5.0
    call = tf.function(owner) if compiled else owner
    call(x, training=False)
    mean = owner.variables["bn/moving_mean"]
    np.testing.assert_array_equal(mean, np.zeros(3))
    inference = call(x, training=False)
    # Inference uses the moving statistics (mean 0, variance 1): gamma * x + beta.
    gamma, beta = owner.variables["bn/gamma"], owner.variables["bn/beta"]
    np.testing.assert_allclose(
        inference, x / np.sqrt(1 + 1e-5) * gamma + beta, rtol=1e-5, atol=1e-5
    )  # rsqrt(1 + eps) rounding
    np.testing.assert_array_equal(mean, np.zeros(3))
    trained = call(x, training=True).numpy()
    np.testing.assert_allclose(mean, 0.5 * x.numpy().mean(0), rtol=RTOL, atol=1e-5)
    np.testing.assert_allclose(trained.mean(0), beta.numpy(), atol=1e-3)  # batch stats


# ------------------------------------------------------------------ regularizers


def test_regularizers_reach_owner_losses_and_stay_current():
    def fn(x):
        x = tflearn.fully_connected(x, 4, scope="fc", regularizer="L2", weight_decay=0.01)
        x = tflearn.reshape(x, [-1, 2, 2, 1])
        return tflearn.conv_2d(x, 2, 2, scope="conv", regularizer="L1", weight_decay=0.1)

    owner = tu.tflearn(fn, name="reg")
    x = _example((3, 5))
    owner(x)
    fc_w, conv_w = owner.variables["fc/W"], owner.variables["conv/W"]

    def expected():
        return [0.01 * np.sum(fc_w.numpy() ** 2) / 2, 0.1 * np.sum(np.abs(conv_w.numpy()))]

    np.testing.assert_allclose(owner.losses, expected(), rtol=RTOL, atol=ATOL)
    fc_w.assign(fc_w * 2.0)  # eagerly TFLearn's own collection would keep the old value
    np.testing.assert_allclose(owner.losses, expected(), rtol=RTOL, atol=ATOL)
    owner(x)
    assert len(owner.losses) == 2  # no duplicates from later calls

    @tf.function
    def loss_and_grad():
        with tf.GradientTape() as tape:
            total = tf.add_n(owner.losses)
        return total, tape.gradient(total, fc_w)

    want = expected()
    with tf.Graph().as_default():  # asked from inside a TF1 graph: still eager values
        got = [loss.numpy() for loss in owner.losses]
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL)
    total, grad = loss_and_grad()
    np.testing.assert_allclose(total, sum(expected()), rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(grad, 0.01 * fc_w.numpy(), rtol=RTOL, atol=ATOL)


# ------------------------------------------------------------------ TF1 graph + Session


def _mlp(x):
    x = tflearn.fully_connected(
        x, 8, activation="relu", scope="fc1", regularizer="L2", weight_decay=0.01
    )
    x = tflearn.batch_normalization(x, scope="bn")
    x = tflearn.dropout(x, 0.8)
    return tflearn.fully_connected(x, 3, activation="softmax", scope="out")


def _data() -> tuple[np.ndarray, np.ndarray]:
    x = np.random.default_rng(0).standard_normal((8, 6)).astype("float32")
    return x, np.eye(3, dtype="float32")[np.arange(8) % 3]


def _mlp_default_names(x):
    """_mlp with no scopes: TFLearn's default names (FullyConnected, FullyConnected_1)."""
    x = tflearn.fully_connected(x, 8, activation="relu", regularizer="L2", weight_decay=0.01)
    x = tflearn.batch_normalization(x)
    x = tflearn.dropout(x, 0.8)
    return tflearn.fully_connected(x, 3, activation="softmax")


def test_graph_session_owner_beside_a_tflearn_dnn():
    """An owner and a TFLearn DNN in one graph, both with default layer names: the DNN's
    layers come after the owner's (FullyConnected_2, ...), as natively, not onto them."""
    xv, yv = _data()
    with tf.Graph().as_default():
        owner = tu.tflearn(_mlp_default_names, name="mlp")
        x = tf.compat.v1.placeholder(tf.float32, [None, 6])
        infer, train = owner(x), owner(x, training=True)
        assert list(owner.variables) == [
            "is_training",
            "FullyConnected/W",
            "FullyConnected/b",
            "BatchNormalization/beta",
            "BatchNormalization/gamma",
            "BatchNormalization/moving_mean",
            "BatchNormalization/moving_variance",
            "FullyConnected_1/W",
            "FullyConnected_1/b",
        ]

        net = tflearn.input_data(shape=[None, 6])  # TFLearn's own model, same graph
        net = tflearn.fully_connected(net, 8)
        net = tflearn.fully_connected(net, 3, activation="softmax")
        model = tflearn.DNN(tflearn.regression(net, optimizer="sgd", learning_rate=0.1))
        dnn_w = [
            v
            for v in tf.compat.v1.trainable_variables()
            if canonical(v.name) in ("FullyConnected_2/W", "FullyConnected_3/W")
        ]
        assert len(dnn_w) == 2
        start = model.session.run(dnn_w)
        model.fit(xv, yv, n_epoch=2, batch_size=4, show_metric=False)
        assert all(np.abs(a - b).max() > 0 for a, b in zip(model.session.run(dnn_w), start))
        assert np.array(model.predict(xv)).shape == (8, 3)

        sess = model.session
        owner.initialize(session=sess)
        a, b = sess.run(infer, {x: xv}), sess.run(infer, {x: xv})
        np.testing.assert_array_equal(a, b)
        mean = owner.variables["BatchNormalization/moving_mean"]
        np.testing.assert_array_equal(sess.run(mean), np.zeros(8))
        sess.run(train, {x: xv})
        assert np.abs(sess.run(mean)).max() > 0  # batch-norm update ran with the output
        assert sess.run(owner.variables["is_training"])
        losses = owner.losses
        assert len(losses) == 1
        w = sess.run(owner.variables["FullyConnected/W"])
        np.testing.assert_allclose(
            sess.run(losses[0]), 0.01 * np.sum(w**2) / 2, rtol=RTOL, atol=ATOL
        )
        # The owner's flag is shown to its layers only: TFLearn's own stays global.
        assert all(
            v is not owner.variables["is_training"]
            for v in tf.compat.v1.get_collection("is_training")
        )


# ------------------------------------------------------------------ errors


@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "tf_function"])
@pytest.mark.parametrize("layer", ["input_data", "regression"])
def test_graph_only_layers_raise_a_clear_error(layer, compiled):
    def fn(x):
        if layer == "input_data":
            x = tflearn.input_data(shape=[None, 4])
            return tflearn.fully_connected(x, 2, scope="fc")
        return tflearn.regression(tflearn.fully_connected(x, 2, scope="fc"))

    owner = tu.tflearn(fn, name="bad")
    call = tf.function(owner) if compiled else owner
    where = "inside tf.function" if compiled else "eagerly"
    with pytest.raises(
        GraphModeError,
        match=rf"tflearn\.{layer} was called inside TFLearn "
        rf"owner 'bad' {where}\. It creates a tf\.placeholder, which exists "
        r"only in a TF1 graph .*Fix: .*with tf\.Graph\(\)\.as_default\(\)",
    ):
        call(tf.ones([2, 4]))


def test_input_data_still_works_in_a_graph_owner():
    def fn(x):
        return tflearn.fully_connected(tflearn.input_data(placeholder=x), 2, scope="fc")

    with tf.Graph().as_default():
        owner = tu.tflearn(fn, name="g")
        y = owner(tf.compat.v1.placeholder(tf.float32, [None, 4]))
        assert y.shape.as_list() == [None, 2]


@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "tf_function"])
def test_new_variables_on_a_later_call_raise(compiled):
    counter = itertools.count()

    def fn(x):  # a scope that depends on Python state: a new layer on every call
        return tflearn.fully_connected(x, 2, scope=f"fc{next(counter)}")

    owner = tu.tflearn(fn, name="drift")
    x = tf.ones([2, 4])
    owner(x)
    call = tf.function(owner) if compiled else owner
    where = "inside tf.function" if compiled else "eagerly"
    with pytest.raises(
        DuplicateVariablesError,
        match=rf"Owner 'drift' \(tflearn\) tried to create variable 'fc\d/W' "
        rf"on a later call \({where}\)\. Expected the variables of the first "
        r"call to be reused.*Fix: ",
    ):
        call(x)
    assert list(owner.variables) == ["is_training", "fc0/W", "fc0/b"]


def test_new_variables_on_a_later_call_raise_in_a_graph():
    counter = itertools.count()

    def fn(x):
        return tflearn.fully_connected(x, 2, scope=f"fc{next(counter)}")

    with tf.Graph().as_default():
        owner = tu.tflearn(fn, name="drift")
        x = tf.compat.v1.placeholder(tf.float32, [None, 4])
        owner(x)
        with pytest.raises(
            DuplicateVariablesError,
            match=r"tried to create variable "
            r"'fc1/W' on a later call \(in graph",
        ):
            owner(x)


def test_not_a_function_is_refused():
    with pytest.raises(
        TypeError,
        match=r"tu\.tflearn\(fn, name='m'\): expected a function "
        r"fn\(inputs\) -> net, got \w*Tensor\. Fix: pass the function",
    ):
        tu.tflearn(tf.ones([2]), name="m")


# ------------------------------------------------------------------ checkpoints


def test_checkpoint_round_trip(tmp_path):
    a, b = tu.tflearn(_mlp, name="a"), tu.tflearn(_mlp, name="b")
    x = tf.constant(_data()[0])
    a(x, training=True)  # moves the batch-norm statistics, sets the flag
    b(x)
    path = tu.save(a, str(tmp_path / "ckpt"))
    names = {entry["name"] for entry in tu.inspect(path)}
    assert names == set(a.variables)  # the flag is checkpointed too
    report = tu.load(b, path)
    assert report.ok and len(report.matched) == len(a.variables)
    for name, var in a.variables.items():
        np.testing.assert_array_equal(b.variables[name], var, err_msg=name)
    np.testing.assert_allclose(b(x), a(x), rtol=RTOL, atol=ATOL)


@pytest.fixture(scope="module")
def dnn_file(tmp_path_factory):
    """A TFLearn DNN (_mlp, Adam) trained and saved with DNN.save: (path, x, predictions)."""
    xv, yv = _data()
    path = os.path.join(tmp_path_factory.mktemp("dnn"), "dnn.ckpt")
    with tf.Graph().as_default():
        net = _mlp(tflearn.input_data(shape=[None, 6]))
        model = tflearn.DNN(tflearn.regression(net, optimizer="adam", learning_rate=0.01))
        model.fit(xv, yv, n_epoch=3, batch_size=4, show_metric=False)
        want = np.array(model.predict(xv))
        model.save(path)
    return path, xv, want


def test_dnn_save_file_loads_into_an_eager_owner(dnn_file):
    path, xv, want = dnn_file
    owner = tu.tflearn(_mlp, name="dnn")
    owner(tf.constant(xv))
    # A DNN file also holds optimizer slots, step counters and TFLearn's global flag;
    # strict=False loads what the owner has, and the report lists the rest.
    report = tu.load(owner, path, strict=False)
    assert sorted(m.target for m in report.matched) == sorted(
        n for n in owner.variables if n != "is_training"
    )
    assert any(e.source.endswith("/Adam") for e in report.unexpected)
    np.testing.assert_allclose(owner(tf.constant(xv)), want, rtol=RTOL, atol=ATOL)


def test_dnn_save_file_loads_strictly_with_the_extras_rules(dnn_file):
    path, xv, want = dnn_file
    owner = tu.tflearn(_mlp, name="dnn")
    owner(tf.constant(xv))
    report = owner.load(path, rules=TFLEARN_DNN_EXTRAS)  # strict=True
    assert report.ok and not report.unexpected and not report.missing
    assert sorted(m.target for m in report.matched) == sorted(owner.variables)
    assert next(m.source for m in report.matched if m.target == "is_training") == "bn/is_training"
    # TFLearn's extras are training state (tu.TRAINING_STATE), reported as such.
    dropped = {m.source for m in report.training_state}
    assert {
        "Global_Step",
        "Training_step",
        "fc1/W/Adam",
        "fc1/W/Adam_1",
        "Adam/beta1_power",
        "Crossentropy/Mean/moving_avg",
    } <= dropped
    assert not dropped & set(owner.variables)  # no model variable is dropped
    np.testing.assert_allclose(owner(tf.constant(xv)), want, rtol=RTOL, atol=ATOL)

    # A model variable the file lacks is still refused, and nothing is assigned.
    bigger = tu.tflearn(lambda t: tflearn.fully_connected(_mlp(t), 2, scope="extra"), name="big")
    bigger(tf.constant(xv))
    before = {n: v.numpy().copy() for n, v in bigger.variables.items()}
    with pytest.raises(
        tu.LoadError,
        match=r"Refused to load .*dnn\.ckpt: 2 variable\(s\) "
        r"missing from the checkpoint, first: 'extra/W'\. Nothing was assigned",
    ):
        bigger.load(path, rules=TFLEARN_DNN_EXTRAS)
    for name, var in bigger.variables.items():
        np.testing.assert_array_equal(var, before[name], err_msg=name)


def test_checkpoints_cross_graph_and_eager(tmp_path):
    def fn(x):
        x = tflearn.fully_connected(x, 8, activation="relu", scope="fc1")
        x = tflearn.batch_normalization(x, scope="bn")
        return tflearn.fully_connected(x, 3, scope="out")

    xv = _data()[0]
    with tf.Graph().as_default():  # train the statistics in a Session, save from it
        graph_owner = tu.tflearn(fn, name="g")
        x = tf.compat.v1.placeholder(tf.float32, [None, 6])
        infer, train = graph_owner(x), graph_owner(x, training=True)
        with tf.compat.v1.Session() as sess:
            graph_owner.initialize(session=sess)
            sess.run(train, {x: xv})
            want = sess.run(infer, {x: xv})
            path = graph_owner.save(str(tmp_path / "graph"), session=sess)

    eager = tu.tflearn(fn, name="e")
    eager(tf.constant(xv))
    assert tu.load(eager, path).ok
    np.testing.assert_allclose(eager(tf.constant(xv)), want, rtol=RTOL, atol=ATOL)
    back = tu.save(eager, str(tmp_path / "eager"))

    with tf.Graph().as_default():
        graph_owner = tu.tflearn(fn, name="g")
        x = tf.compat.v1.placeholder(tf.float32, [None, 6])
        infer = graph_owner(x)
        with tf.compat.v1.Session() as sess:
            graph_owner.initialize(session=sess)
            assert graph_owner.load(back, session=sess).ok
            np.testing.assert_allclose(sess.run(infer, {x: xv}), want, rtol=RTOL, atol=ATOL)
