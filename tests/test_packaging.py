"""The built wheel and sdist carry the whole package, and an installed wheel works on its own.

Everything is built from a temporary copy of the checkout (git's tracked + untracked-not-ignored
files), so the tests never write build/, dist/ or *.egg-info into the repository. The expected
contents are computed from the source tree at test time: new modules are covered automatically.

The wheel is installed (``--no-deps``) into a fresh venv whose third-party packages come from the
running environment through a ``.pth`` line. A path in a ``.pth`` file is added to ``sys.path``, but
the ``.pth`` files inside it (the editable install's finder among them) are not processed, so
``bertbridge`` itself can only come from the wheel.
"""

from __future__ import annotations

import ast
import configparser
import fnmatch
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import textwrap
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "bertbridge"
# What core must import without (frameworks, SageMaker Debugger, framework-side helpers).
FRAMEWORKS = ("torch", "tensorflow", "tf_keras", "keras", "mxnet", "gluonnlp", "jax", "transformers",
              "onnxruntime", "onnx", "onnxscript", "smdebug", "accelerate")
# Used only when the checkout is not a git work tree (e.g. an unpacked sdist).
_IGNORE_DIRS = {".git", "build", "dist", "outputs", "__pycache__", ".pytest_cache", ".ruff_cache", ".mypy_cache"}
_IGNORE_PATTERNS = (".venv*", "*.egg-info", "*.py[cod]")


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP")}
    env.update(PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INDEX="1", PIP_NO_INPUT="1", PYTHONDONTWRITEBYTECODE="1")
    return env


def _run(cmd, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(c) for c in cmd], check=False, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(map(str, cmd))} exited {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


def _git_files() -> list[str] | None:
    try:
        top = subprocess.run(["git", "rev-parse", "--show-toplevel"], cwd=ROOT, capture_output=True, text=True, check=True)
        if Path(top.stdout.strip()).resolve() != ROOT:
            return None
        out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                             cwd=ROOT, capture_output=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return [f for f in out.stdout.decode().split("\0") if f]


def _source_files() -> list[str]:
    """Repository-relative paths of the files a clean checkout would have (deleted files dropped)."""
    names = _git_files()
    if names is None:
        names = []
        for dirpath, dirnames, filenames in os.walk(ROOT):
            dirnames[:] = [d for d in dirnames
                           if d not in _IGNORE_DIRS and not any(fnmatch.fnmatch(d, p) for p in _IGNORE_PATTERNS)]
            rel = Path(dirpath).relative_to(ROOT)
            names += [(rel / f).as_posix() for f in filenames if not any(fnmatch.fnmatch(f, p) for p in _IGNORE_PATTERNS)]
    return sorted(n for n in names if (ROOT / n).is_file() and not (ROOT / n).is_symlink())


def _copy_repo(dest: Path) -> Path:
    for name in _source_files():
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, dest / name)
    return dest


def _source_py() -> set[str]:
    """Every ``bertbridge/**/*.py`` of the source tree (packages or not)."""
    return {p.relative_to(ROOT).as_posix() for p in (ROOT / PACKAGE).rglob("*.py") if "__pycache__" not in p.parts}


def _source_data() -> set[str]:
    """Non-module files under bertbridge/ that belong to the sources (templates, JSON, ...)."""
    return {n for n in _source_files() if n.startswith(f"{PACKAGE}/") and not n.endswith((".py", ".pyc", ".pyo"))}


def _setup_entry_points() -> dict[str, dict[str, str]]:
    """setup.py's ``entry_points=`` literal, as {group: {name: target}}."""
    for node in ast.walk(ast.parse((ROOT / "setup.py").read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "setup":
            for kw in node.keywords:
                if kw.arg == "entry_points":
                    groups = ast.literal_eval(kw.value)
                    return {g: dict(re.split(r"\s*=\s*", e.strip(), maxsplit=1) for e in entries)
                            for g, entries in groups.items()}
    raise AssertionError("setup.py has no setup(entry_points=...) literal")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    src = _copy_repo(tmp_path_factory.mktemp("wheel-src"))
    out = tmp_path_factory.mktemp("wheel-dist")
    # PEP 517 build through setuptools' backend from this environment: no download, no setup.py call.
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--use-pep517", "-w", out, "."], cwd=src)
    wheels = list(out.glob(f"{PACKAGE}-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


@pytest.fixture(scope="module")
def wheel_names(wheel) -> set[str]:
    with zipfile.ZipFile(wheel) as zf:
        return set(zf.namelist())


@pytest.fixture(scope="module")
def venv(wheel, tmp_path_factory) -> Path:
    """A fresh venv with only the wheel installed, third-party packages visible through a .pth."""
    env_dir = tmp_path_factory.mktemp("venv") / "env"
    _run([sys.executable, "-m", "venv", "--without-pip", env_dir], cwd=env_dir.parent)
    py = env_dir / "bin" / "python"
    # Install before the .pth exists, so pip does not see the editable bertbridge of this environment.
    _run([sys.executable, "-m", "pip", "--python", py, "install", "--no-deps", "--no-index", "--no-compile", wheel],
         cwd=env_dir.parent)
    site = Path(_run([py, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], cwd=env_dir.parent).stdout.strip())
    deps = dict.fromkeys(sysconfig.get_path(k) for k in ("purelib", "platlib"))
    (site / "_deps_from_dev_env.pth").write_text("".join(f"{d}\n" for d in deps), encoding="utf-8")
    return env_dir


@pytest.fixture(scope="module")
def outside(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cwd-outside-repo")


def test_wheel_contains_every_source_file(wheel_names):
    in_wheel = {n for n in wheel_names if n.startswith(f"{PACKAGE}/")}
    missing_py = sorted(_source_py() - in_wheel)
    extra_py = sorted({n for n in in_wheel if n.endswith(".py")} - _source_py())
    assert not missing_py, f"the wheel lacks these modules/scripts (a folder without __init__.py? package_data?): {missing_py}"
    assert not extra_py, f"the wheel has .py files that are not in the source tree: {extra_py}"
    missing_data = sorted(_source_data() - in_wheel)
    assert not missing_data, f"the wheel lacks these data files (add them to package_data): {missing_data}"
    assert f"{PACKAGE}/backends/tensorflow/serving_code/inference.py" in in_wheel  # read via __file__ by the TF export


def test_wheel_entry_points_match_setup(wheel, wheel_names):
    info = [n for n in wheel_names if re.fullmatch(rf"{PACKAGE}-[^/]+\.dist-info/entry_points\.txt", n)]
    assert len(info) == 1, info
    parser = configparser.ConfigParser(delimiters=("=",))
    parser.optionxform = str
    with zipfile.ZipFile(wheel) as zf:
        parser.read_string(zf.read(info[0]).decode())
    in_wheel = {g: dict(parser[g]) for g in parser.sections()}

    assert in_wheel.get("console_scripts", {}).get("bertbridge") == "bertbridge.core.cli:main"
    assert {"pytorch", "tensorflow"} <= set(in_wheel.get("bertbridge.backends", {}))
    for group, entries in _setup_entry_points().items():  # bertbridge.tasks too, once setup.py declares it
        assert in_wheel.get(group) == entries, f"entry point group {group!r}: wheel {in_wheel.get(group)} != setup.py {entries}"
        for name, target in entries.items():
            module = target.split(":")[0].replace(".", "/")
            assert {f"{module}.py", f"{module}/__init__.py"} & wheel_names, f"{group}: {name} -> {target}: module not in the wheel"


def test_installed_wheel_imports_from_the_venv(venv, outside):
    out = _run([venv / "bin" / "python", "-c", textwrap.dedent("""
        import importlib.metadata, json
        import bertbridge, bertbridge.core.api
        dist = importlib.metadata.distribution("bertbridge")
        print(json.dumps({"file": bertbridge.__file__, "api": bertbridge.core.api.__file__,
                          "dist": str(dist.locate_file("")), "version": dist.version}))
        """)], cwd=outside)
    got = json.loads(out.stdout.strip().splitlines()[-1])
    for key in ("file", "api", "dist"):
        path = Path(got[key]).resolve()
        assert path.is_relative_to(venv.resolve()), f"{key}: {path} is not inside the wheel's venv {venv}"
        assert not path.is_relative_to(ROOT), f"{key}: {path} comes from the checkout"


def test_installed_console_script_lists_backends(venv, outside):
    out = _run([venv / "bin" / "bertbridge", "backends"], cwd=outside).stdout
    listed = {m.group(1) for m in re.finditer(r"^(\w+)\s", out, flags=re.MULTILINE)}
    assert {"pytorch", "tensorflow"} <= listed, out


def test_every_core_module_imports_without_frameworks(venv, outside):
    """Import every bertbridge.core module from the wheel with the frameworks hidden (as if not installed)."""
    code = textwrap.dedent(f"""
        import importlib, importlib.machinery, json, pkgutil, sys, traceback
        BLOCKED = set({list(FRAMEWORKS)!r})

        class Hidden:
            def __init__(self, inner):
                self.inner = inner
            def find_spec(self, name, path=None, target=None):
                if name.partition(".")[0] in BLOCKED:
                    return None
                return self.inner.find_spec(name, path, target)
            def __getattr__(self, attr):
                return getattr(self.inner, attr)

        sys.meta_path[:] = [Hidden(f) if f is importlib.machinery.PathFinder else f for f in sys.meta_path]
        failed = {{}}
        def onerror(name):
            failed[name] = traceback.format_exc().strip().splitlines()[-1]
        import bertbridge.core
        names = ["bertbridge.core"] + [m.name for m in pkgutil.walk_packages(bertbridge.core.__path__, "bertbridge.core.", onerror=onerror)]
        for name in names:
            try:
                importlib.import_module(name)
            except BaseException:
                failed[name] = traceback.format_exc().strip().splitlines()[-1]
        outside = sorted(n for n, m in sys.modules.items() if n.startswith("bertbridge") and m is not None
                         and getattr(m, "__file__", None) and not m.__file__.startswith(sys.prefix))
        leaked = sorted(n for n in sys.modules if n.partition(".")[0] in BLOCKED)
        print(json.dumps({{"names": names, "failed": failed, "outside": outside, "leaked": leaked}}))
        """)
    got = json.loads(_run([venv / "bin" / "python", "-c", code], cwd=outside).stdout.strip().splitlines()[-1])
    assert got["failed"] == {}, f"core modules that fail to import without frameworks: {got['failed']}"
    expected = {p[: -len(".py")].removesuffix("/__init__").replace("/", ".")
                for p in _source_py() if p.startswith(f"{PACKAGE}/core/")}
    assert set(got["names"]) == expected, f"walked {sorted(set(got['names']) ^ expected)} differ from the source tree"
    assert got["outside"] == [], f"modules imported from outside the wheel's venv: {got['outside']}"
    assert got["leaked"] == []


def test_sdist_contains_the_sources(tmp_path_factory):
    if importlib.util.find_spec("build") is None:
        pytest.skip("the 'build' package is not installed (pip install -e '.[dev]')")
    src = _copy_repo(tmp_path_factory.mktemp("sdist-src"))
    out = tmp_path_factory.mktemp("sdist-dist")
    _run([sys.executable, "-m", "build", "--sdist", "--no-isolation", "--outdir", out, "."], cwd=src)
    sdists = list(out.glob(f"{PACKAGE}-*.tar.gz"))
    assert len(sdists) == 1, sdists
    with tarfile.open(sdists[0]) as tf:
        names = {m.name.split("/", 1)[1] for m in tf.getmembers() if m.isfile() and "/" in m.name}
    required = _source_py() | _source_data() | {"setup.py", "setup.cfg", "README.md"}
    required |= {n for n in _source_files() if "/" not in n and re.match(r"(LICEN[CS]E|COPYING|NOTICE)", n)}
    assert not sorted(required - names), f"the sdist lacks {sorted(required - names)}"
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
