"""The protocol itself: composition, strict ownership, optimizers, graph checks, errors."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
import tfunite as tu
from tfunite.records import records

from tests import models

# Every framework of the records (TensorFlow itself aside).
FRAMEWORKS = tuple(r.import_name for r in records().values() if r.import_name != "tensorflow")


def test_import_tfunite_imports_no_framework():
    from tests.conftest import run_fresh

    result = run_fresh(
        "import sys, json, tensorflow\n"
        "before = set(sys.modules)\n"
        "import tfunite\n"
        "api = [getattr(tfunite, name) for name in tfunite.__all__]\n"
        "new = [m for m in set(sys.modules) - before if m.split('.')[0] in "
        f"{FRAMEWORKS!r}]\n"
        "import tfunite.fixes\n"
        "print(json.dumps({'new': sorted(new), 'fixes': [f['name'] for f in tfunite.fixes.status() if f['applied']]}))"
    )
    assert result == {"new": [], "fixes": []}


def test_import_tfunite_and_cli_help_do_not_import_tensorflow():
    """The API loads on first use, so `tfunite --help` answers without TF's start-up."""
    from tests.conftest import run_fresh

    result = run_fresh(
        "import contextlib, io, json, sys\n"
        "import tfunite\n"
        "from tfunite.tools import cli\n"
        "with contextlib.redirect_stdout(io.StringIO()) as out:\n"
        "    try:\n"
        "        cli.main(['--help'])\n"
        "    except SystemExit as e:\n"
        "        code = e.code\n"
        "tf_loaded = 'tensorflow' in sys.modules\n"
        "owner = tfunite.Owner.__name__\n"
        "try:\n"
        "    tfunite.no_such_name\n"
        "except AttributeError as e:\n"
        "    missing = str(e)\n"
        "print(json.dumps({'tf': tf_loaded, 'help': 'usage: tfunite' in out.getvalue(), "
        "'code': code, 'owner': owner, 'missing': missing, "
        "'dir': {'wrap', 'save', 'Owner'} <= set(dir(tfunite))}))"
    )
    assert result == {
        "tf": False,
        "help": True,
        "code": 0,
        "owner": "Owner",
        "missing": "module 'tfunite' has no attribute 'no_such_name'",
        "dir": True,
    }


def test_parameters_nest_and_prefix():
    g = tu.wrap(models.keras_functional(), name="g")
    d = tu.wrap(models.sonnet_mlp(), name="d")
    g(models.example())
    d(models.example((4, 2)))
    inner = tu.Parameters("inner", d=d)
    params = tu.Parameters("gan", generator=g, critic=inner)
    assert params["generator"] is g and params["critic"]["d"] is d
    names = list(params.variables)
    assert names[0] == "generator/dense/kernel"
    assert "critic/d/mlp/linear_0/w" in names
    assert len(params.trainable_variables) == len(g.trainable_variables) + len(
        d.trainable_variables
    )
    with pytest.raises(KeyError, match=r"has no child 'nope'; children: \['critic', 'generator'\]"):
        params["nope"]
    with pytest.raises(TypeError, match=r"is a container of owners, not a model"):
        params(1.0)


@pytest.mark.parametrize(
    "factory, names",
    [
        ("keras_unnamed_weights", ["linear/variable", "linear/variable_1"]),
        (
            "tf_keras_nested_functional",
            ["model/dense/kernel", "model/dense/bias", "dense/kernel", "dense/bias"],
        ),
    ],
)
def test_names_do_not_depend_on_what_was_built_before(factory, names):
    models.pollute()
    owner = tu.wrap(getattr(models, factory)(), name="m")
    owner(models.example())
    assert list(owner.variables) == names
    models.pollute()
    again = tu.wrap(getattr(models, factory)(), name="m")
    again(models.example())
    assert list(again.variables) == names


def test_parameters_refuse_one_owner_under_two_keys():
    owner = tu.wrap(models.sonnet_mlp(), name="d")
    with pytest.raises(ValueError, match=r"the same owner 'd' is given twice, as 'a' and 'b'"):
        tu.Parameters("p", a=owner, b=owner)


def test_error_messages_say_how_to_fix(tmp_path):
    with pytest.raises(tu.RuleError, match=r"Invalid rule regex '\(': .* Fix: escape"):
        tu.Rules([("(", "x")])
    owner = tu.wrap(models.sonnet_mlp(), name="m")
    owner(models.example())
    with pytest.raises(ValueError, match=r"got 1 gradients for 4 trainable .* Fix: pass one"):
        tu.Optimizer("sgd", owner).apply([None])


def test_parameters_not_built_error():
    params = tu.Parameters("p", a=tu.wrap(models.sonnet_mlp(), name="a"))
    with pytest.raises(tu.NotBuiltError, match=r"children \['a'\] have no variables yet"):
        params.variables


def test_strict_ownership_names_variable_and_line():
    with pytest.raises(
        tu.OwnershipError,
        match=r"Variable 'stray' at .*test_core.py:\d+ in "
        r"test_strict\w* was created outside any owner and no owner listed it",
    ):
        with tu.strict():
            owner = tu.wrap(models.sonnet_mlp(), name="m")
            owner(models.example())  # created inside an owner: fine
            tf.Variable(1.0, name="stray")
    tf.Variable(1.0, name="fine_outside_strict")


def test_strict_adopts_variables_framework_constructors_make():
    """Keras' Dropout, Sonnet's BatchNorm and a named optimizer create variables before
    any owner runs; wrapped and built in the block, they are owned."""
    import keras

    with tu.strict():
        owner = tu.wrap(keras.Sequential([keras.layers.Dense(2), keras.layers.Dropout(0.1)]))
        snt_owner = tu.wrap(models.sonnet_bn(), name="bn")
        owner(models.example())
        snt_owner(models.example())
        tu.Optimizer("adam", owner).build()
    with pytest.raises(tu.OwnershipError, match=r"'net/batch_norm/moving_mean/counter' .*Fix: "):
        with tu.strict():
            tu.wrap(models.sonnet_bn(), name="never_built")


def test_no_bridge_lists_every_bridge_tried():
    with pytest.raises(tu.NoBridgeError) as info:
        tu.wrap(object())
    message = str(info.value)
    for bridge in ("keras", "tf_keras", "sonnet", "slim", "tflearn", "tf_module"):
        assert f"  - {bridge}: " in message
    assert "builtins.object" in message and "Fix:" in message


def test_invalid_owner_name():
    with pytest.raises(ValueError, match=r"Invalid owner name 'a/b'"):
        tu.wrap(models.sonnet_mlp(), name="a/b")


def test_variables_before_build():
    owner = tu.wrap(models.sonnet_mlp(), name="m")
    with pytest.raises(
        tu.NotBuiltError, match=r"Fix: call m\(example\) or m.initialize\(example\)"
    ):
        owner.variables
    with pytest.raises(tu.NotBuiltError, match=r"cannot create its variables without an example"):
        owner.initialize()
    assert owner.initialize(models.example()).built


def test_keras3_in_tf1_graph_suggests_tf_keras():
    owner = tu.wrap(models.keras_sequential(), name="k")
    with tf.Graph().as_default():
        with pytest.raises(
            tu.GraphModeError,
            match=r"wraps keras, which does not run in a TF1 graph/Session. Fix: build the model with tf_keras",
        ):
            owner(tf.compat.v1.placeholder(tf.float32, [None, 6]))


def test_owner_built_in_one_graph_called_in_another():
    with tf.Graph().as_default():
        owner = tu.wrap(models.tf_keras_sequential(), name="t")
        owner(tf.compat.v1.placeholder(tf.float32, [None, 6]))
    with tf.Graph().as_default():
        with pytest.raises(
            tu.GraphModeError, match=r"was built in graph 0x[0-9a-f]+ but is now called in graph"
        ):
            owner(tf.compat.v1.placeholder(tf.float32, [None, 6]))
    with pytest.raises(tu.GraphModeError, match=r"is now called eagerly"):
        owner(models.example())


def test_duplicate_variables_on_second_call_detected():
    class Leaky(tf.Module):
        def __call__(self, x):
            self.v = tf.Variable(tf.ones([6, 1]))  # a fresh variable on every call
            return x @ self.v

    owner = tu.wrap(Leaky(), name="leaky")
    owner(models.example())
    with pytest.raises(
        tu.DuplicateVariablesError,
        match=r"Owner 'leaky' \(tf_module\) created new variables on a later call",
    ):
        owner(models.example())


def _train(opt_factory, steps, owner_factory=models.sonnet_bn):
    owner = tu.wrap(owner_factory(), name="net")
    x, y = models.example(), models.example((4, 3), seed=1)
    owner(x)
    for i, v in enumerate(owner.variables.values()):  # deterministic start
        if v.dtype.is_floating:
            v.assign(
                np.full(v.shape, 0.01 * (i + 1), v.dtype.as_numpy_dtype)
                + np.linspace(0, 0.1, v.shape.num_elements())
                .reshape(v.shape)
                .astype(v.dtype.as_numpy_dtype)
            )
    opt = tu.Optimizer(opt_factory(), owner)
    step = tf.function(
        lambda: opt.minimize(lambda: tf.reduce_mean((owner(x, training=True) - y) ** 2))
    )
    return owner, opt, step


@pytest.mark.parametrize("kind", ["keras", "tf_keras", "sonnet"])
def test_optimizer_checkpoint_resumes_exactly(kind, tmp_path):
    import keras
    import sonnet as snt
    import tf_keras

    factory = {
        "keras": lambda: keras.optimizers.Adam(1e-2),
        "tf_keras": lambda: tf_keras.optimizers.Adam(1e-2),
        "sonnet": lambda: snt.optimizers.Adam(1e-2),
    }[kind]
    owner, opt, step = _train(factory, 0)
    opt.build()
    both = tu.Parameters("run", model=owner, opt=opt)
    for _ in range(3):
        step()
    tu.save(both, tmp_path / "ck")
    uninterrupted = [float(step()) for _ in range(3)]

    owner2, opt2, step2 = _train(factory, 0)
    opt2.build()
    both2 = tu.Parameters("run", model=owner2, opt=opt2)
    report = tu.load(both2, tmp_path / "ck")
    assert any(m.target.startswith("opt/") for m in report.matched)
    resumed = [float(step2()) for _ in range(3)]
    assert resumed == uninterrupted  # bit for bit


def test_optimizer_names_follow_owner_names():
    owner, opt, _ = _train(lambda: "adam", 0)
    opt.build()
    names = list(opt.variables)
    assert names[:2] == ["iteration", "learning_rate"]
    # Sonnet names (module tree, repeated sibling names suffixed): lin -> linear, out -> linear_1.
    assert "momentum/net/linear/w" in names and "velocity/net/linear_1/b" in names
    assert len(names) == 2 + 2 * len(owner.trainable_variables)


def test_optimizer_bad_input():
    owner, _, _ = _train(lambda: "adam", 0)
    with pytest.raises(ValueError, match=r"Unknown optimizer name 'adamx'"):
        tu.Optimizer("adamx", owner)
    # The accepted frameworks come from the records with optimizers=True.
    with pytest.raises(
        TypeError,
        match=r"cannot wrap builtins.object: expected an optimizer of Keras 3, tf_keras "
        r"\(Keras 2\), DeepMind Sonnet 2, or a Keras optimizer name",
    ):
        tu.Optimizer(object(), owner)
    opt = tu.Optimizer("sgd", owner)
    with pytest.raises(ValueError, match=r"no gradient for \['net/batch_norm/offset'"):
        opt.apply([None] * len(owner.trainable_variables))


def test_fixes_ensure_reads_the_records():
    from tfunite import fixes

    with pytest.raises(
        ValueError,
        match=r"Unknown bridge 'slimm' in tfunite.fixes.ensure\(\); expected one of: keras, "
        r"tf_keras, sonnet, slim, tflearn, tf_module. Fix: pass a registered bridge name.",
    ):
        fixes.ensure("slimm")
    assert fixes.ensure("keras") == []  # a bridge without a fixes module has none


def test_capture_library_dirs_come_from_the_records():
    from tfunite import capture
    from tfunite.records import records

    names = capture._library_names()
    assert {r.import_name for r in records().values()} <= set(names)
    assert {"tree", "optree", "tfunite", "tfunite.bridges"} <= set(names)


def test_mixed_keras_sonnet_one_optimizer():
    g = tu.wrap(models.keras_functional(), name="g")
    d = tu.wrap(models.sonnet_mlp(), name="d")
    x = models.example()
    params = tu.Parameters("both", g=g, d=d)
    d(g(x))
    opt = tu.Optimizer("adam", params, learning_rate=1e-2)
    step = tf.function(lambda: opt.minimize(lambda: tf.reduce_mean(d(g(x)) ** 2)))
    losses = [float(step()) for _ in range(20)]
    assert losses[-1] < losses[0] * 0.5


def test_tf_keras_in_a_session_train_op_really_updates(tmp_path):
    """tf_keras' optimizer run directly in a Session moves only its step counter; the
    train op must update weights and BatchNorm moving statistics too."""
    import tf_keras

    with tf.Graph().as_default():
        x = tf.compat.v1.placeholder(tf.float32, [None, 6])
        owner = tu.wrap(models.tf_keras_sequential(), name="t")
        loss = tf.reduce_mean(owner(x, training=True) ** 2)
        opt = tu.Optimizer(tf_keras.optimizers.SGD(0.1), owner)
        train = opt.train_op(loss)
        with tf.compat.v1.Session() as sess:
            owner.initialize(session=sess)
            opt.initialize(session=sess)
            kernel = owner.variables["dense/kernel"]
            mean = owner.variables["batch_normalization/moving_mean"]
            k0, m0 = sess.run([kernel, mean])
            xs = models.example()
            sess.run(train, {x: xs})
            k1, m1 = sess.run([kernel, mean])
            assert not np.allclose(k0, k1) and not np.allclose(m0, m1)
            tu.save(owner, tmp_path / "ck", session=sess)
            sess.run(kernel.assign(tf.zeros_like(kernel)))
            report = tu.load(owner, tmp_path / "ck", session=sess)
            assert report.applied
            np.testing.assert_array_equal(sess.run(kernel), k1)
            ops = len(tf.compat.v1.get_default_graph().get_operations())
            tu.save(owner, tmp_path / "ck", session=sess)
            tu.load(owner, tmp_path / "ck", session=sess)
            assert len(tf.compat.v1.get_default_graph().get_operations()) == ops  # no graph growth


def test_tf_keras_functional_train_op_runs_without_feeding_the_input_placeholder():
    """A functional tf_keras model built in a graph has BatchNorm updates on its own Input
    placeholder too; the train op must carry only those of the owner's calls."""
    import tf_keras

    with tf.Graph().as_default():
        inputs = tf_keras.Input((6,))
        hidden = tf_keras.layers.BatchNormalization(name="bn")(tf_keras.layers.Dense(8)(inputs))
        owner = tu.wrap(tf_keras.Model(inputs, tf_keras.layers.Dense(3)(hidden)), name="f")
        loss = tf.reduce_mean(owner(tf.constant(models.example()), training=True) ** 2)
        train = tu.Optimizer(tf_keras.optimizers.SGD(0.1), owner).train_op(loss)
        with tf.compat.v1.Session() as sess:
            tu.Parameters("all", f=owner).initialize(session=sess)
            sess.run(
                tf.compat.v1.variables_initializer(
                    [
                        v
                        for v in tf.compat.v1.global_variables()
                        if v not in owner.variables.values()
                    ]
                )
            )
            mean = owner.variables["bn/moving_mean"]
            before = sess.run(mean)
            sess.run(train)  # raised "You must feed a value for placeholder tensor 'input_1'"
            assert not np.allclose(sess.run(mean), before)


def test_sonnet_module_built_first_in_a_graph_after_ensure():
    """Sonnet 2 asserts eager execution when its first module is constructed; after
    tfunite.fixes.ensure('sonnet') a fresh process can build it first in a TF1 graph."""
    from tests.conftest import run_fresh

    out = run_fresh(
        "import json, numpy as np, tensorflow as tf, tfunite as tu\n"
        "from tfunite import fixes\n"
        "applied = fixes.ensure('sonnet')\n"
        "import sonnet as snt\n"
        "with tf.Graph().as_default(), tf.compat.v1.Session() as sess:\n"
        "    owner = tu.wrap(snt.nets.MLP([4, 2], name='mlp'))\n"
        "    y = owner(tf.ones([3, 5]))\n"
        "    owner.initialize(session=sess)\n"
        "    shape = sess.run(y).shape\n"
        "print(json.dumps({'applied': applied, 'shape': list(shape), 'names': list(owner.variables),"
        " 'eager': tf.executing_eagerly()}))"
    )
    assert out["applied"] == ["sonnet-tf1-graph-check"]
    assert out["shape"] == [3, 2] and out["eager"] is True
    assert out["names"] == ["mlp/linear_0/b", "mlp/linear_0/w", "mlp/linear_1/b", "mlp/linear_1/w"]


def test_sonnet_training_flag_reaches_module_eagerly_and_in_a_session():
    """Sonnet hides __call__'s signature behind (*args, **kwargs); `training=` must still
    reach `is_training`, and BatchNorm's moving averages must move in a Session too."""
    owner = tu.wrap(models.sonnet_bn(), name="e")
    owner(models.example(), training=True)
    counter = "net/batch_norm/moving_mean/counter"
    assert int(owner.variables[counter].numpy()) == 1
    owner(models.example(), training=False)
    assert int(owner.variables[counter].numpy()) == 1
    eager_names = list(owner.variables)
    with tf.Graph().as_default():
        x = tf.compat.v1.placeholder(tf.float32, [None, 6])
        graph_owner = tu.wrap(models.sonnet_bn(), name="g")
        y = graph_owner(x, training=True)
        assert list(graph_owner.variables) == eager_names  # no graph-uniquified names
        with tf.compat.v1.Session() as sess:
            graph_owner.initialize(session=sess)
            sess.run(y, {x: models.example()})
            assert sess.run(graph_owner.variables[counter]) == 1


def test_optimizer_state_is_not_taken_for_slots_and_stateless_optimizers_work():
    import keras
    import sonnet as snt
    import tf_keras

    owner = tu.wrap(keras.Sequential([keras.layers.Dense(2)]), name="one")
    owner(models.example())  # two trainable variables, like the [iteration, learning_rate] list
    assert list(tu.Optimizer("sgd", owner, learning_rate=0.1).build().variables) == [
        "iteration",
        "learning_rate",
    ]
    stateless = tu.Optimizer(snt.optimizers.SGD(0.1), owner)
    before = owner.trainable_variables[0].numpy().copy()
    stateless.minimize(lambda: tf.reduce_sum(owner(models.example()) ** 2))
    assert not np.allclose(owner.trainable_variables[0].numpy(), before)
    with pytest.raises(
        TypeError,
        match=r"tf_keras legacy optimizer .* Fix: use the tf_keras "
        r"optimizer of the same name outside `optimizers.legacy`",
    ):
        tu.Optimizer(tf_keras.optimizers.legacy.Adam(), owner)


def test_training_state_rules_compose_with_an_assignment_map_in_stages():
    from tfunite.rules import parse_rules

    rules = parse_rules([{"net/": "features/"}, *tu.TRAINING_STATE])
    target, chain = rules.apply("net/conv/weights/Momentum")
    assert target is None  # renamed by the map, then dropped as a slot
    assert [r.training_state for r in chain.rules] == [False, True]
    assert rules.apply("net/conv/weights")[0] == "features/conv/weights"


# ---------------------------------------------------------------- issue 10: training ergonomics
def test_optimizer_include_exclude_trains_part_of_an_owner():
    """Only the selected variables move; an excluded variable with no gradient is fine,
    the same variable in the trained set is an error."""

    class Head(tf.Module):
        def __init__(self):
            super().__init__(name="head")
            self.base = tf.Variable(tf.ones([6, 4]))
            self.top = tf.Variable(tf.ones([4, 2]))
            self.unused = tf.Variable(tf.ones([2]))

        def __call__(self, x):
            return (x @ self.base) @ self.top

    owner = tu.wrap(Head(), name="h")
    x = models.example()
    owner(x)
    before = {k: v.numpy().copy() for k, v in owner.variables.items()}
    opt = tu.Optimizer("sgd", owner, include=r"^top$", learning_rate=0.1)
    opt.minimize(lambda: tf.reduce_mean(owner(x) ** 2))
    after = {k: v.numpy() for k, v in owner.variables.items()}
    assert not np.array_equal(after["top"], before["top"])
    np.testing.assert_array_equal(after["base"], before["base"])
    assert [n.split("/", 1)[-1] for n in opt.variables if "/" in n] == []  # sgd: no slots
    tu.Optimizer("sgd", owner, exclude=["unused"]).minimize(lambda: tf.reduce_mean(owner(x)))
    with pytest.raises(ValueError, match=r"no gradient for \['unused'\]"):
        tu.Optimizer("sgd", owner).minimize(lambda: tf.reduce_mean(owner(x)))


def test_optimizer_include_errors_change_nothing():
    owner = tu.wrap(models.sonnet_mlp(), name="m")
    owner(models.example())
    with pytest.raises(
        ValueError,
        match=r"include=\['\^head/'\] selects none of the 4 trainable variables of 'm' "
        r"\(mlp/linear_0/b, mlp/linear_0/w, .*Fix: use regexes",
    ):
        tu.Optimizer("adam", owner, include="^head/")
    with pytest.raises(ValueError, match=r"include='\(' is not a regular expression .*Fix: e.g."):
        tu.Optimizer("adam", owner, include="(")
    unbuilt = tu.wrap(models.sonnet_mlp(), name="later")
    opt = tu.Optimizer("adam", unbuilt, include="nothing")  # checked once it is built
    unbuilt(models.example())
    with pytest.raises(ValueError, match=r"selects none"):
        opt.build()
    assert not opt.built


def test_unbuilt_optimizer_errors_name_the_call_that_builds_it():
    owner = tu.wrap(models.sonnet_mlp(), name="m")
    opt = tu.Optimizer("adam", owner)
    with pytest.raises(tu.NotBuiltError, match=r"owner 'm' has no variables yet.*then optimizer"):
        opt.build()
    with pytest.raises(tu.NotBuiltError, match=r"Optimizer 'optimizer' has no slots yet\. Fix: "):
        opt.variables
    params = tu.Parameters("run", m=owner, opt=opt)
    with pytest.raises(
        tu.NotBuiltError,
        match=r"children \['m', 'opt'\] have no variables yet\. Fix: call each child .*"
        r"\(models \['m'\]\), then build the optimizers \['opt'\] \(opt\.build\(\)",
    ):
        params.variables
    owner(models.example())
    with pytest.raises(tu.NotBuiltError, match=r"optimizers \['opt'\] have no slots yet\. Fix: "):
        params.variables


def _resume_run(seed):
    import keras

    keras.utils.set_random_seed(seed)
    model = tu.wrap(models.keras_functional(), name="model")
    model(models.example())
    opt = tu.Optimizer("adam", model, learning_rate=1e-2)
    return tu.Parameters("run", model=model, opt=opt), model, opt


def test_build_make_optimizers_load_train_continues_bit_for_bit(tmp_path):
    x = models.example(seed=3)
    params, model, opt = _resume_run(0)
    loss = lambda: tf.reduce_mean(model(x) ** 2)  # noqa: E731
    for _ in range(3):
        opt.minimize(loss)
    tu.save(params, tmp_path)
    for _ in range(2):
        opt.minimize(loss)
    want = {k: v.numpy() for k, v in params.variables.items()}
    # A new process's order: build, make the optimizer (no slots yet), load, train.
    resumed, model2, opt2 = _resume_run(1)
    assert not opt2.built
    report = tu.load(resumed, tmp_path)
    assert opt2.built and not report.missing
    for _ in range(2):
        opt2.minimize(lambda: tf.reduce_mean(model2(x) ** 2))
    got = {k: v.numpy() for k, v in resumed.variables.items()}
    assert list(got) == list(want)
    for k in want:
        np.testing.assert_array_equal(got[k], want[k], err_msg=k)


def test_owners_accept_numpy_inputs_as_keras_does():
    """float64 numpy becomes float32 (Keras' autocast); Slim code calls get_shape()."""

    def fn(inputs, is_training):
        import tf_slim as slim

        assert inputs.get_shape().as_list() == [4, 6]
        return slim.fully_connected(inputs, 3, scope="fc")

    owner = tu.slim(fn, name="np")
    x64 = models.example().astype(np.float64)
    y = owner(x64)
    assert y.dtype == tf.float32
    np.testing.assert_allclose(
        np.asarray(y), np.asarray(owner(tf.constant(x64, tf.float32))), rtol=0, atol=0
    )


def test_literal_rules_keep_first_match_order():
    """Rules of one exact name are looked up, not compiled; the first full match in
    the list still wins, whether it is a literal or a regex (checked against re)."""
    import re

    from hypothesis import given, settings
    from hypothesis import strategies as st
    from tfunite.rules import Rules

    names = st.sampled_from(["a/w", "a/b", "a.b", "axb", "b/w", "c", "a/w/x"])
    literal = names.map(lambda n: (re.escape(n), "L:" + n))
    regex = st.sampled_from([("a/.*", "R1"), ("a.b", "R2"), (r"(b)/w", r"\1/W"), (".*", None)])
    dropped = names.map(lambda n: (re.escape(n), None))

    def reference(pairs, name):
        for pattern, replacement in pairs:
            compiled = re.compile(pattern)
            if compiled.fullmatch(name):
                return None if replacement is None else compiled.sub(replacement, name, count=1)
        return name

    @settings(max_examples=200, deadline=None, derandomize=True)
    @given(st.lists(st.one_of(literal, regex, dropped), max_size=8), names)
    def check(pairs, name):
        got, rule = Rules(pairs).apply(name)
        assert got == reference(pairs, name)
        assert (rule is None) == all(not re.fullmatch(p, name) for p, _ in pairs)

    check()
