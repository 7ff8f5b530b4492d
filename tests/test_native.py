"""interp.native: a C++ file of ATen operators built once into the cache and loaded; a
machine where it cannot be built gets False and the reason, never a half-built library."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest
import torch

from interp import native

SOURCE = """
#include <ATen/core/Tensor.h>
#include <torch/library.h>
namespace {
at::Tensor plus_one(const at::Tensor& x) { return x.add(1); }
}
TORCH_LIBRARY(NAMESPACE, m) { m.def("plus_one(Tensor x) -> Tensor", &plus_one); }
"""


@pytest.fixture
def source(tmp_path, monkeypatch) -> tuple[Path, str]:
    """A one-operator C++ file in its own namespace (an operator is registered once per
    process), a fresh cache folder, and load's memo cleared."""
    namespace = f"interp_test_{uuid.uuid4().hex[:8]}"
    path = tmp_path / "src" / "plus.cpp"
    path.parent.mkdir()
    path.write_text(SOURCE.replace("NAMESPACE", namespace))
    monkeypatch.setenv("INTERP_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("INTERP_NATIVE", raising=False)
    native.load.cache_clear()
    yield path, namespace
    native.load.cache_clear()


def test_builds_once_loads_and_keeps_the_library(source, tmp_path):
    path, namespace = source
    assert native.load(path), native.problem(path)
    assert native.problem(path) is None
    op = getattr(torch.ops, namespace).plus_one
    assert torch.equal(op(torch.tensor([1.0, 2.0])), torch.tensor([2.0, 3.0]))
    [library] = (tmp_path / "cache" / "native").glob("*/plus.so")
    folder = library.parent
    assert sorted(p.name for p in folder.iterdir()) == [".lock", "plus.so"]  # no temp left
    assert oct(folder.stat().st_mode & 0o777) == "0o700"
    built = library.stat().st_mtime_ns
    native.load.cache_clear()
    assert native.load(path) and library.stat().st_mtime_ns == built  # the cached one


def test_a_failing_compiler_is_a_reason_and_leaves_nothing(source, tmp_path, monkeypatch):
    path, _ = source
    monkeypatch.setenv("CXX", "false")
    assert not native.load(path)
    assert native.problem(path) == "the compiler failed (no message)"
    leftovers = [p.name for p in (tmp_path / "cache").rglob("*") if p.is_file()]
    assert leftovers == [".lock"]


@pytest.mark.parametrize("setting, reason", [
    ({"CXX": "/no/such/c++"}, "no C++ compiler (/no/such/c++) was found"),
    ({"INTERP_NATIVE": "0"}, "INTERP_NATIVE=0 turns it off"),
])
def test_no_compiler_or_turned_off(source, monkeypatch, setting, reason):
    path, _ = source
    for key, value in setting.items():
        monkeypatch.setenv(key, value)
    assert not native.load(path) and native.problem(path) == reason


def test_a_cache_folder_that_is_a_link_is_not_used(source, tmp_path):
    path, _ = source
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "cache").mkdir()
    os.symlink(elsewhere, tmp_path / "cache" / "native")
    assert not native.load(path)
    assert "not a folder of this user's" in native.problem(path)
    assert list(elsewhere.iterdir()) == []


def test_processes_that_start_together_build_once_and_both_load(source, tmp_path):
    """Two processes loading the same new kernel at once: both load it; one built it
    (the other waited on the lock and found it), and no temporary file is left."""
    import subprocess
    import sys

    path, namespace = source
    log = tmp_path / "compiles.log"
    compiler = tmp_path / "c++"  # the machine's compiler, counting its runs
    compiler.write_text(f'#!/bin/sh\necho run >> "{log}"\nexec c++ "$@"\n')
    compiler.chmod(0o755)
    env = os.environ | {"CXX": str(compiler)}
    code = ("import sys, torch; from interp import native; "
            f"ok = native.load({str(path)!r}); "
            f"print(ok, torch.ops.{namespace}.plus_one(torch.ones(1)).item() if ok else "
            f"native.problem({str(path)!r}))")
    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=env) for _ in range(2)]
    outs = [proc.communicate(timeout=300) for proc in procs]
    assert [out.strip() for out, _ in outs] == ["True 2.0", "True 2.0"], outs
    assert log.read_text() == "run\n"
    folders = list((tmp_path / "cache" / "native").iterdir())
    assert len(folders) == 1
    assert sorted(p.name for p in folders[0].iterdir()) == [".lock", "plus.so"]


def test_a_library_that_is_a_link_is_not_loaded(source, tmp_path):
    """A link planted where the built library goes is refused, not followed."""
    path, _ = source
    assert native.load(path)
    [library] = (tmp_path / "cache" / "native").glob("*/plus.so")
    planted = tmp_path / "planted.so"
    library.rename(planted)
    os.symlink(planted, library)
    native.load.cache_clear()
    assert not native.load(path)
    assert "is not a file of this user's" in native.problem(path)
