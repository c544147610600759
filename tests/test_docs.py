"""Every example in a README or a docstring runs (issue 9, item 6).

**Markdown.** Every ```python block of every `README.md` of the checkout (outside
.venv, build and hidden folders) runs in a fresh namespace, in a temporary working
directory, in this process. HTML comments on the lines right before a block say what it
needs; they are the only way to change how a block runs:

- `<!-- doctest-setup: NAME[, NAME] -->`: the setup functions of this file (`@setup`)
  create the files the block reads (a Slim checkpoint "my_model.ckpt", ...) in the
  temporary directory first.
- `<!-- doctest-continue -->`: the block continues the previous python block of the same
  file (runs in its namespace, after it).
- `<!-- doctest-process -->`: the block runs in a fresh Python process (TF1 mode, a
  block that must not see what this process imported).
- `<!-- doctest-skip: REASON -->`: the block cannot run here; the reason is required.
- `<!-- doctest-output -->` before a block (```text) right after a python block: that
  block is what the python block prints (compared as doctest does, with ELLIPSIS and
  NORMALIZE_WHITESPACE).

In ```bash and ```sh blocks, each line that starts with `tfunite ` is checked: cheap
commands (`recipes`, `inspect`, `diff`, `--help`) run through the CLI's `main` with
`CKPT`, `CKPT_A` and `CKPT_B` replaced by a small checkpoint written here; the others
(a port, `doctor`, `compat`) are only parsed by the CLI's argument parser.

**Docstrings.** Every module of the installed `tfunite` package (walked with pkgutil;
subpackages that an editable install maps from other folders are read from
pyproject.toml) whose source holds a `>>>` example runs under `doctest` (ELLIPSIS,
NORMALIZE_WHITESPACE) with the module's globals plus `tu`, `tf` and `np`, in a
temporary working directory. A module whose framework is not installed is skipped. An
example marked `# doctest: +SKIP` must say why in a comment before the directive on
the same line (`>>> f()  # needs the internet  # doctest: +SKIP`).

Discovery has no list of files: a new README block or docstring example that does not
run makes this file fail.
"""

from __future__ import annotations

import contextlib
import dataclasses
import doctest
import importlib
import importlib.util
import io
import os
import pkgutil
import re
import shlex
import subprocess
import sys
import textwrap
import types
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
EXCLUDED_DIRS = {".venv", "venv", "build", "dist", "node_modules", "__pycache__"}
PYTHON_LANGS = {"python", "py", "python3"}
SHELL_LANGS = {"bash", "sh", "shell", "console"}
CHEAP_COMMANDS = {"recipes", "inspect", "diff", "--help"}
DIRECTIVE = re.compile(r"^<!--\s*doctest-([a-z]+)\s*(?::\s*(.*?))?\s*-->$")
FENCE = re.compile(r"^(`{3,}|~{3,})\s*([\w+-]*)")


# ---------------------------------------------------------------- markdown blocks
@dataclasses.dataclass(frozen=True)
class Block:
    """One fenced block of a markdown file and the directives right before it."""

    path: str  # relative to ROOT
    line: int  # 1-based line of the first code line
    lang: str
    code: str
    setups: tuple[str, ...] = ()
    skip: str | None = None  # the reason, when `doctest-skip` is given
    cont: bool = False
    process: bool = False
    output: bool = False  # this block is the expected stdout of the python block before it

    @property
    def id(self) -> str:
        return f"{self.path}:{self.line}"


class MarkdownError(ValueError):
    """A doctest directive in a markdown file is malformed or misplaced."""


def parse_markdown(text: str, path: str = "<md>") -> list[Block]:
    """The fenced blocks of `text` with their directives (HTML comments right before)."""
    lines = text.splitlines()
    blocks: list[Block] = []
    pending: list[tuple[int, str, str | None]] = []  # (line, directive, argument)
    i = 0
    while i < len(lines):
        stripped = lines[i].strip()
        directive = DIRECTIVE.match(stripped)
        fence = FENCE.match(stripped)
        if directive:
            pending.append((i + 1, directive.group(1), directive.group(2)))
        elif stripped.startswith("<!--") and "doctest" in stripped:
            raise MarkdownError(
                f"{path}:{i + 1}: malformed doctest directive {stripped!r}. Expected "
                "<!-- doctest-NAME --> or <!-- doctest-NAME: ARGUMENT --> on one line. "
                "Fix: write it on one line in that form."
            )
        elif fence:
            end = next(
                (j for j in range(i + 1, len(lines)) if lines[j].strip() == fence.group(1)), None
            )
            if end is None:
                raise MarkdownError(f"{path}:{i + 1}: fenced block never closed.")
            body = textwrap.dedent("\n".join(lines[i + 1 : end]))
            blocks.append(_block(path, i + 2, fence.group(2).lower(), body, pending))
            pending = []
            i = end
        elif stripped and pending:
            raise MarkdownError(
                f"{path}:{pending[0][0]}: doctest directive '{pending[0][1]}' is followed by "
                f"text, not by a fenced block. Fix: put it on the line right before the block."
            )
        i += 1
    if pending:
        raise MarkdownError(f"{path}:{pending[0][0]}: doctest directive at the end of the file.")
    for before, block in zip([None, *blocks], blocks):
        if block.output and (before is None or before.lang not in PYTHON_LANGS):
            raise MarkdownError(
                f"{path}:{block.line - 2}: doctest-output block does not follow a python block. "
                "Fix: put the expected output right after the python block that prints it."
            )
    return blocks


def _block(path: str, line: int, lang: str, code: str, directives: list) -> Block:
    fields: dict = {}
    for where, name, arg in directives:
        if name == "setup":
            names = tuple(n.strip() for n in (arg or "").split(",") if n.strip())
            unknown = [n for n in names if n not in SETUPS]
            if not names or unknown:
                raise MarkdownError(
                    f"{path}:{where}: doctest-setup names {unknown or 'nothing'}; expected "
                    f"setup functions of tests/test_docs.py, one of {sorted(SETUPS)}. Fix: "
                    "name one of them or add it there with @setup."
                )
            fields["setups"] = fields.get("setups", ()) + names
        elif name == "skip":
            if not (arg or "").strip():
                raise MarkdownError(
                    f"{path}:{where}: doctest-skip without a reason. Expected "
                    "<!-- doctest-skip: why it cannot run -->. Fix: give the reason, or make "
                    "the block runnable."
                )
            fields["skip"] = arg.strip()
        elif name in ("continue", "process", "output") and not arg:
            fields["cont" if name == "continue" else name] = True
        else:
            raise MarkdownError(
                f"{path}:{where}: unknown doctest directive {name!r} (argument {arg!r}). "
                "Expected setup: NAMES, skip: REASON, continue, process or output. Fix: use one "
                "of them."
            )
    return Block(path, line, lang, code, **fields)


def readmes() -> list[Path]:
    """Every README.md of the checkout, outside virtual envs, builds and hidden folders."""
    found = []
    for folder, dirs, files in os.walk(ROOT):
        dirs[:] = sorted(
            d
            for d in dirs
            if d not in EXCLUDED_DIRS and not d.startswith(".") and not d.endswith(".egg-info")
        )
        found += [Path(folder) / f for f in files if f == "README.md"]
    return sorted(found)


def markdown_blocks() -> list[Block]:
    blocks = []
    for path in readmes():
        blocks += parse_markdown(path.read_text(), str(path.relative_to(ROOT)))
    return blocks


def chain(block: Block, blocks: list[Block]) -> list[Block]:
    """`block` preceded by the blocks it continues (doctest-continue), first one first."""
    same = [b for b in blocks if b.path == block.path and b.lang in PYTHON_LANGS]
    at = same.index(block)
    start = at
    while same[start].cont:
        if start == 0:
            raise MarkdownError(f"{block.id}: doctest-continue on the file's first python block.")
        start -= 1
    return same[start : at + 1]


# ---------------------------------------------------------------- setups
SETUPS: dict[str, Callable[[Path, pytest.MonkeyPatch], None]] = {}


def setup(fn: Callable[[Path, pytest.MonkeyPatch], None]):
    """Register `fn(tmp_path, monkeypatch)` as a `doctest-setup` name."""
    SETUPS[fn.__name__] = fn
    return fn


@setup
def slim_resnet_v1_50_checkpoint(tmp: Path, mp: pytest.MonkeyPatch) -> None:
    """resnet_v1_50.ckpt: a Slim model-zoo resnet_v1_50 (1000 classes), random weights."""
    from tfunite.porting import _slim

    _slim.write_random_checkpoint(
        "resnet_v1_50", str(tmp / "resnet_v1_50.ckpt"), (224, 224, 3), 1000
    )


def custom_values(seed: int = 3) -> dict[str, np.ndarray]:
    """The entries of a small custom Slim model: net/conv1 (3x3, 1->4) and net/logits."""
    rng = np.random.default_rng(seed)
    return {
        "net/conv1/weights": rng.normal(size=(3, 3, 1, 4)).astype(np.float32),
        "net/conv1/biases": rng.normal(size=(4,)).astype(np.float32),
        "net/logits/weights": rng.normal(size=(6, 6, 4, 3)).astype(np.float32),
        "net/logits/biases": rng.normal(size=(3,)).astype(np.float32),
        "global_step": np.array(3, np.int64),
    }


@setup
def slim_custom_checkpoint(tmp: Path, mp: pytest.MonkeyPatch) -> None:
    """my_model.ckpt: the custom model of porting/README.md (`custom_values`)."""
    from tfunite.porting import _slim

    _slim.write_raw(custom_values(), str(tmp / "my_model.ckpt"))


@setup
def slim_tiny_checkpoint(tmp: Path, mp: pytest.MonkeyPatch) -> None:
    """tiny.ckpt: net/conv1 (3x3, 3->4 channels) and net/logits (144->3), as Slim's
    conv2d + flatten + fully_connected write them for an 8x8x3 input."""
    from tfunite.porting import _slim

    rng = np.random.default_rng(5)
    shapes = {
        "net/conv1/weights": (3, 3, 3, 4),
        "net/conv1/biases": (4,),
        "net/logits/weights": (144, 3),
        "net/logits/biases": (3,),
    }
    values = {k: rng.normal(size=s).astype(np.float32) for k, s in shapes.items()}
    _slim.write_raw(values, str(tmp / "tiny.ckpt"))


KERAS_FACTORIES = """\
import sonnet as snt
import tf_slim as slim
import tfunite as tu


def features(inputs, is_training):
    return slim.fully_connected(
        inputs,
        16,
        scope="fc1",
        normalizer_fn=slim.batch_norm,
        normalizer_params={"is_training": is_training},
    )


def trunk():
    return tu.slim(features, name="trunk")


def head():
    return tu.wrap(snt.nets.MLP([16, 2], name="mlp"), name="head")
"""


@setup
def keras_factory_module(tmp: Path, mp: pytest.MonkeyPatch) -> None:
    """my_models.py, importable: the owner factories README's Keras section shows
    (`test_keras_factories_shown_in_readme` keeps the two equal)."""
    (tmp / "my_models.py").write_text(KERAS_FACTORIES)
    mp.syspath_prepend(str(tmp))


def test_keras_factories_shown_in_readme():
    assert (
        "```python\n# my_models.py\n" + KERAS_FACTORIES + "```" in (ROOT / "README.md").read_text()
    )


@setup
def bench_script(tmp: Path, mp: pytest.MonkeyPatch) -> None:
    """Runs the block as a benchmark script: bench/ on sys.path, no command-line options."""
    mp.syspath_prepend(str(ROOT / "bench"))
    mp.setattr(sys, "argv", ["bench_example.py"])
    mp.delitem(sys.modules, "common", raising=False)


# ---------------------------------------------------------------- running blocks
@contextlib.contextmanager
def sandbox(tmp: Path) -> Iterator[pytest.MonkeyPatch]:
    """The temporary directory as working directory; tfunite's cache inside it."""
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(tmp)
        mp.setenv("TFUNITE_CACHE_DIR", str(tmp / ".tfunite-cache"))
        yield mp


def run_python(blocks: list[Block], tmp: Path) -> tuple[dict, str]:
    """Run python blocks one after the other in one fresh namespace; return it and what
    the last block printed.

    A `SystemExit(0)` (a script's `sys.exit(main())`) ends the block successfully."""
    namespace: dict = {"__name__": "__main__"}
    out = io.StringIO()
    with sandbox(tmp) as mp:
        for block in blocks:
            for name in block.setups:
                SETUPS[name](tmp, mp)
        if any(b.process for b in blocks):
            return namespace, _run_in_process(blocks, tmp)
        for block in blocks:
            # Leading newlines: a traceback names the block's line in the markdown file.
            code = compile("\n" * (block.line - 1) + block.code, block.path, "exec")
            out = io.StringIO()
            try:
                with contextlib.redirect_stdout(out):
                    exec(code, namespace)
            except SystemExit as e:
                if e.code not in (None, 0):
                    raise AssertionError(f"{block.id} exited with {e.code!r}") from e
            finally:
                sys.stdout.write(out.getvalue())  # shown by pytest when the test fails
    return namespace, out.getvalue()


def check_output(block: Block, expected: Block, got: str) -> None:
    """`got` (what `block` printed) matches the doctest-output block `expected`."""
    checker = doctest.OutputChecker()
    want = expected.code.rstrip("\n") + "\n"
    if not checker.check_output(want, got, FLAGS):
        raise AssertionError(
            f"{block.id} printed what its doctest-output block ({expected.id}) does not show:\n"
            + checker.output_difference(doctest.Example("", want), got, FLAGS)
            + "Fix: update the output block, or the code."
        )


def _run_in_process(blocks: list[Block], tmp: Path) -> str:
    code = "\n".join(b.code for b in blocks)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp, env=env, capture_output=True, text=True, timeout=600
    )
    if proc.returncode != 0:
        raise AssertionError(
            f"{blocks[-1].id} failed in a fresh process (exit {proc.returncode}):\n"
            f"{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
        )
    return proc.stdout


def tfunite_commands(block: Block) -> list[list[str]]:
    """The `tfunite ...` command lines of a shell block, as argument lists (no comment)."""
    commands = []
    for line in block.code.splitlines():
        line = line.strip()
        if line.startswith("$ "):
            line = line[2:]
        if line.startswith("tfunite ") or line == "tfunite":
            commands.append(shlex.split(line, comments=True)[1:])
    return commands


def run_command(argv: list[str], tmp: Path) -> tuple[int, str]:
    """Run a cheap command through the CLI's `main` (placeholders replaced), or only parse
    an expensive one; (exit code, stdout)."""
    from tfunite.tools import cli

    ckpt = str(tmp / "small" / "ckpt")  # a V2 bundle prefix
    if not os.path.exists(ckpt + ".index"):
        import tensorflow as tf

        tf.train.Checkpoint(w=tf.Variable(np.arange(6, dtype=np.float32).reshape(2, 3))).write(ckpt)
    places = {"CKPT": ckpt, "CKPT_A": ckpt, "CKPT_B": ckpt}
    argv = [places.get(a, a) for a in argv]
    if argv and argv[0] in CHEAP_COMMANDS:
        out = io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            try:
                code = cli.main(argv)
            except SystemExit as e:  # --help
                code = e.code or 0
        return code, out.getvalue()
    try:
        cli.build_parser().parse_args(argv)
    except Exception as e:  # the CLI's parser raises instead of exiting
        raise AssertionError(
            f"`tfunite {' '.join(argv)}` does not parse: {e}. Expected a command line the "
            "CLI accepts. Fix: update the README's command to the CLI's options."
        ) from e
    return 0, ""


# ---------------------------------------------------------------- docstrings
def _pyproject_packages() -> list[str]:
    """`[tool.setuptools] packages` of pyproject.toml (an editable install maps them)."""
    path = ROOT / "pyproject.toml"
    if not path.exists():
        return []
    import tomllib

    data = tomllib.loads(path.read_text())
    return list(data.get("tool", {}).get("setuptools", {}).get("packages", []))


def _walk(name: str) -> Iterator[str]:
    """`name` and every module under it, found by pkgutil without importing them."""
    spec = importlib.util.find_spec(name)  # imports the parent package, not `name`
    if spec is None:
        return
    yield name
    for info in pkgutil.iter_modules(spec.submodule_search_locations or []):
        full = f"{name}.{info.name}"
        if info.ispkg:
            yield from _walk(full)
        else:
            yield full


def package_modules() -> list[str]:
    names: list[str] = []
    for top in ["tfunite", *_pyproject_packages()]:
        names += [n for n in _walk(top) if n not in names]
    return names


def source(module: str) -> str:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.origin or not os.path.exists(spec.origin):
        return ""
    return Path(spec.origin).read_text()


def modules_with_examples() -> list[str]:
    return [m for m in package_modules() if re.search(r"^\s*>>>", source(m), re.M)]


def import_or_skip(module: str) -> types.ModuleType:
    """Import `module`; skip when the framework it needs is not installed."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as e:
        top = (e.name or "").split(".")[0]
        if top and not top.startswith("tfunite") and importlib.util.find_spec(top) is None:
            pytest.skip(f"{module} needs {top}, which is not installed")
        raise


SKIP_REASON = re.compile(r"#\s*(?!doctest:)\S.*#\s*doctest:\s*[^\n]*\+SKIP")
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def doctests(module: types.ModuleType) -> list[doctest.DocTest]:
    import tensorflow as tf
    import tfunite as tu

    finder = doctest.DocTestFinder()
    tests = finder.find(module, module.__name__, extraglobs={"tu": tu, "tf": tf, "np": np})
    return [t for t in tests if t.examples]


def unexplained_skips(tests: list[doctest.DocTest]) -> list[str]:
    """Examples marked +SKIP without a reason comment before the directive."""
    return [
        f"{t.name} line {t.lineno + e.lineno + 1}: {e.source.strip()}"
        for t in tests
        for e in t.examples
        if e.options.get(doctest.SKIP) and not SKIP_REASON.search(e.source)
    ]


def run_doctests(tests: list[doctest.DocTest], tmp: Path) -> tuple[int, str]:
    """(failures, the runner's report) of `tests`, run in `tmp`."""
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    out = io.StringIO()
    with sandbox(tmp):
        for test in tests:
            runner.run(test, out=out.write, clear_globs=True)
    return runner.failures, out.getvalue()


# ---------------------------------------------------------------- the tests
BLOCKS = markdown_blocks()
PYTHON_BLOCKS = [b for b in BLOCKS if b.lang in PYTHON_LANGS]
SHELL_BLOCKS = [b for b in BLOCKS if b.lang in SHELL_LANGS and tfunite_commands(b)]
DOC_MODULES = modules_with_examples()


@pytest.mark.parametrize("block", PYTHON_BLOCKS, ids=lambda b: b.id)
def test_readme_python_block_runs(block, tmp_path):
    blocks = chain(block, BLOCKS)
    skipped = [b for b in blocks if b.skip is not None]
    if skipped:
        assert skipped[0].skip.strip(), f"{skipped[0].id}: doctest-skip needs a reason"
        pytest.skip(f"{skipped[0].id}: {skipped[0].skip}")
    try:
        _, printed = run_python(blocks, tmp_path)
    except ModuleNotFoundError as e:
        top = (e.name or "").split(".")[0]
        if top and importlib.util.find_spec(top) is None:
            pytest.skip(f"{block.id} needs {top}, which is not installed")
        raise
    after = BLOCKS.index(block) + 1
    if after < len(BLOCKS) and BLOCKS[after].output:
        check_output(block, BLOCKS[after], printed)


@pytest.mark.parametrize("block", SHELL_BLOCKS, ids=lambda b: b.id)
def test_readme_tfunite_commands_run_or_parse(block, tmp_path):
    with sandbox(tmp_path):
        for argv in tfunite_commands(block):
            code, out = run_command(argv, tmp_path)
            assert code == 0, f"{block.id}: `tfunite {' '.join(argv)}` exited {code}:\n{out}"
            if argv and argv[0] in CHEAP_COMMANDS:
                assert out.strip(), f"{block.id}: `tfunite {' '.join(argv)}` printed nothing"


@pytest.mark.parametrize("module", DOC_MODULES)
def test_docstring_examples_run(module, tmp_path):
    mod = import_or_skip(module)
    tests = doctests(mod)
    assert tests, f"{module}: its source has '>>>' but doctest finds no example in it"
    assert not unexplained_skips(tests), (
        f"{module}: examples marked '# doctest: +SKIP' without a reason: "
        f"{unexplained_skips(tests)}. Fix: make them run, or say why before the directive "
        "(>>> f()  # needs the internet  # doctest: +SKIP)."
    )
    failures, report = run_doctests(tests, tmp_path)
    assert failures == 0, f"{module}: {failures} docstring example(s) failed:\n{report}"


# ---------------------------------------------------------------- the harness itself
def test_discovery_finds_every_readme_and_docstring_module():
    paths = {b.path for b in PYTHON_BLOCKS}
    assert {"README.md", "porting/README.md", "bench/README.md"} <= paths
    assert "core/README.md" in {str(p.relative_to(ROOT)) for p in readmes()}
    assert not any(".venv" in str(p) for p in readmes())
    modules = package_modules()
    assert {"tfunite.owner", "tfunite.bridges.slim", "tfunite.porting", "tfunite.tools.cli"} <= set(
        modules
    )
    assert {"tfunite.parameters", "tfunite.optimizer", "tfunite.capture", "tfunite.porting"} <= set(
        DOC_MODULES
    )
    assert any(b.path == "README.md" and "tfunite recipes" in b.code for b in SHELL_BLOCKS)


def test_markdown_directives_are_parsed():
    text = textwrap.dedent(
        """\
        Text.

        <!-- doctest-setup: slim_custom_checkpoint, slim_tiny_checkpoint -->
        ```python
        a = 1
        ```

        <!-- doctest-continue -->
        ```python
        b = a + 1
        ```
        <!-- doctest-output -->
        ```text
        2
        ```
        <!-- doctest-skip: needs the internet -->
        ```bash
        tfunite recipes  # the recipes
        ```
        """
    )
    first, second, output, third = parse_markdown(text, "x.md")
    assert output.output and output.code == "2" and not second.output
    assert (first.line, first.lang, first.code) == (5, "python", "a = 1")
    assert first.setups == ("slim_custom_checkpoint", "slim_tiny_checkpoint")
    assert second.cont and not first.cont
    assert chain(second, [first, second, third]) == [first, second]
    assert third.skip == "needs the internet" and tfunite_commands(third) == [["recipes"]]


@pytest.mark.parametrize(
    "text, message",
    [
        (
            "<!-- doctest-skip: -->\n```python\n```\n",
            r"x\.md:1: doctest-skip without a reason.*Fix: give the reason",
        ),
        (
            "<!-- doctest-setup: nope -->\n```python\n```\n",
            r"x\.md:1: doctest-setup names \['nope'\]; expected setup functions.*Fix: name one",
        ),
        (
            "<!-- doctest-later -->\n```python\n```\n",
            r"x\.md:1: unknown doctest directive 'later'.*Fix: use one of them",
        ),
        (
            "<!-- doctest-continue -->\nsome text\n```python\n```\n",
            r"x\.md:1: doctest directive 'continue' is followed by text.*Fix: put it",
        ),
        ("<!-- doctest-setup:slim_tiny_checkpoint\n-->\n", r"x\.md:1: malformed doctest"),
        (
            "```bash\n```\n<!-- doctest-output -->\n```text\n```\n",
            r"x\.md:3: doctest-output block does not follow a python block.*Fix: put",
        ),
    ],
)
def test_malformed_directives_are_refused(text, message):
    with pytest.raises(MarkdownError, match=message):
        parse_markdown(text, "x.md")


def test_a_failing_block_or_example_fails(tmp_path):
    """The runners report what does not run (so a broken example fails the suite)."""
    with pytest.raises(NameError, match="undefined_name"):
        run_python([Block("x.md", 3, "python", "print(undefined_name)")], tmp_path)
    with pytest.raises(AssertionError, match=r"x\.md:3 exited with 1"):
        run_python([Block("x.md", 3, "python", "import sys\nsys.exit(1)")], tmp_path)
    run_python([Block("x.md", 3, "python", "import sys\nsys.exit(0)")], tmp_path)
    written, _ = run_python([Block("x.md", 3, "python", "open('f.txt', 'w').write('x')")], tmp_path)
    assert (tmp_path / "f.txt").exists() and "__builtins__" in written  # ran in tmp_path
    block = Block("x.md", 3, "python", "print('a', 41 + 1)")
    _, printed = run_python([block], tmp_path)
    check_output(block, Block("x.md", 7, "text", "a  ...\n", output=True), printed)
    with pytest.raises(
        AssertionError,
        match=r"(?s)x\.md:3 printed what its doctest-output block \(x\.md:7\) does not show:"
        r".*Expected:\n    a 43\nGot:\n    a 42.*Fix: update the output block",
    ):
        check_output(block, Block("x.md", 7, "text", "a 43", output=True), printed)

    module = types.ModuleType("fake")
    module.__doc__ = ">>> 1 + 1\n3\n>>> np.zeros(2)\narray([0., 0.])\n>>> tu.__name__\n'tfunite'\n"
    failures, report = run_doctests(doctests(module), tmp_path)
    assert failures == 1 and "Expected:\n    3\nGot:\n    2" in report
    module.__doc__ = ">>> f()  # doctest: +SKIP\n>>> g()  # needs a GPU  # doctest: +SKIP\n"
    (unexplained,) = unexplained_skips(doctests(module))
    assert re.fullmatch(r"fake line \d+: f\(\)  # doctest: \+SKIP", unexplained)


def test_a_block_can_run_in_a_fresh_process(tmp_path):
    code = "import sys\nassert 'pytest' not in sys.modules\nprint('fresh')"
    block = Block("x.md", 1, "python", code, process=True)
    assert run_python([block], tmp_path)[1] == "fresh\n"
    with pytest.raises(AssertionError, match=r"x\.md:1 failed in a fresh process"):
        run_python([dataclasses.replace(block, code="raise SystemExit(3)")], tmp_path)


def test_cheap_commands_run_and_others_are_parsed(tmp_path):
    with sandbox(tmp_path):
        code, out = run_command(["inspect", "CKPT"], tmp_path)
        assert code == 0 and "(2, 3)" in out and "float32" in out
        assert run_command(["diff", "CKPT_A", "CKPT_B"], tmp_path)[0] == 0
        assert run_command(["port", "CKPT", "--recipe", "slim:vgg_16", "--verify"], tmp_path) == (
            0,
            "",
        )
        with pytest.raises(
            AssertionError,
            match=r"`tfunite port \S+ -r slim:vgg_16 --no-such-option` does not parse: "
            r"unrecognized arguments: --no-such-option\. .*Fix: update the README",
        ):
            run_command(["port", "CKPT", "-r", "slim:vgg_16", "--no-such-option"], tmp_path)
