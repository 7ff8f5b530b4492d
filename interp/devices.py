"""The device a command computes on: its name checked, its free memory, and the
allocator tuning that training relies on."""

from __future__ import annotations

import ctypes
import os
import sys

import torch


def resolve_device(device: str) -> torch.device:
    """The torch device for ``device`` ('cpu', 'cuda', 'cuda:1', ...), checked to exist."""
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise ValueError(f"device must be 'cpu' or 'cuda[:N]', got {device!r}.") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} was requested but CUDA is not available here.")
    if dev.type not in ("cpu", "cuda") or dev.type == "cpu" and dev.index not in (None, 0):
        raise ValueError(f"device must be 'cpu' or 'cuda[:N]', got {device!r}.")
    if dev.type == "cuda" and (dev.index or 0) >= torch.cuda.device_count():
        raise ValueError(f"device {device!r} must name one of the {torch.cuda.device_count()} "
                         "CUDA devices here (cuda:0 to cuda:"
                         f"{torch.cuda.device_count() - 1}).")
    return dev


def available_memory(device: torch.device) -> int | None:
    """Free bytes of ``device``: the GPU's free memory, or the host's MemAvailable
    (Linux); None where it cannot be told."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    free = [x for x in (_proc_kib("/proc/meminfo", "MemAvailable:"), _address_space_left())
            if x is not None]
    return min(free) if free else None


def _proc_kib(path: str, key: str) -> int | None:
    """The bytes a ``/proc`` file's line ``key N kB`` gives (Linux), else None."""
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(key):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _address_space_left() -> int | None:
    """What this process's address-space limit (``ulimit -v``, RLIMIT_AS) leaves it, or
    None when unlimited or unknown: an allocation past it fails however much is free."""
    try:
        import resource
    except ImportError:  # pragma: no cover - not on Windows
        return None
    soft = resource.getrlimit(resource.RLIMIT_AS)[0]
    used = _proc_kib("/proc/self/status", "VmSize:")
    if soft == resource.RLIM_INFINITY or used is None:
        return None
    return max(0, soft - used)


_ALLOCATOR_TUNED = False


def tune_allocator() -> bool:
    """Keep freed memory in the process for reuse (glibc on Linux; elsewhere a no-op).

    A training step allocates several (n_train, N) tensors (9.4 MB each at the paper's
    setting, 75 MB for a stack of 8 models). glibc hands allocations that large to
    ``mmap`` and returns them at ``free``, so every step page-faults its memory in
    afresh: about a fifth of a step, and more than half of a batched one. Raising the
    mmap and trim thresholds to 1 GiB serves them from the heap and keeps it. Called by
    the trainer once per process; ``INTERP_MALLOC_TUNING=0`` opts out. Returns whether
    the thresholds were set.
    """
    global _ALLOCATOR_TUNED
    if _ALLOCATOR_TUNED or os.environ.get("INTERP_MALLOC_TUNING", "1") == "0":
        return _ALLOCATOR_TUNED
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL("libc.so.6")
            m_trim_threshold, m_mmap_threshold = -1, -3  # glibc's mallopt parameters
            _ALLOCATOR_TUNED = bool(libc.mallopt(m_mmap_threshold, 1 << 30)
                                    and libc.mallopt(m_trim_threshold, 1 << 30))
        except (OSError, AttributeError):  # not glibc (e.g. musl)
            pass
    return _ALLOCATOR_TUNED
