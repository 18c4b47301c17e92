"""`pip install .` of the source tree, as the README's Python quick start
says, in a fresh venv: the package it installs works outside the source tree
and holds the Python package only.

Slow (a full meson build of the extension by meson-python): meson runs this
file as its own test with a long timeout. Offline (--no-index,
--no-build-isolation: the build uses Debian's meson-python). Skipped, with
the reason, only if this Python has no venv or pip.
"""

from __future__ import annotations

import importlib.util
import os
import pathlib
import re
import shutil
import subprocess
import sys

import pytest

SOURCE_ROOT = pathlib.Path(
    os.environ.get("LILCACHE_SOURCE_ROOT", pathlib.Path(__file__).resolve().parents[2]))


def venv_env(**extra: str) -> dict[str, str]:
    """The environment of the venv's processes: without PYTHONPATH, which
    points meson's tests at the build tree's lilcache."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env.update(extra)
    return env


def copy_source(destination: pathlib.Path) -> pathlib.Path:
    """A copy of the source tree without build directories, so that the
    build writes nothing into the real one (meson-python writes
    .mesonpy-* files into the tree it builds)."""
    build_root = os.environ.get("LILCACHE_BUILD_ROOT")
    skip = {pathlib.Path(build_root).resolve()} if build_root else set()

    def ignore(directory: str, names: list[str]) -> set[str]:
        top = pathlib.Path(directory).resolve() == SOURCE_ROOT.resolve()
        return {n for n in names
                if n in (".git", "__pycache__")
                or (top and n.startswith((".mesonpy", "build"))
                    and pathlib.Path(directory, n).is_dir())
                or pathlib.Path(directory, n).resolve() in skip}

    shutil.copytree(SOURCE_ROOT, destination, ignore=ignore, symlinks=True)
    return destination


def run(args: list[str], cwd: pathlib.Path, timeout: float,
        **env: str) -> subprocess.CompletedProcess[str]:
    """Runs a command; asserts it succeeded, showing its output if not."""
    process = subprocess.run(args, cwd=cwd, env=venv_env(**env), capture_output=True,
                             text=True, timeout=timeout)
    assert process.returncode == 0, (
        f"{' '.join(args)} exited {process.returncode}\n"
        f"stdout:\n{process.stdout[-8000:]}\nstderr:\n{process.stderr[-8000:]}")
    return process


def test_pip_install_makes_a_venv_package_that_works_outside_the_source_tree(
        tmp_path: pathlib.Path) -> None:
    if importlib.util.find_spec("venv") is None or importlib.util.find_spec("ensurepip") is None:
        pytest.skip("this Python has no venv module with ensurepip (Debian: python3-venv)")
    if importlib.util.find_spec("pip") is None:
        pytest.skip("this Python has no pip (Debian: python3-pip)")

    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], tmp_path, 300)
    python = venv / "bin" / "python"

    source = copy_source(tmp_path / "source")
    # What the README says, plus two settings for the test's time: -O0 (the
    # packaging is what is tested, not the optimizer) and a build directory
    # beside the source, so that ccache (which meson uses when installed)
    # sees the same relative paths in every run (CCACHE_BASEDIR).
    run([str(python), "-m", "pip", "install", "--no-build-isolation", "--no-index",
         "--config-settings=setup-args=-Doptimization=0",
         f"--config-settings=builddir={tmp_path / 'build'}",
         str(source)], tmp_path, 3600, CCACHE_BASEDIR=str(tmp_path))
    shutil.rmtree(source)  # nothing may refer to the tree it was built from

    elsewhere = tmp_path / "elsewhere"
    root = tmp_path / "root"
    elsewhere.mkdir()
    root.mkdir(mode=0o700)
    script = (
        "import importlib.metadata, lilcache\n"
        "cache = lilcache.Cache('installed')\n"
        "cache.set('a', 'b')\n"
        "cache.incr('n', 41, default=1)\n"
        "print(lilcache.__file__)\n"
        "print(repr(cache.get('a')), lilcache.incr('n', 1, default=0), repr(cache.get('n')))\n"
        "print(lilcache.__version__, importlib.metadata.version('lilcache'))\n")
    out = run([str(python), "-c", script], elsewhere, 120,
              LILCACHE_ROOT=str(root)).stdout.splitlines()

    package = pathlib.Path(out[0]).parent
    assert package.is_relative_to(venv), f"lilcache imported from {package}, not the venv"
    assert out[1] == "'b' 1 42", "a set/get round trip on the cache under LILCACHE_ROOT"
    project_version = re.search(r"version\s*:\s*'([^']+)'",
                                (SOURCE_ROOT / "meson.build").read_text())
    assert project_version
    assert out[2] == f"{project_version.group(1)} {project_version.group(1)}"
    assert (root / "installed.meta").exists()
    assert (package / "__init__.pyi").exists() and (package / "py.typed").exists()
    assert list(package.glob("_lilcache*.so")), "the extension module is in the package"

    # The wheel held the Python package only: no C++ library, headers,
    # pkg-config files, tools or man pages (-Dinstall_cpp=false).
    dist_info = list(package.parent.glob("lilcache-*.dist-info"))
    assert len(dist_info) == 1
    record = (dist_info[0] / "RECORD").read_text().splitlines()
    installed = {line.split(",")[0] for line in record}
    outside = {path for path in installed
               if not path.startswith(("lilcache/", dist_info[0].name + "/"))}
    assert not outside, f"installed outside the package: {sorted(outside)}"
