"""The ``tfunite`` command line: port, inspect, diff, and dispatch to doctor/compat.

Commands run in-process through `tfunite.tools.cli.main` (fast); one test runs the
installed console script to check the entry point itself.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from tfunite.porting import _slim
from tfunite.tools import cli


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """A resnet_v1_50 checkpoint (5 classes, written for 32x32 inputs) and a copy with
    one tensor changed, one removed and one added."""
    root = tmp_path_factory.mktemp("cli")
    a = str(root / "a" / "model.ckpt")
    os.makedirs(os.path.dirname(a))
    _slim.write_random_checkpoint("resnet_v1_50", a, (32, 32, 3), 5)
    import tensorflow as tf

    r = tf.train.load_checkpoint(a)
    values = {k: r.get_tensor(k) for k in r.get_variable_to_shape_map()}
    values["resnet_v1_50/conv1/weights"] = values["resnet_v1_50/conv1/weights"] + 0.5
    del values["resnet_v1_50/logits/biases"]
    values["global_step"] = np.array(3, np.int64)
    values["resnet_v1_50/conv1/BatchNorm/beta"] = np.zeros((65,), np.float32)
    b = str(root / "b.ckpt")
    _slim.write_raw(values, b)
    return root, a, b


@pytest.fixture(scope="module")
def truncated(small):
    """A copy of the `small` checkpoint whose data file is cut in half."""
    root, a, _ = small
    dst = str(root / "cut.ckpt")
    shutil.copy(a + ".index", dst + ".index")
    with open(a + ".data-00000-of-00001", "rb") as f:
        data = f.read()
    with open(dst + ".data-00000-of-00001", "wb") as f:
        f.write(data[: len(data) // 2])
    return dst


def run(capsys, *argv):
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _json_error(out, code):
    """The JSON object --json prints on stdout when a command fails."""
    data = json.loads(out)
    assert data["code"] == code and isinstance(data["error"], str) and data["error"]
    return data


def test_help_exits_0(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for cmd in ("port", "inspect", "diff", "doctor", "compat"):
        assert cmd in out


def test_version_exits_0(capsys):
    from importlib import metadata

    with pytest.raises(SystemExit) as e:
        cli.main(["--version"])
    assert e.value.code == 0
    assert capsys.readouterr().out.strip() == f"tfunite {metadata.version('tfunite')}"


def test_usage_error_exits_2(capsys):
    code, out, err = run(capsys, "port")
    assert code == 2 and out == ""
    assert err.startswith("usage: tfunite port")
    assert "tfunite port: error: the following arguments are required: checkpoint" in err
    # With --json, stdout gets the error too.
    code, out, err = run(capsys, "diff", "only_one.ckpt", "--json")
    assert code == 2 and "required: checkpoint_b" in _json_error(out, 2)["error"]


def test_help_states_the_exit_codes(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["diff", "--help"])
    assert e.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "0 same, 1 different, 2 trouble" in text
    assert "0 same, 1 different, 2 trouble" in " ".join(cli.__doc__.split())


def test_inspect_table_and_json(capsys, small):
    _, a, _ = small
    code, out, _ = run(capsys, "inspect", a)
    assert code == 0
    assert "resnet_v1_50/conv1/weights" in out and "(7, 7, 3, 64)" in out and "float32" in out
    code, out, _ = run(capsys, "inspect", a, "--json")
    data = json.loads(out)
    entry = next(e for e in data["entries"] if e["name"] == "resnet_v1_50/conv1/weights")
    assert entry == {
        "name": "resnet_v1_50/conv1/weights",
        "shape": [7, 7, 3, 64],
        "dtype": "float32",
        "elements": 9408,
        "bytes": 37632,
    }


def test_diff_identical_exits_0(capsys, small):
    _, a, _ = small
    code, out, _ = run(capsys, "diff", a, a, "--no-progress")
    assert code == 0 and "identical" in out


def test_diff_reports_every_kind_of_difference(capsys, small):
    _, a, b = small
    code, out, _ = run(capsys, "diff", a, b, "--json")
    assert code == 1
    d = json.loads(out)
    assert d["only_in_a"] == ["resnet_v1_50/logits/biases"]
    assert d["only_in_b"] == ["global_step"]
    assert d["shape_or_dtype"] == [
        {
            "name": "resnet_v1_50/conv1/BatchNorm/beta",
            "a": {"shape": [64], "dtype": "float32"},
            "b": {"shape": [65], "dtype": "float32"},
        }
    ]
    assert [v["name"] for v in d["values"]] == ["resnet_v1_50/conv1/weights"]
    assert abs(d["values"][0]["max_abs_diff"] - 0.5) < 1e-6
    code, out, _ = run(capsys, "diff", a, b, "--no-progress")
    assert code == 1 and "only in A" in out and "different values" in out


def _write(path, values):
    _slim.write_raw({k: np.asarray(v, np.float32) for k, v in values.items()}, str(path))
    return str(path)


def test_diff_nan_and_inf_are_differences_whatever_atol(capsys, tmp_path):
    nan, inf = float("nan"), float("inf")
    a = _write(
        tmp_path / "a.ckpt",
        {"same_nan": [nan, 1.0], "nan_vs_num": [1.0, nan], "inf_sign": [inf], "near": [1.0]},
    )
    b = _write(
        tmp_path / "b.ckpt",
        {"same_nan": [nan, 1.0], "nan_vs_num": [1.0, 0.5], "inf_sign": [-inf], "near": [1.25]},
    )
    code, out, _ = run(capsys, "diff", a, b, "--json", "--atol", "1e9")
    assert code == 1
    d = json.loads(out)  # strict JSON: no NaN or Infinity literals
    assert not d["identical"] and d["compared"] == 4
    by_name = {v["name"]: v for v in d["values"]}
    assert set(by_name) == {"nan_vs_num", "inf_sign"}  # NaN == NaN; 'near' within atol
    assert by_name["nan_vs_num"]["nonfinite_mismatches"] == 1
    assert by_name["nan_vs_num"]["first_nonfinite_mismatch"] == {
        "index": [1],
        "a": "nan",
        "b": "0.5",
    }
    assert by_name["inf_sign"]["first_nonfinite_mismatch"]["b"] == "-inf"
    code, out, _ = run(capsys, "diff", a, b, "--no-progress")
    assert code == 1
    assert "nan_vs_num: 1 NaN/inf mismatch(es), first at [1]: A nan, B 0.5" in out
    assert "near: max abs difference 0.25" in out and "the checkpoints differ" in out
    # The same checkpoint with NaN in it is identical to itself.
    code, out, _ = run(capsys, "diff", a, a, "--no-progress")
    assert code == 0 and "identical" in out


def test_diff_of_an_unreadable_checkpoint_exits_2(capsys, small, truncated, tmp_path):
    _, a, _ = small
    code, out, err = run(capsys, "diff", a, truncated, "--no-progress")
    assert code == 2 and out == ""
    assert err.startswith("tfunite diff: error: Checkpoint ") and "cut.ckpt is truncated" in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    code, out, err = run(capsys, "diff", str(tmp_path / "none.ckpt"), a, "--json")
    assert code == 2 and "none.ckpt does not exist" in _json_error(out, 2)["error"]


def test_port_dry_run_json_writes_nothing(capsys, small):
    root, a, _ = small
    out_path = root / "dry.keras"
    code, out, _ = run(
        capsys,
        "port",
        a,
        "--recipe",
        "slim:resnet_v1_50",
        "--input-size",
        "32",
        "--dry-run",
        "--json",
        "-o",
        str(out_path),
    )
    assert code == 0
    data = json.loads(out)
    assert data["dry_run"] and data["ok"] and data["counts"]["matched"] == 267
    assert not out_path.exists()


def test_port_no_strict_json_reports_ok_for_a_port_that_succeeded(capsys, small):
    """`--no-strict` tolerates an unexpected entry: the port succeeds and says ok."""
    import tensorflow as tf

    root, a, _ = small
    r = tf.train.load_checkpoint(a)
    values = {k: r.get_tensor(k) for k in r.get_variable_to_shape_map()}
    values["resnet_v1_50/extra_head/weights"] = np.zeros((3, 3), np.float32)
    values["global_step"] = np.array(3, np.int64)
    extra = str(root / "extra.ckpt")
    _slim.write_raw(values, extra)
    out_path = root / "lenient.keras"
    args = ["port", extra, "-r", "slim:resnet_v1_50", "--input-size", "32", "--json"]
    code, out, err = run(capsys, *args, "-o", str(out_path), "--no-strict", "--no-progress")
    assert code == 0, err
    data = json.loads(out)
    assert data["ok"] is True and data["strict"] is False and out_path.exists()
    assert data["counts"]["unexpected"] == 1 and data["counts"]["training_state"] == 1
    kinds = {e["source"]: e["kind"] for e in data["entries"] if e["source"]}
    assert kinds["global_step"] == "training_state"
    assert kinds["resnet_v1_50/extra_head/weights"] == "unexpected"
    # Strict, the same port is refused, and says why.
    code, out, err = run(capsys, *args, "-o", str(root / "strict.keras"))
    assert code == 1 and "1 unexpected checkpoint entr(y/ies)" in _json_error(out, 1)["error"]


def test_port_verify_writes_keras_file(capsys, small):
    root, a, _ = small
    out_path = root / "r50.keras"
    code, out, err = run(
        capsys,
        "port",
        a,
        "--recipe",
        "slim:resnet_v1_50",
        "--input-size",
        "32",
        "--verify",
        "-o",
        str(out_path),
        "--no-progress",
    )
    assert code == 0, err
    assert "Verification" in out and "OK" in out and "max rel" in out
    assert out_path.exists() and f"Wrote {out_path}" in out


def test_port_unknown_recipe_exits_2(capsys, small):
    _, a, _ = small
    code, out, err = run(capsys, "port", a, "--recipe", "slim:resnet_v3", "-o", "x.keras")
    assert code == 2 and out == ""
    assert err.startswith("tfunite port: error: Unknown recipe 'slim:resnet_v3'. Known recipes:")
    assert "Traceback" not in err
    code, out, err = run(capsys, "port", a, "-r", "slim:resnet_v3", "-o", "x.keras", "--json")
    assert _json_error(out, 2)["error"].startswith("Unknown recipe 'slim:resnet_v3'.")


def test_port_wrong_net_exits_1(capsys, small):
    _, a, _ = small
    code, _, err = run(capsys, "port", a, "--recipe", "slim:vgg_16", "-o", "x.keras")
    assert code == 1
    assert "is not a slim:vgg_16 checkpoint: it looks like slim:resnet_v1_50" in err
    assert "Traceback" not in err
    code, out, _ = run(capsys, "port", a, "-r", "slim:vgg_16", "-o", "x.keras", "--json")
    assert code == 1 and "it looks like slim:resnet_v1_50" in _json_error(out, 1)["error"]


def test_port_truncated_checkpoint_exits_1_and_writes_nothing(capsys, small, truncated):
    root, _, _ = small
    out_path = root / "from_cut.keras"
    argv = ["port", truncated, "-r", "slim:resnet_v1_50", "--input-size", "32", "-o"]
    code, out, err = run(capsys, *argv, str(out_path))
    assert code == 1 and out == "" and not out_path.exists()
    assert err.startswith("tfunite port: error: Checkpoint ") and "cut.ckpt is truncated" in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    code, out, _ = run(capsys, *argv, str(out_path), "--json")
    assert "is truncated" in _json_error(out, 1)["error"] and not out_path.exists()


def test_port_unreadable_checkpoint_json(capsys, tmp_path):
    code, out, err = run(
        capsys, "port", str(tmp_path / "no.ckpt"), "-r", "slim:resnet_v1_50", "--dry-run", "--json"
    )
    assert code == 1 and "no.ckpt does not exist" in _json_error(out, 1)["error"]
    assert "no.ckpt does not exist" in err


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--input-size", "0"], "argument --input-size: expected a positive integer, got 0"),
        (["--input-size", "x"], "argument --input-size: expected a positive integer, got 'x'"),
        (["--dry-run", "--verify"], "--verify compares the loaded model with Slim, and --dry-run"),
        (
            ["--input-size", "16", "--dry-run"],
            "Input shape (16, 16, 3) is too small for slim:resnet_v1_50: its Slim net needs at "
            "least 32x32 (default 224x224). Fix: pass input_shape=(32, 32, 3) or larger (CLI: "
            "--input-size 32).",
        ),
    ],
)
def test_port_bad_arguments_exit_2(capsys, small, extra, message):
    _, a, _ = small
    code, out, err = run(capsys, "port", a, "-r", "slim:resnet_v1_50", *extra)
    assert code == 2 and out == "" and message in err and "Traceback" not in err
    code, out, _ = run(capsys, "port", a, "-r", "slim:resnet_v1_50", *extra, "--json")
    assert message in _json_error(out, 2)["error"]


def test_port_progress_on_a_terminal_and_off(capsys, small, monkeypatch):
    """With stderr taken for an interactive terminal (rich's TTY_* variables), each phase
    shows on stderr and stdout stays clean JSON; --no-progress draws nothing."""
    root, a, _ = small
    argv = ["port", a, "-r", "slim:resnet_v1_50", "--input-size", "32", "--json"]
    monkeypatch.setenv("TTY_COMPATIBLE", "1")
    monkeypatch.setenv("TTY_INTERACTIVE", "1")
    out_path = root / "progress.keras"
    code, out, err = run(capsys, *argv, "-o", str(out_path))
    assert code == 0 and json.loads(out)["output"] == str(out_path) and out_path.exists()
    for phase in (
        "Reading the checkpoint index",
        "Building the Keras model of slim:resnet_v1_50",
        "Planning",
        "Loading weights",
        "/267",
        f"Saving {out_path}",
    ):
        assert phase in err, phase
    quiet = root / "quiet.keras"
    code, out, err = run(capsys, *argv, "-o", str(quiet), "--no-progress")
    assert code == 0 and json.loads(out)["ok"] and quiet.exists()
    assert err == ""


def test_port_missing_and_mismatched_exits_1_json_report(capsys, small):
    root, _, b = small
    out_path = root / "bad.keras"
    code, out, err = run(
        capsys,
        "port",
        b,
        "--recipe",
        "slim:resnet_v1_50",
        "--input-size",
        "32",
        "--json",
        "-o",
        str(out_path),
    )
    assert code == 1 and not out_path.exists()
    data = _json_error(out, 1)
    assert data["counts"]["missing"] == 1 and data["counts"]["mismatched"] == 1
    assert "logits/bias" in err and "Keras weight expects (64,)" in err
    assert "--no-strict" not in err  # it would not help with missing or mismatched entries


def test_port_unwritable_output_exits_1(capsys, small):
    root, a, _ = small
    code, _, err = run(
        capsys,
        "port",
        a,
        "--recipe",
        "slim:resnet_v1_50",
        "-o",
        str(root / "missing_dir" / "m.keras"),
    )
    assert code == 1 and "does not exist" in err and "Traceback" not in err


def test_port_without_output_exits_2(capsys, small):
    _, a, _ = small
    code, _, err = run(capsys, "port", a, "--recipe", "slim:resnet_v1_50")
    assert code == 2 and "-o/--output is required" in err


def test_inspect_unreadable_exits_1(capsys, tmp_path, truncated):
    code, _, err = run(capsys, "inspect", str(tmp_path / "none.ckpt"))
    assert code == 1 and "none.ckpt does not exist" in err and "Traceback" not in err
    code, out, err = run(capsys, "inspect", truncated, "--json")
    assert code == 1 and "cut.ckpt is truncated" in _json_error(out, 1)["error"]


def test_doctor_and_compat_dispatch_lazily(monkeypatch, capsys):
    import importlib

    seen = {}

    class Fake:
        @staticmethod
        def main(args):
            seen["args"] = args
            return 0

    real = importlib.import_module

    def fake_import(name, *a, **k):
        if name == "tfunite.tools.doctor":
            return Fake
        if name == "tfunite.tools.compat":
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return real(name, *a, **k)

    monkeypatch.setattr(importlib, "import_module", fake_import)
    assert cli.main(["doctor", "--json"]) == 0 and seen["args"] == ["--json"]
    code, _, err = run(capsys, "compat")
    assert code == 2
    assert "tfunite.tools.compat is missing" in err and "pip install -e ." in err


def test_recipes_lists_all(capsys):
    code, out, _ = run(capsys, "recipes", "--json")
    rows = {r["name"]: r for r in json.loads(out)}
    assert code == 0 and len(rows) == 16
    assert rows["slim:vgg_16"]["max_size"] == 255 and rows["slim:resnet_v1_50"]["max_size"] is None


def test_console_script_entry_point():
    exe = os.path.join(os.path.dirname(sys.executable), "tfunite")
    res = subprocess.run([exe, "--help"], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and "usage: tfunite" in res.stdout
    res = subprocess.run(
        [exe, "port", "x", "--recipe", "nope", "-o", "y.keras"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode in (1, 2) and "Traceback" not in res.stderr
