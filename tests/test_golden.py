"""Golden checkpoints: today's code loads every checked-in checkpoint exactly.

`tests/golden/<bridge>/` holds tiny checkpoints written by `python maint/golden.py`
(tfunite's own format and the framework's native ones) with deterministic values. A
change of variable names (in tfunite or in a framework) or of how a format is read
fails here, naming the bridge, the format and the variable.
"""

from __future__ import annotations

import json

import pytest
from tfunite.registry import BRIDGES as RECORDS
from tfunite.tools import compat

from maint import golden

BRIDGES = sorted(b for b in compat.registered_bridges() if RECORDS[b].golden_formats)

# Bridges whose goldens cannot be written yet, with the reason (keep this empty).
NO_GOLDEN: dict[str, str] = {}


def test_every_registered_bridge_has_goldens_or_a_reason():
    for bridge in compat.registered_bridges():
        assert golden.formats(bridge), f"{bridge}: give its record golden_formats"
        manifest = golden.GOLDEN_DIR / bridge / "manifest.json"
        assert manifest.is_file() or bridge in NO_GOLDEN, (
            f"{bridge} has no golden checkpoints; run `python maint/golden.py "
            f"--bridge {bridge}` or add it to NO_GOLDEN with a reason"
        )


@pytest.mark.parametrize("bridge", BRIDGES)
def test_golden_loads_exactly(bridge):
    if bridge in NO_GOLDEN:
        pytest.skip(NO_GOLDEN[bridge])
    assert golden.verify(bridge) == []


@pytest.mark.parametrize("bridge", BRIDGES)
def test_golden_files_are_tiny_and_complete(bridge):
    directory = golden.GOLDEN_DIR / bridge
    if not (directory / "manifest.json").is_file():
        pytest.skip(NO_GOLDEN.get(bridge, "no goldens"))
    manifest = json.loads((directory / "manifest.json").read_text())
    assert set(manifest["formats"]) == {"tfunite", *golden.formats(bridge)}
    size = sum(f.stat().st_size for f in directory.rglob("*") if f.is_file())
    assert size < 64 * 1024, f"{bridge} goldens are {size} bytes; keep them a few KB"
    assert all(v["name"] and not v["name"].endswith(":0") for v in manifest["variables"])


def test_golden_values_are_deterministic_and_distinct():
    variables = [
        {"name": "a", "shape": [2, 3], "dtype": "float32"},
        {"name": "b", "shape": [2, 3], "dtype": "float32"},
    ]
    values = golden.golden_values(variables)
    assert values["a"].ravel().tolist() == pytest.approx([0.0, 0.01, 0.02, 0.03, 0.04, 0.05])
    assert values["b"][0, 0] == 1.0  # same shape, different values: a swap is caught
    assert values["a"].dtype.name == "float32"


def test_renamed_variable_is_caught(tmp_path):
    import shutil

    shutil.copytree(golden.GOLDEN_DIR / "tf_module", tmp_path / "tf_module")
    path = tmp_path / "tf_module" / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["variables"][0]["name"] = "renamed/w"
    path.write_text(json.dumps(manifest))
    [problem] = golden.verify("tf_module", root=tmp_path)
    assert problem.startswith("tf_module: variable names changed since the goldens were written")
    assert "renamed/w" in problem


def test_changed_value_is_caught(tmp_path):
    import shutil

    import tfunite as tu

    shutil.copytree(golden.GOLDEN_DIR / "tf_module", tmp_path / "tf_module")
    owner, _ = compat.built(compat.case_for("tf_module"))
    compat.fill(owner, 3.0)
    shutil.rmtree(tmp_path / "tf_module" / "tfunite")
    tu.save(owner, str(tmp_path / "tf_module" / "tfunite"))
    problems = golden.verify("tf_module", root=tmp_path)
    assert problems and all(p.startswith("tf_module tfunite: ") for p in problems)
    assert "is not restored exactly" in problems[0]


@pytest.mark.parametrize("bridge", BRIDGES)
def test_regenerating_goldens_gives_the_committed_bytes(bridge, tmp_path):
    """The generator is deterministic: the checked-in files are exactly what today's code
    writes, so a change of names or formats shows as a diff, not as noise."""
    from tests.models import pollute

    pollute()  # what the process built before must not matter
    out = golden.write(bridge, root=tmp_path)
    committed = golden.GOLDEN_DIR / bridge
    files = sorted(p.relative_to(committed) for p in committed.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(out) for p in out.rglob("*") if p.is_file())
    for rel in files:
        if rel.parts[0] == "object":  # the object graph records process-dependent layer names
            if rel.suffix == ".index":
                prefix = str(rel)[: -len(".index")]
                assert _tensors(out / prefix) == _tensors(committed / prefix), f"{bridge}: {rel}"
        elif rel.name == "manifest.json":  # versions may differ: compare what was written
            got, want = (
                json.loads((out / rel).read_text()),
                json.loads((committed / rel).read_text()),
            )
            got.pop("written_with"), want.pop("written_with")
            assert got == want, rel
        elif rel.suffix == ".h5":  # HDF5 files hold write times: compare their datasets
            assert _h5_datasets(out / rel) == _h5_datasets(committed / rel), f"{bridge}: {rel}"
        else:
            assert (out / rel).read_bytes() == (committed / rel).read_bytes(), f"{bridge}: {rel}"


def _h5_datasets(path):
    import h5py

    found = {}
    with h5py.File(path, "r") as f:
        f.visititems(
            lambda name, obj: (
                found.__setitem__(name, obj[()].tobytes())
                if isinstance(obj, h5py.Dataset)
                else None
            )
        )
    return found


def _tensors(prefix):
    import tensorflow as tf

    reader = tf.train.load_checkpoint(str(prefix))
    return {
        k: reader.get_tensor(k).tobytes()
        for k in reader.get_variable_to_shape_map()
        if k != "_CHECKPOINTABLE_OBJECT_GRAPH"
    }


@pytest.mark.parametrize(
    "formats, message",
    [
        (("zip",), r"the tf_module record's golden_formats has 'zip'; golden writes object, "),
        (("saver",), r"the tf_module record's golden_formats has 'saver' but its case has no tf1"),
    ],
)
def test_write_refuses_a_format_the_case_cannot_write(formats, message, monkeypatch, tmp_path):
    import dataclasses

    record = dataclasses.replace(RECORDS["tf_module"], golden_formats=formats)
    monkeypatch.setitem(RECORDS, "tf_module", record)
    with pytest.raises(ValueError, match=message):
        golden.write("tf_module", root=tmp_path)
