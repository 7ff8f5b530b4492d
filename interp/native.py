"""C++ kernels, compiled on first use and cached: a source file of ATen operators
(``TORCH_LIBRARY``) next to the Python module it speeds up, built with the machine's C++
compiler against the installed torch, loaded with :func:`torch.ops.load_library`.

Each kernel has a Python reference that gives the same bits, the fallback wherever the
kernel cannot be built (no compiler, not Linux, ``INTERP_NATIVE=0``); :func:`load` says
whether it could, :func:`problem` why not. The built library is kept in
``$INTERP_CACHE_DIR`` (default ``$XDG_CACHE_HOME/interp`` or ``~/.cache/interp``), under
``native/<key>/`` with the key a hash of the source, the torch version, the CPU and the
compile command, so a new source, torch or CPU builds afresh. A build writes to a
temporary file in that folder and renames it into place under a lock, so processes that
start together build once and never load a half-written library; a folder or a library
that is a link, or not the user's own, is never used.
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import os
import platform
import shlex
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

#: Seconds a build may take before it is given up (about 7 s for the MLP's kernel here).
BUILD_TIMEOUT = 300

_PROBLEMS: dict[str, str] = {}


def cache_dir() -> Path:
    """The folder that keeps built kernels (not created here)."""
    if os.environ.get("INTERP_CACHE_DIR"):
        return Path(os.environ["INTERP_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "interp"


def turned_off() -> bool:
    """Whether ``INTERP_NATIVE=0`` turns the C++ kernels off (the Python references run)."""
    return os.environ.get("INTERP_NATIVE", "1") == "0"


def _command(source: Path, out: Path) -> list[str]:
    """The compile command of ``source`` into the shared library ``out``."""
    root = Path(torch.__file__).parent
    torch_lib, include = root / "lib", root / "include"
    abi = int(torch._C._GLIBCXX_USE_CXX11_ABI)
    # -ffp-contract=off: no fused multiply-adds, so every sum rounds as the Python
    # reference's separate products and sums do (bit-identical results). -march=native
    # on x86-64 (vector conversions to bfloat16 where the CPU has them): the library
    # is built for this CPU, whose flags are part of the cache key.
    native = ["-march=native"] if platform.machine() in ("x86_64", "AMD64") else []
    return [*_compiler(), "-O3", *native, "-std=c++20", "-fPIC",
            "-shared", "-fopenmp", "-ffp-contract=off", "-w",
            f"-D_GLIBCXX_USE_CXX11_ABI={abi}",
            f"-I{include}", f"-I{include / 'torch' / 'csrc' / 'api' / 'include'}", str(source),
            f"-L{torch_lib}", "-lc10", "-ltorch_cpu", f"-Wl,-rpath,{torch_lib}",
            "-o", str(out)]


def _compiler() -> list[str]:
    """The C++ compiler's command: ``$CXX`` (split as a shell would), else ``c++``."""
    return shlex.split(os.environ.get("CXX", "")) or ["c++"]


def _cpu() -> str:
    """The CPU's model and flags (the first processor's, from /proc/cpuinfo)."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return platform.machine()
    keep = [line for line in lines if line.startswith(("model name", "flags", "Features"))]
    return "\n".join(keep[:2])


def _own_folder(path: Path) -> None:
    """Create ``path`` (mode 700) or check that it is a real folder of this user's."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = os.lstat(path)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
        raise OSError(f"{path} is not a folder of this user's (a link or another owner's)")


def _own_file(path: Path) -> bool:
    """Whether ``path`` is a regular file of this user's (False: there is none); an
    OSError where it is something else (a link, another owner's)."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return False
    if not stat.S_ISREG(info.st_mode) or info.st_uid != os.getuid():
        raise OSError(f"{path} is not a file of this user's (a link or another owner's)")
    return True


def _build(source: Path, folder: Path, library: Path) -> None:
    """Compile ``source`` into ``library`` in ``folder`` (this user's) unless another
    process already has."""
    lock = os.open(folder / ".lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _own_file(library):
            return
        fd, tmp = tempfile.mkstemp(suffix=".so", dir=folder)
        os.close(fd)
        try:
            done = subprocess.run(_command(source, Path(tmp)), capture_output=True,
                                  text=True, timeout=BUILD_TIMEOUT)
            if done.returncode != 0:
                last = (done.stderr.strip().splitlines() or ["no message"])[-1]
                raise OSError(f"the compiler failed ({last})")
            os.replace(tmp, library)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    finally:
        os.close(lock)


@functools.cache
def load(source: str | os.PathLike) -> bool:
    """Build (once, cached) and load the operators of the C++ file ``source``; False,
    with the reason in :func:`problem`, where they cannot be."""
    source = Path(source)
    try:
        if turned_off():
            raise OSError("INTERP_NATIVE=0 turns it off")
        if not sys.platform.startswith("linux"):
            raise OSError(f"it is built on Linux only, this is {sys.platform}")
        compiler = _compiler()[0]
        if shutil.which(compiler) is None:
            raise OSError(f"no C++ compiler ({compiler}) was found")
        text = source.read_bytes()
        key = hashlib.sha256(text + torch.__version__.encode() + _cpu().encode()
                             + " ".join(_command(Path("src"), Path("out"))).encode())
        root = cache_dir()
        folder = root / "native" / key.hexdigest()[:16]
        for level in (root, folder.parent, folder):  # never load a planted file
            _own_folder(level)
        library = folder / f"{source.stem}.so"
        if not _own_file(library):
            _build(source, folder, library)
        torch.ops.load_library(str(library))
        return True
    except (OSError, RuntimeError, subprocess.SubprocessError) as e:
        _PROBLEMS[str(source)] = str(e)
        return False


def problem(source: str | os.PathLike) -> str | None:
    """Why :func:`load` could not load ``source`` (None: it could, or was not asked)."""
    return _PROBLEMS.get(str(Path(source)))
