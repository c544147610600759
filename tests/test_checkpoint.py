"""Checkpoint formats, rules, and every bad-input case of issue 2 (each message matched)."""

from __future__ import annotations

import os

import numpy as np
import pytest
import tensorflow as tf
import tfunite as tu

from tests import models


@pytest.fixture
def owner():
    o = tu.wrap(models.tf_keras_sequential(), name="net")
    o(models.example())
    return o


def snapshot(owner):
    return {k: v.numpy().copy() for k, v in owner.variables.items()}


def assert_unchanged(owner, before):
    for k, v in owner.variables.items():
        np.testing.assert_array_equal(v.numpy(), before[k], err_msg=k)


def v1_checkpoint(values: dict[str, np.ndarray], path: str) -> str:
    """A TF1 Saver V1 single-file checkpoint of `values`, written in a private graph."""
    with tf.Graph().as_default():
        variables = [tf.compat.v1.Variable(v, name=n) for n, v in values.items()]
        saver = tf.compat.v1.train.Saver(variables, write_version=tf.compat.v1.train.SaverDef.V1)
        with tf.compat.v1.Session() as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            return saver.save(sess, path, write_meta_graph=False)


def test_save_is_a_v2_bundle_tf_reads(owner, tmp_path):
    prefix = tu.save(owner, tmp_path / "ck")
    assert os.path.exists(prefix + ".index")
    reader = tf.train.load_checkpoint(str(tmp_path / "ck"))
    # Keys are the canonical names, plus what tf.train.Checkpoint needs to restore the
    # directory too (its object graph and save counter, tests/test_trackable.py).
    keys = set(reader.get_variable_to_shape_map())
    extra = {"_CHECKPOINTABLE_OBJECT_GRAPH", "save_counter/.ATTRIBUTES/VARIABLE_VALUE"}
    assert extra <= keys
    assert sorted(keys - extra) == sorted(owner.variables)
    for name, var in owner.variables.items():
        np.testing.assert_array_equal(reader.get_tensor(name), var.numpy())


def test_inspect_lists_names_shapes_dtypes(owner, tmp_path):
    tu.save(owner, tmp_path / "ck")
    rows = tu.inspect(tmp_path / "ck")
    assert [r["name"] for r in rows] == sorted(owner.variables)
    kernel = next(r for r in rows if r["name"] == "dense/kernel")
    assert kernel == {
        "name": "dense/kernel",
        "shape": [6, 8],
        "dtype": "float32",
        "elements": 6 * 8,
        "bytes": 6 * 8 * 4,
    }


def test_second_save_replaces_first_and_keeps_one_bundle(owner, tmp_path):
    tu.save(owner, tmp_path / "ck")
    owner.variables["dense/bias"].assign(tf.ones([8]))
    prefix = tu.save(owner, tmp_path / "ck")
    assert prefix.endswith("ckpt-2")
    assert sorted(os.listdir(tmp_path / "ck")) == [
        "checkpoint",
        "ckpt-2.data-00000-of-00001",
        "ckpt-2.index",
    ]
    np.testing.assert_array_equal(
        tf.train.load_checkpoint(str(tmp_path / "ck")).get_tensor("dense/bias"), np.ones(8)
    )


def test_interrupted_save_leaves_last_good_checkpoint(owner, tmp_path, monkeypatch):
    tu.save(owner, tmp_path / "ck")
    good = snapshot(owner)
    from tensorflow.python.checkpoint import checkpoint_management

    def crash(**_):
        raise KeyboardInterrupt("power cut before the commit point")

    monkeypatch.setattr(checkpoint_management, "update_checkpoint_state_internal", crash)
    owner.variables["dense/bias"].assign(tf.ones([8]) * 5)
    with pytest.raises(KeyboardInterrupt):
        tu.save(owner, tmp_path / "ck")
    monkeypatch.undo()
    tu.load(owner, tmp_path / "ck")
    assert_unchanged(owner, good)


def test_reads_v1_single_file(owner, tmp_path):
    values = {k: np.full(v.shape, 0.5, v.dtype.as_numpy_dtype) for k, v in owner.variables.items()}
    path = v1_checkpoint(values, str(tmp_path / "model.ckpt"))
    assert not os.path.exists(path + ".index")
    report = tu.load(owner, path)
    assert report.kind == "tf-v1" and len(report.matched) == len(values)
    assert_unchanged(owner, values)


def test_rules_regex_and_assignment_map(owner, tmp_path):
    values = {"old/" + k: np.full(v.shape, 2.0, np.float32) for k, v in owner.variables.items()}
    values["old/extra"] = np.zeros([1], np.float32)
    path = v1_checkpoint(values, str(tmp_path / "m.ckpt"))
    report = tu.load(owner, path, rules=[(r"old/extra", None), (r"old/(.*)", r"\1")])
    assert len(report.matched) == len(owner.variables) and len(report.dropped) == 1
    assert report.matched[0].rule == "'old/(.*)' -> '\\\\1'"
    owner.variables["dense/bias"].assign(tf.zeros([8]))
    report = tu.load(owner, path, rules={"old/": ""}, strict=False)
    assert [e.source for e in report.unexpected] == ["old/extra"]
    np.testing.assert_array_equal(owner.variables["dense/bias"].numpy(), np.full(8, 2.0))


def test_dry_run_assigns_nothing(owner, tmp_path):
    tu.save(owner, tmp_path / "ck")
    before = snapshot(owner)
    owner.variables["dense/bias"].assign(tf.ones([8]))
    report = tu.load(owner, tmp_path / "ck", dry_run=True)
    assert not report.applied and len(report.matched) == len(before)
    np.testing.assert_array_equal(owner.variables["dense/bias"].numpy(), np.ones(8))


def test_transform_applies_before_shape_check(tmp_path):
    o = tu.wrap(models.tf_module(), name="affine")
    path = v1_checkpoint(
        {"w": np.arange(18, dtype=np.float32).reshape(3, 6), "b": np.zeros(3, np.float32)},
        str(tmp_path / "t.ckpt"),
    )
    tu.load(o, path, transforms={"w": tu.Transpose((1, 0))})
    np.testing.assert_array_equal(o.variables["w"].numpy(), np.arange(18).reshape(3, 6).T)


# ------------------------------------------------------------------ bad input
def test_not_a_checkpoint(owner, tmp_path):
    before = snapshot(owner)
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"this is not a checkpoint")
    with pytest.raises(tu.CheckpointError, match=r"junk.bin is not a readable checkpoint .*Fix:"):
        tu.load(owner, junk)
    with pytest.raises(tu.CheckpointError, match=r"does not exist"):
        tu.load(owner, tmp_path / "nothing-here")
    with pytest.raises(tu.CheckpointError, match=r"directory without a 'checkpoint' state file"):
        tu.load(owner, tmp_path)
    assert_unchanged(owner, before)


def test_truncated_v2_data(owner, tmp_path):
    prefix = tu.save(owner, tmp_path / "ck")
    data = prefix + ".data-00000-of-00001"
    with open(data, "r+b") as f:
        f.truncate(os.path.getsize(data) // 2)
    for v in owner.variables.values():
        v.assign(tf.zeros_like(v))
    before = snapshot(owner)
    with pytest.raises(
        tu.CheckpointError, match=r"is truncated: its index describes \d+ bytes .* hold \d+ bytes"
    ):
        tu.load(owner, tmp_path / "ck")
    assert_unchanged(owner, before)


def test_truncated_index_and_v1(owner, tmp_path):
    prefix = tu.save(owner, tmp_path / "ck")
    with open(prefix + ".index", "r+b") as f:
        f.truncate(20)
    before = snapshot(owner)
    with pytest.raises(tu.CheckpointError, match=r"is not a readable checkpoint"):
        tu.load(owner, tmp_path / "ck")
    values = {k: np.ones(v.shape, np.float32) for k, v in owner.variables.items()}
    path = v1_checkpoint(values, str(tmp_path / "v1.ckpt"))
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) - 40)
    with pytest.raises(tu.CheckpointError, match=r"v1.ckpt is not a readable checkpoint"):
        tu.load(owner, path)
    assert_unchanged(owner, before)


def test_corrupted_data_detected(owner, tmp_path):
    """A flipped byte keeps the file size: every tensor's CRC32C is checked before the
    first assignment, so the load is refused whole (more cases in test_bundle.py)."""
    prefix = tu.save(owner, tmp_path / "ck")
    data = prefix + ".data-00000-of-00001"
    raw = bytearray(open(data, "rb").read())
    raw[len(raw) // 2] ^= 0xFF
    open(data, "wb").write(bytes(raw))
    for v in owner.variables.values():
        v.assign(tf.zeros_like(v))
    before = snapshot(owner)
    with pytest.raises(
        tu.CheckpointError,
        match=r"tensor '.+' is corrupted: .* should have CRC32C [0-9a-f]{8} \(from the index\) but have [0-9a-f]{8}\. Nothing was loaded\. Fix:",
    ):
        tu.load(owner, tmp_path / "ck")
    assert_unchanged(owner, before)


def _checkpoint_without(owner, tmp_path, drop=(), extra=None, change=None):
    values = {k: v.numpy() for k, v in owner.variables.items() if k not in drop}
    values.update(extra or {})
    values.update(change or {})
    return v1_checkpoint(values, str(tmp_path / "c.ckpt"))


def test_missing_variable(owner, tmp_path):
    path = _checkpoint_without(owner, tmp_path, drop=["dense_1/bias"])
    before = snapshot(owner)
    with pytest.raises(
        tu.LoadError,
        match=r"1 variable\(s\) missing from the checkpoint, first: 'dense_1/bias'.*Nothing was assigned",
    ):
        tu.load(owner, path)
    assert_unchanged(owner, before)
    report = tu.load(owner, path, strict=False)
    assert [e.target for e in report.missing] == ["dense_1/bias"] and report.applied


def test_unexpected_variable(owner, tmp_path):
    path = _checkpoint_without(owner, tmp_path, extra={"head/w": np.zeros(2, np.float32)})
    before = snapshot(owner)
    with pytest.raises(
        tu.LoadError, match=r"1 unexpected checkpoint entr\(y/ies\), first: 'head/w'.*strict=False"
    ):
        tu.load(owner, path)
    assert_unchanged(owner, before)


def test_shape_mismatch(owner, tmp_path):
    path = _checkpoint_without(owner, tmp_path, change={"dense/bias": np.zeros(9, np.float32)})
    before = snapshot(owner)
    with pytest.raises(
        tu.LoadError,
        match=r"variable 'dense/bias' expects \(8,\) float32 but checkpoint entry 'dense/bias' is \(9,\) float32",
    ):
        tu.load(owner, path, strict=False)
    assert_unchanged(owner, before)


def test_dtype_mismatch(owner, tmp_path):
    path = _checkpoint_without(owner, tmp_path, change={"dense/bias": np.zeros(8, np.float64)})
    before = snapshot(owner)
    with pytest.raises(
        tu.LoadError,
        match=r"expects \(8,\) float32 but checkpoint entry 'dense/bias' is \(8,\) float64",
    ):
        tu.load(owner, path)
    assert_unchanged(owner, before)


def test_rules_mapping_two_entries_onto_one_variable(owner, tmp_path):
    path = _checkpoint_without(owner, tmp_path, extra={"copy/dense/bias": np.zeros(8, np.float32)})
    before = snapshot(owner)
    with pytest.raises(
        tu.RuleError, match=r"Rules map two checkpoint entries onto variable 'dense/bias'"
    ):
        tu.load(owner, path, rules=[(r"copy/(.*)", r"\1")])
    assert_unchanged(owner, before)


def test_invalid_rules():
    with pytest.raises(tu.RuleError, match=r"Invalid rule regex"):
        tu.Rules([("(", "x")])
    with pytest.raises(tu.RuleError, match=r"expected a \(regex, replacement\) pair"):
        tu.Rules(["abc"])


def test_save_to_a_file_path_refused(owner, tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(tu.CheckpointError, match=r"exists and is not a directory"):
        tu.save(owner, f)


@pytest.mark.parametrize("how", ["save_weights", "save"])
def test_reads_tf_keras_h5(tmp_path, how):
    from tests.models import pollute

    source = models.tf_keras_sequential()
    source(models.example())
    getattr(source, how)(str(tmp_path / "w.h5"))
    pollute()  # the file's layer names (dense_N) need not match the loading process
    owner = tu.wrap(models.tf_keras_sequential(), name="net")
    owner(models.example())
    report = tu.load(owner, tmp_path / "w.h5")
    assert report.kind == "keras-legacy-h5" and len(report.matched) == 8
    for w, v in zip(source.weights, owner.variables.values()):
        np.testing.assert_array_equal(v.numpy(), w.numpy())


@pytest.mark.parametrize("file, kind", [("w.weights.h5", "keras-h5"), ("m.keras", "keras-zip")])
def test_reads_tf_keras_weights_h5_and_keras(tmp_path, file, kind):
    from tests.models import pollute

    source = models.tf_keras_sequential()
    source(models.example())
    for v in source.non_trainable_weights:  # non-trivial BatchNorm statistics
        v.assign(np.full(v.shape, 0.75, np.float32))
    (source.save_weights if file.endswith(".weights.h5") else source.save)(str(tmp_path / file))
    pollute()
    owner = tu.wrap(models.tf_keras_sequential(), name="net")
    owner(models.example())
    report = tu.load(owner, tmp_path / file)
    assert report.kind == kind and len(report.matched) == 8 and not report.dropped
    for w, v in zip(source.weights, owner.variables.values()):
        np.testing.assert_array_equal(v.numpy(), w.numpy())


def test_reads_keras3_weights_h5_keras_and_legacy_h5(tmp_path):
    source = models.keras_sequential()
    source(models.example())
    for v in source.non_trainable_variables:  # non-trivial BatchNorm statistics
        if v.dtype == "float32":
            v.assign(np.full(v.shape, 0.75, np.float32))
    source.save_weights(str(tmp_path / "w.weights.h5"))
    source.save(str(tmp_path / "m.keras"))
    source.save(str(tmp_path / "m.h5"))
    want = {v.path: v.numpy() for v in source.variables}
    for path, kind in [
        ("w.weights.h5", "keras-h5"),
        ("m.keras", "keras-zip"),
        ("m.h5", "keras-legacy-h5"),
    ]:
        owner = tu.wrap(models.keras_sequential(), name="net")
        owner(models.example())
        report = tu.load(owner, tmp_path / path)
        assert report.kind == kind
        # Keras' h5 formats do not store the dropout seed state: reported as dropped.
        assert any(
            "seed_generator_state" in e.target and e.reason == f"not stored in {kind} files"
            for e in report.dropped
        )
        got = [v.numpy() for k, v in owner.variables.items() if "seed_generator" not in k]
        np.testing.assert_equal(got, [w for k, w in want.items() if "seed_generator" not in k])


# ----------------------------------------------------------- object-based and .h5 layouts
def _mlp(value=None):
    import sonnet as snt

    module = snt.nets.MLP([4, 2], name="mlp")
    module(models.example())
    if value is not None:
        for v in module.variables:
            v.assign(tf.fill(v.shape, value))
    return module


def _mlp_owner(name):
    owner = tu.wrap(_mlp(), name=name)
    owner(models.example())
    return owner


def test_object_checkpoint_of_two_models_loads_each_by_its_parameters_key(tmp_path):
    prefix = tf.train.Checkpoint(teacher=_mlp(1.0), student=_mlp(2.0)).write(str(tmp_path / "o"))
    teacher, student = _mlp_owner("t"), _mlp_owner("s")
    report = tu.load(tu.Parameters("p", student=student, teacher=teacher), prefix)
    assert report.ok and len(report.matched) == 8
    assert all(np.all(v.numpy() == 1.0) for v in teacher.variables.values())
    assert all(np.all(v.numpy() == 2.0) for v in student.variables.values())


def test_object_checkpoint_with_two_fitting_models_is_not_guessed(tmp_path):
    prefix = tf.train.Checkpoint(teacher=_mlp(1.0), student=_mlp(2.0)).write(str(tmp_path / "o"))
    owner = _mlp_owner("one")
    before = snapshot(owner)
    with pytest.raises(
        tu.CheckpointError,
        match=r"holds 2 objects that fit the sonnet owner "
        r"'one' equally well: \['student/', 'teacher/'\].*Fix: wrap the owner",
    ):
        tu.load(owner, prefix)
    assert_unchanged(owner, before)


def test_one_checkpoint_entry_never_feeds_two_variables(tmp_path):
    prefix = tf.train.Checkpoint(model=_mlp(1.0)).write(str(tmp_path / "o"))
    a, b = _mlp_owner("a"), _mlp_owner("b")
    before = snapshot(a)
    with pytest.raises(
        tu.CheckpointError,
        match=r"entry 'model/.*' of .* would feed two "
        r"variables, 'a/mlp/.*' and 'b/mlp/.*'.*Fix: load each owner",
    ):
        tu.load(tu.Parameters("p", a=a, b=b), prefix)
    assert_unchanged(a, before)


def test_object_checkpoint_of_a_smaller_model_reports_exactly_what_is_missing(tmp_path):
    import sonnet as snt

    prefix = tf.train.Checkpoint(model=_mlp(1.0)).write(str(tmp_path / "o"))
    bigger = tu.wrap(snt.nets.MLP([4, 2, 2], name="mlp"), name="big")
    bigger(models.example())
    with pytest.raises(tu.LoadError, match=r"2 variable\(s\) missing.*first: 'mlp/linear_2/b'"):
        tu.load(bigger, prefix)
    report = tu.load(bigger, prefix, strict=False)
    assert sorted(e.target for e in report.missing) == ["mlp/linear_2/b", "mlp/linear_2/w"]
    assert len(report.matched) == 4 and report.applied


@pytest.mark.parametrize("fmt", ["weights.h5", "tf"])
def test_strict_load_refuses_extra_layers_of_a_file_holding_the_model_at_its_top(tmp_path, fmt):
    import keras
    import tf_keras

    lib = keras if fmt == "weights.h5" else tf_keras
    big = lib.Sequential([lib.layers.Dense(3) for _ in range(3)])
    big(models.example())
    path = str(tmp_path / "w.weights.h5") if fmt == "weights.h5" else str(tmp_path / "tf" / "w")
    big.save_weights(path)
    small = tu.wrap(lib.Sequential([lib.layers.Dense(3) for _ in range(2)]), name="s")
    small(models.example())
    before = snapshot(small)
    with pytest.raises(tu.LoadError, match=r"2 unexpected checkpoint entr\(y/ies\)"):
        tu.load(small, path)
    assert_unchanged(small, before)


def test_a_file_of_a_bundle_names_the_bundle(owner, tmp_path):
    prefix = tu.save(owner, tmp_path / "ck")
    for path in (prefix + ".index", prefix + ".data-00000-of-00001"):
        assert tu.load(owner, path).kind == "tf-v2"
        assert [r["name"] for r in tu.inspect(path)] == sorted(owner.variables)


def test_rules_mixing_an_assignment_map_and_pairs_apply_in_stages(owner, tmp_path):
    values = {f"old/{k.replace('kernel', 'w')}": v.numpy() + 1 for k, v in owner.variables.items()}
    prefix = v1_checkpoint(values, str(tmp_path / "v1.ckpt"))
    report = tu.load(owner, prefix, rules=[{"old/": ""}, (r"(.*)/w", r"\1/kernel")])
    assert report.ok and len(report.matched) == len(values)
    renamed = next(m for m in report.matched if m.target == "dense/kernel")
    assert "then" in renamed.rule  # both stages are named in the report
    with pytest.raises(tu.RuleError, match=r"inside a list of \(regex, replacement\) pairs"):
        tu.Rules([{"old/": ""}])


def test_graph_op_cache_dies_with_its_graph_and_is_keyed_by_variables(tmp_path):
    """TF1 save/assign ops are built once per graph and set of variables (no graph
    growth per call), keyed weakly by the graph and by the variables, never by id(): a
    dict built anew for each call (same id, other variables) gets its own op, and the
    cache dies with its graph."""
    import gc
    import weakref

    from tfunite import checkpoint as tuc

    graph = tf.Graph()
    with graph.as_default():
        a = tf.compat.v1.Variable(np.full(3, 1.0, np.float32), name="a")
        b = tf.compat.v1.Variable(np.full(3, 2.0, np.float32), name="b")
        with tf.compat.v1.Session() as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            tu.save({"a": a}, tmp_path / "one", session=sess)
            ops = len(graph.get_operations())
            tu.save({"a": a}, tmp_path / "one", session=sess)
            assert len(graph.get_operations()) == ops  # the cached op, not a new one
            tu.save({"b": b}, tmp_path / "two", session=sess)  # another dict, maybe same id
            sess.run(b.assign(np.zeros(3, np.float32)))
            tu.load({"b": b}, tmp_path / "two", session=sess)
            ops = len(graph.get_operations())
            tu.load({"b": b}, tmp_path / "two", session=sess)
            assert len(graph.get_operations()) == ops
            np.testing.assert_array_equal(sess.run(b), np.full(3, 2.0))
    reader = tf.train.load_checkpoint(str(tmp_path / "two"))
    keys = set(reader.get_variable_to_shape_map())  # "b" + tf.train.Checkpoint's two keys
    assert keys - {"_CHECKPOINTABLE_OBJECT_GRAPH", "save_counter/.ATTRIBUTES/VARIABLE_VALUE"} == {
        "b"
    }
    np.testing.assert_array_equal(reader.get_tensor("b"), np.full(3, 2.0))
    assert len(tuc._graph_ops(graph)) == 3  # save {a}, save {b}, assign b
    ref = weakref.ref(graph)
    del graph, a, b, sess
    gc.collect()
    assert ref() is None  # the cache does not keep the graph (and its ops) alive
    assert all(g is not None for g in list(tuc._GRAPH_OPS.keys()))


def test_transforms_are_keyed_by_checkpoint_names_before_rules(tmp_path):
    """A transform's regex matches the checkpoint's name, not the renamed one."""
    o = tu.wrap(models.tf_module(), name="affine")
    path = v1_checkpoint(
        {"old/w": np.arange(18, dtype=np.float32).reshape(3, 6), "old/b": np.ones(3, np.float32)},
        str(tmp_path / "t.ckpt"),
    )
    report = tu.load(o, path, rules={"old/": ""}, transforms=[(r"old/w", tu.Transpose((1, 0)))])
    assert [(e.source, e.target) for e in report.transformed] == [("old/w", "w")]
    np.testing.assert_array_equal(o.variables["w"].numpy(), np.arange(18).reshape(3, 6).T)
    with pytest.raises(tu.LoadError, match=r"variable 'w' expects \(6, 3\) float32"):
        tu.load(o, path, rules={"old/": ""}, transforms={r"w": tu.Transpose((1, 0))})
    with pytest.raises(tu.RuleError, match=r"Invalid transform for 'w': 3 is not a"):
        tu.load(o, path, transforms={"w": 3})
    with pytest.raises(tu.RuleError, match=r"Invalid transform regex '\(': .*Fix: escape"):
        tu.load(o, path, transforms={"(": tu.Transpose((1, 0))})
    with pytest.raises(tu.RuleError, match=r"Invalid transform 'w': expected a \(regex, "):
        tu.load(o, path, transforms=["w"])


def test_pipeline_modules_do_not_import_owner():
    """The checkpoint pipeline sees owners by duck typing: owner.py imports it (lazily),
    never the other way round."""
    import subprocess
    import sys

    code = (
        "import sys, tfunite.checkpoint, tfunite.plan, tfunite.report, tfunite.aliases, "
        "tfunite.readers, tfunite.training_state; print('tfunite.owner' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "False"


def test_help_of_tu_port_lists_the_options_of_porting_port():
    import inspect

    from tfunite import porting

    assert tu.port is porting.port  # one function: help(tu.port) shows porting's own
    params = inspect.signature(tu.port).parameters
    for name in ("keep_background", "input_shape", "strict", "dry_run", "verify", "rules"):
        assert params[name].kind is inspect.Parameter.KEYWORD_ONLY, name
    assert "keep_background" in (tu.port.__doc__ or "")
