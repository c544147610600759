"""Tests of the compatibility tooling: probe machinery, coverage, matrix rendering, doctor.

The full probe of every bridge runs in `make matrix` / `tfunite compat`; here the
machinery is tested on the cheap tf.Module bridge (one real subprocess), and the matrix
format and `--check` on small synthetic reports.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import pytest
from tfunite.registry import BRIDGES
from tfunite.tools import compat, doctor
from tfunite.tools.compat import goldens, runner

from maint import matrix


# ---------------------------------------------------------------------------- coverage
def test_every_registered_bridge_and_feature_is_probed_or_allow_listed():
    gaps = compat.coverage_gaps()
    assert not gaps, (
        f"bridge x feature cells with neither a probe nor an allow-list entry: {gaps}. "
        "Add a probe in tools/compat/probes.py (PROBES) or an entry with a reason to NOT_PROBED."
    )


def test_every_registered_bridge_has_a_case():
    for bridge in compat.registered_bridges():
        case = compat.case_for(bridge)
        assert isinstance(case, compat.Case) and case.record is BRIDGES[bridge]
        assert case.bridge == bridge


def _record(**changes):
    return dataclasses.replace(BRIDGES["tf_module"], **changes)


@pytest.mark.parametrize(
    "compat_case, why",
    [
        ("tfunite.tools.compat.cases:newframework", "is nothing"),
        ("tfunite.tools.compat.cases:case_for", "is function"),
        ("tfunite.no_such_module:newframework", "cannot import tfunite.no_such_module"),
        ("tfunite.tools.compat.cases", "is not 'module:attr'"),
    ],
)
def test_a_record_whose_compat_case_does_not_resolve_names_the_record(compat_case, why):
    record = _record(name="newframework", compat_case=compat_case)
    with pytest.raises(compat.CaseError, match=r"bridge record 'newframework': compat_case") as e:
        compat.resolve(record)
    assert why in str(e.value)
    assert "Fix: define `newframework = Case(...)` in tfunite.tools.compat.cases" in str(e.value)


def test_a_record_without_compat_case_is_refused():
    with pytest.raises(compat.CaseError, match=r"bridge record 'tf_module' has no compat_case\."):
        compat.resolve(_record(compat_case=None))


def test_an_unregistered_bridge_has_no_case():
    with pytest.raises(
        compat.CaseError, match=r"no bridge 'newframework' is registered .*tfunite\.bridges"
    ):
        compat.case_for("newframework")


def test_run_probe_fails_with_the_record_error_when_its_case_does_not_resolve(monkeypatch):
    monkeypatch.setitem(BRIDGES, "tf_module", _record(compat_case="tfunite.tools.compat.cases:x"))
    result = compat.run_probe("tf_module", "eager")
    assert result.status == "fail"
    assert result.reason.startswith("CaseError: bridge record 'tf_module': compat_case ")


def test_allow_list_entries_have_reasons_and_do_not_shadow_probes():
    for key, reason in compat.NOT_PROBED.items():
        assert len(reason) > 20, f"{key}: give a real reason"
        assert key not in compat.PROBES, f"{key} is both probed and allow-listed"


def test_coverage_gap_is_reported_for_an_unknown_bridge():
    gaps = compat.coverage_gaps(["newframework"])
    assert ("newframework", "import") in gaps and len(gaps) == len(compat.FEATURES)


def test_probe_registration_rejects_duplicates_and_unknown_features():
    with pytest.raises(ValueError, match="already registered"):
        compat.probe("eager", "keras")(lambda case, tmp: None)
    with pytest.raises(ValueError, match="Unknown feature 'teleport'"):
        compat.probe("teleport")


# ---------------------------------------------------------------------------- in-process
def test_run_probe_passes_for_tf_module_eager():
    result = compat.run_probe("tf_module", "eager")
    assert result.status == "pass", result.reason


def test_run_probe_reports_the_real_error(monkeypatch):
    def broken(case, tmp):
        raise RuntimeError(f"boom in {tmp}")

    monkeypatch.setitem(compat.PROBES, ("tf_module", "eager"), broken)
    result = compat.run_probe("tf_module", "eager")
    assert result.status == "fail"
    assert result.reason == "RuntimeError: boom in <tmp>"  # temp paths are normalized


def test_run_probe_skips_a_missing_framework(monkeypatch):
    """The import name, distribution and extra of the skip reason come from the record."""
    record = dataclasses.replace(BRIDGES["sonnet"], import_name="no_such_module_xyz")
    monkeypatch.setitem(BRIDGES, "sonnet", record)
    result = compat.run_probe("sonnet", "wrap")
    assert result.status == "skip"
    assert "pip install 'tfunite[sonnet]'" in result.reason
    assert result.reason == "dm-sonnet is not installed (pip install 'tfunite[sonnet]')"


def test_graph_cells_follow_the_record(monkeypatch):
    """A record with graph=False makes the graph probe expect tfunite's GraphModeError:
    tf.Module code runs in a TF1 graph, so claiming otherwise fails the probe."""
    monkeypatch.setitem(BRIDGES, "tf_module", _record(graph=False))
    result = compat.run_probe("tf_module", "graph")
    assert result.status == "fail"
    assert "expected GraphModeError for plain tf.Module in a TF1 graph" in result.reason


@pytest.mark.parametrize(
    "formats, reason",
    [
        ((), "AssertionError: the tf_module record declares no native checkpoint format"),
        (("object", "zip"), "AssertionError: no native probe for format(s) ['zip'] of tf_module"),
        (("saver",), "AssertionError: the tf_module record lists the 'saver' format but its case"),
    ],
)
def test_native_probe_writes_the_formats_of_the_record(formats, reason, monkeypatch):
    monkeypatch.setitem(BRIDGES, "tf_module", _record(golden_formats=formats))
    result = compat.run_probe("tf_module", "native")
    assert result.status == "fail" and result.reason.startswith(reason), result.reason


def test_golden_probe_skips_without_a_checkout(monkeypatch, tmp_path):
    """From an installed copy (no tests/golden beside the package) the golden probe skips
    with the reason; from this checkout it runs."""
    assert goldens.golden_dir() is not None
    monkeypatch.setattr(goldens, "CHECKOUT", tmp_path)
    result = compat.run_probe("tf_module", "golden")
    assert result.status == "skip"
    assert result.reason.startswith("the golden checkpoints are in a tfunite checkout")
    assert str(tmp_path) in result.reason


def test_allow_listed_cell_is_not_applicable():
    result = compat.run_probe("tf_module", "port")
    assert result.status == "n/a" and result.reason == compat.NOT_PROBED[("tf_module", "port")]


def test_check_close_messages():
    import numpy as np

    compat.check_close(np.ones(3), np.ones(3) + 1e-7, "same")
    with pytest.raises(AssertionError, match=r"x: max abs difference 0\.1 > rtol=atol=1e-06"):
        compat.check_close(np.ones(3), np.ones(3) + 0.1, "x")
    with pytest.raises(AssertionError, match="non-finite"):
        compat.check_close(np.array([np.nan]), np.array([0.0]), "y")


# ---------------------------------------------------------------------------- subprocess
def test_cli_json_runs_a_bridge_in_a_subprocess():
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "tfunite.tools.compat",
            "--json",
            "--bridge",
            "tf_module",
            "--feature",
            "import",
            "eager",
            "function",
            "load",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    data = json.loads(proc.stdout)
    assert [(r["feature"], r["status"]) for r in data["results"]] == [
        ("import", "pass"),
        ("eager", "pass"),
        ("function", "pass"),
        ("load", "pass"),
    ]
    assert data["environment"]["tensorflow"] == doctor.versions()["tensorflow"]
    assert data["counts"]["pass"] == 4


def test_worker_crash_fails_that_probe_and_the_rest_continue(tmp_path):
    fake = tmp_path / "python"
    fake.write_text(
        "#!/bin/sh\n"
        'if [ "$6" = "import" ]; then echo \'Segmentation fault\' >&2; exit 139; fi\n'
        f"echo '{compat.MARK}'"
        '\'{"bridge": "tf_module", "feature": "eager", "status": "pass", "reason": "", '
        '"seconds": 0.1}\'\n'
    )
    fake.chmod(0o755)
    results = runner._run_bridge("tf_module", ("import", "eager"), 30, python=str(fake))
    assert [r.status for r in results] == ["fail", "pass"]
    assert results[0].reason == "worker exited with code 139 during this probe: Segmentation fault"


def test_a_probe_that_switches_eager_off_is_failed_and_isolated():
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, tensorflow as tf\n"
            "from tfunite.tools import compat\n"
            "compat.PROBES[('tf_module', 'eager')] = "
            "lambda case, tmp: tf.compat.v1.disable_eager_execution()\n"
            "sys.exit(compat.worker('tf_module', ['eager', 'function']))\n",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == compat.POISONED, proc.stderr[-2000:]
    [line] = [ln for ln in proc.stdout.splitlines() if ln.startswith(compat.MARK)]
    result = json.loads(line[len(compat.MARK) :])
    assert result["status"] == "fail" and "switched off" in result["reason"]


def test_tfunite_compat_errors_go_to_stderr_with_exit_code_2():
    proc = subprocess.run(
        [sys.executable, "-m", "tfunite.tools.cli", "compat", "--bridge", "nope"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "unknown bridge(s) nope; registered: keras" in proc.stderr
    assert proc.stdout == ""


def test_help():
    text = compat.build_parser().format_help()
    assert "--check" in text and "--json" in text and "--bridge" in text


# ---------------------------------------------------------------------------- matrix
def _run(line, tf_version, statuses):
    results = [
        {"bridge": b, "feature": f, "status": s, "reason": r, "seconds": 0.1}
        for (b, f), (s, r) in statuses.items()
    ]
    counts = {s: sum(r["status"] == s for r in results) for s in compat.STATUSES}
    return {
        "line": line,
        "environment": {"python": "3.11.7", "tensorflow": tf_version, "keras": "3.15.1"},
        "counts": counts,
        "results": results,
    }


RUNS = [
    _run(
        "2.16",
        "2.16.2",
        {
            ("tf_module", "eager"): ("pass", ""),
            ("tf_module", "graph"): ("fail", "ValueError: x | y"),
            ("tf_module", "port"): ("n/a", "no architecture"),
        },
    ),
    _run(
        "2.21",
        "2.21.0",
        {
            ("tf_module", "eager"): ("pass", ""),
            ("tf_module", "graph"): ("pass", ""),
            ("tf_module", "port"): ("n/a", "no architecture"),
        },
    ),
]


def test_render_and_parse_round_trip():
    text = matrix.render(RUNS, date="2026-01-01")
    assert "Generated on 2026-01-01" in text
    assert "| tf_module | graph | **fail** [1] | pass |" in text
    assert "| **pass** | (of applicable) | 1/2 | 2/2 |" in text
    assert "1. ValueError: x \\| y" in text  # a '|' in a reason does not break the table
    assert "2. no architecture" in text  # identical reasons share one footnote
    parsed = matrix.parse_matrix(text)
    assert parsed["columns"] == ["tf-2.16", "tf-2.21"]
    assert parsed["versions"]["tf-2.21"]["tensorflow"] == "2.21.0"
    assert parsed["cells"]["tf-2.16"][("tf_module", "graph")] == "fail"
    assert parsed["cells"]["tf-2.21"][("tf_module", "port")] == "n/a"


def test_a_written_matrix_gives_back_its_reports(tmp_path):
    """`maint/matrix.py --here` keeps the columns it does not probe from the matrix itself:
    reading the reports back and rendering them again gives the same file."""
    text = matrix.render(RUNS, date="2026-01-01")
    path = tmp_path / "compat_matrix.md"
    path.write_text(text)
    runs = matrix.from_matrix(path)
    assert list(runs) == ["2.16", "2.21"]
    assert runs["2.16"]["results"][1] == {
        "bridge": "tf_module",
        "feature": "graph",
        "status": "fail",
        "reason": "ValueError: x | y",
        "seconds": 0.0,
    }
    assert runs["2.16"]["counts"] == RUNS[0]["counts"]
    assert matrix.render(list(runs.values()), date="2026-01-01") == text


def test_here_refuses_an_environment_that_is_not_the_line(tmp_path, monkeypatch):
    from importlib.metadata import version

    line = ".".join(version("tensorflow").split(".")[:2])
    (tmp_path / f"tf-{line}.txt").write_text(
        f"tensorflow=={version('tensorflow')}\nno-such-dist-xyz==1.0\n"
    )
    monkeypatch.setattr(matrix, "CONSTRAINTS", tmp_path)
    with pytest.raises(RuntimeError, match=rf"not the tf-{line} line .*no-such-dist-xyz: pinned"):
        matrix.here_line([line])
    with pytest.raises(RuntimeError, match=r"constraint files exist for 1\.0"):
        matrix.here_line(["1.0"])


def test_parse_rejects_other_markdown():
    with pytest.raises(ValueError, match="not a tfunite compat matrix"):
        matrix.parse_matrix("# hello\n")


def test_check_finds_stale_cells(tmp_path, monkeypatch):
    path = tmp_path / "compat_matrix.md"
    path.write_text(matrix.render(RUNS))
    monkeypatch.setattr(
        doctor, "versions", lambda: {"python": "3.11.7", "tensorflow": "2.21.0", "keras": "3.15.1"}
    )
    fresh = [
        compat.Result("tf_module", "eager", "pass"),
        compat.Result("tf_module", "graph", "fail", "GraphModeError: broke"),
        compat.Result("tf_module", "port", "n/a", "no architecture"),
    ]
    assert compat.check(str(path), fresh) == [
        "tf_module x graph: matrix pass, here fail (GraphModeError: broke)"
    ]
    fresh[1] = compat.Result("tf_module", "graph", "pass")
    assert compat.check(str(path), fresh) == []


def test_check_reports_version_drift_and_missing_column(tmp_path, monkeypatch):
    path = tmp_path / "compat_matrix.md"
    path.write_text(matrix.render(RUNS))
    monkeypatch.setattr(doctor, "versions", lambda: {"tensorflow": "2.21.0", "keras": "3.14.0"})
    assert compat.check(str(path), []) == ["version keras: matrix 3.15.1, here 3.14.0"]
    # Python is compared by major.minor: a patch release is not a stale matrix.
    monkeypatch.setattr(doctor, "versions", lambda: {"tensorflow": "2.21.0", "python": "3.11.9"})
    assert compat.check(str(path), []) == []
    monkeypatch.setattr(doctor, "versions", lambda: {"tensorflow": "2.21.0", "python": "3.12.3"})
    assert compat.check(str(path), []) == ["version python: matrix 3.11, here 3.12"]
    monkeypatch.setattr(doctor, "versions", lambda: {"tensorflow": "2.19.0"})
    [message] = compat.check(str(path), [])
    assert message.startswith("no column of") and "has tensorflow 2.19.0" in message


def test_constraint_files_pin_every_framework():
    assert {"2.15", "2.16", "2.21"} <= set(matrix.lines())
    distributions = {record.distribution for record in BRIDGES.values()}
    assert {"tensorflow", "keras", "tf-keras", "tf-slim", "dm-sonnet", "tflearn"} <= distributions
    for line in matrix.lines():
        text = (matrix.CONSTRAINTS / f"tf-{line}.txt").read_text()
        for package in sorted(distributions):
            assert f"\n{package}==" in text, f"tf-{line}.txt does not pin {package}"
        assert f"\ntensorflow=={line}." in text


def test_committed_matrix_matches_a_fresh_probe_of_this_environment():
    """CI's staleness check: the committed matrix's column for the pinned environment
    must equal a fresh run of every probe here (`tfunite compat --check`)."""
    proc = subprocess.run(
        [sys.executable, "-m", "tfunite.tools.compat", "--check", str(matrix.OUTPUT)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "matches this environment" in proc.stdout


def test_committed_matrix_parses_and_has_the_current_line():
    if not matrix.OUTPUT.is_file():
        pytest.skip("compat_matrix.md not generated yet")
    parsed = matrix.parse_matrix(matrix.OUTPUT.read_text())
    assert set(parsed["columns"]) == {f"tf-{line}" for line in matrix.lines()}
    tf_versions = {v.get("tensorflow") for v in parsed["versions"].values()}
    assert doctor.versions()["tensorflow"] in tf_versions


# ---------------------------------------------------------------------------- doctor
def test_tfunite_doctor_json_lists_versions_fixes_and_problems():
    proc = subprocess.run(
        [sys.executable, "-m", "tfunite.tools.cli", "doctor", "--json"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    data = json.loads(proc.stdout)
    for key in ("python", "tensorflow", "numpy", "h5py"):
        assert key in data["versions"]
    assert data["versions"]["tensorflow"] == doctor.versions()["tensorflow"]
    assert isinstance(data["fixes"], list) and isinstance(data["problems"], list)
    assert all({"name", "severity", "summary", "fix"} <= set(p) for p in data["problems"])


def test_doctor_checks_every_fix_without_switching_eager_off():
    """`tfunite doctor` asks each fix whether it is needed before any bridge is used; a
    check that imported TFLearn unfixed would switch eager execution off for the process."""
    from tests.conftest import run_fresh

    out = run_fresh(
        "import json, sys, tensorflow as tf\n"
        "from tfunite.tools import doctor\n"
        "data = doctor.diagnose()\n"
        "print(json.dumps({'eager': tf.executing_eagerly(), 'tflearn': 'tflearn' in sys.modules,"
        " 'needed': {f['name']: f['needed'] for f in data['fixes']}}))"
    )
    assert out["eager"] is True and out["tflearn"] is False
    assert out["needed"] and all(v is True for v in out["needed"].values()), out["needed"]


def test_doctor_text_report():
    data = doctor.diagnose(import_bridges=False)
    text = doctor.format_report(data)
    assert "Versions:" in text and "Legacy fixes" in text and "Known problems" in text
    assert f"tensorflow  {data['versions']['tensorflow']}" in text


def _names(found):
    return {p.name: p for p in doctor.problems(found)}


def test_doctor_missing_package_gives_the_pip_extra():
    found = {"python": "3.11.7", "tensorflow": "2.21.0", "keras": "3.15.1", "numpy": "2.4.6"}
    problems = _names(found)
    assert problems["tf_slim-missing"].fix == "pip install 'tfunite[slim]'"
    assert problems["sonnet-missing"].fix == "pip install 'tfunite[sonnet]'"
    assert problems["tf_keras-missing"].fix == "pip install 'tfunite[tf-keras]'"
    assert "keras3-tf1-graph" in problems


def test_doctor_known_environment_problems():
    problems = _names(
        {
            "tensorflow": "2.21.0",
            "keras": "3.15.1",
            "tf_keras": "2.20.1",
            "tf_slim": "1.1.0",
            "sonnet": "1.36",
            "tflearn": "0.5.0",
            "pillow": "11.0.0",
            "numpy": "2.4.6",
        }
    )
    assert problems["tf-keras-version"].fix == "pip install 'tf-keras~=2.21.0'"
    assert problems["sonnet1"].fix == "pip install 'dm-sonnet>=2'"
    assert "tf.contrib" in problems["sonnet1"].summary
    assert "is_sequence" in problems["tflearn-import"].summary
    assert "ANTIALIAS" in problems["tflearn-pillow"].summary
    old = _names({"tensorflow": "2.15.1", "keras": "2.15.0", "numpy": "2.0.0"})
    assert old["numpy2-old-tf"].fix == "pip install 'numpy<2'"
    assert "tensorflow-old" in old and "keras3-tf1-graph" not in old
    no_tf_keras = _names({"tensorflow": "2.21.0", "keras": "3.15.1", "tf_slim": "1.1.0"})
    assert no_tf_keras["slim-needs-tf-keras"].fix == "pip install 'tfunite[tf-keras]'"


def test_doctor_reports_legacy_env_var(monkeypatch):
    monkeypatch.setenv("TF_USE_LEGACY_KERAS", "1")
    assert "tf-use-legacy-keras" in _names({"tensorflow": "2.21.0", "keras": "3.15.1"})


def test_doctor_help_and_bad_option():
    proc = subprocess.run(
        [sys.executable, "-m", "tfunite.tools.doctor", "--bogus"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2 and "unrecognized arguments: --bogus" in proc.stderr
    assert "--json" in doctor.build_parser().format_help()
