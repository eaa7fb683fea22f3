"""Threads sized to the cores this process may use: affinity and container quota, not the machine's count.

LightGBM's OpenMP threads and OpenBLAS's threads each default to every core of the machine. On a
shared machine that oversubscribes the cores, and OpenMP threads spin at their barriers while
another process holds the core they wait for: a 1.5 s fit took 44.7 s beside two busy processes.
Here the count comes from what the process may actually run on, LightGBM gets it, BLAS gets one
thread for the small fits that dominate here (a logistic fit took 1.7 s with 2 BLAS threads and
0.14-0.21 s with 1), and OpenMP threads sleep instead of spinning while they wait.

The count can be overridden: ``--threads`` on the command lines, then the environment variable
``LEAD_SCORING_THREADS``, then ``[runtime] threads`` in the project config.
"""

from __future__ import annotations

import math
import os
import sys
from contextlib import contextmanager
from pathlib import Path

THREADS_ENVIRONMENT_VARIABLE = "LEAD_SCORING_THREADS"
#: Fits with fewer matrix cells than this run BLAS on one thread: the threads' start-up and
#: synchronisation cost more than they save (measured on the logistic baseline, see module doc).
SMALL_FIT_CELLS = 50_000_000


def available_cores(*, cgroup_root="/sys/fs/cgroup", proc_cgroup="/proc/self/cgroup") -> int:
    """Cores this process may use: its CPU affinity, capped by a cgroup CPU quota when there is one.

    A container limited to 1.5 CPUs on a 16-core host gets 1 (quotas round down, never below 1).
    """
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        cores = os.cpu_count() or 1
    quota = cgroup_cpu_quota(cgroup_root=cgroup_root, proc_cgroup=proc_cgroup)
    if quota is not None:
        cores = min(cores, max(1, math.floor(quota)))
    return max(1, cores)


def cgroup_cpu_quota(*, cgroup_root="/sys/fs/cgroup", proc_cgroup="/proc/self/cgroup") -> float | None:
    """CPUs allowed by the cgroup quota (v2 ``cpu.max`` or v1 ``cpu.cfs_quota_us``), None when unlimited.

    The process's own cgroup and every parent up to the root are read; the tightest quota wins.
    """
    root = Path(cgroup_root)
    v2, v1 = "/", "/"
    try:
        for line in Path(proc_cgroup).read_text().splitlines():
            hierarchy, controllers, path = line.split(":", 2)
            if hierarchy == "0" and controllers == "":
                v2 = path or "/"
            elif "cpu" in controllers.split(","):
                v1 = path or "/"
    except OSError:
        pass
    quotas = []
    for folder in _self_and_parents(root, v2):
        quotas.append(_quota_v2(folder / "cpu.max"))
    for base in (root / "cpu", root / "cpu,cpuacct"):
        for folder in _self_and_parents(base, v1):
            quotas.append(_quota_v1(folder / "cpu.cfs_quota_us", folder / "cpu.cfs_period_us"))
    quotas = [quota for quota in quotas if quota is not None]
    return min(quotas) if quotas else None


def resolve_threads(requested=None, *, config_threads=None, environ=None) -> int:
    """The thread count to use: ``requested`` (``--threads``), else the environment variable, else the
    config's ``[runtime] threads``, else ``available_cores()``. Any of them must be a positive integer.
    """
    environ = os.environ if environ is None else environ
    for value, source in ((requested, "--threads"), (environ.get(THREADS_ENVIRONMENT_VARIABLE) or None,
                                                     THREADS_ENVIRONMENT_VARIABLE),
                          (config_threads, "[runtime] threads in the config")):
        if value is None:
            continue
        try:
            threads = int(value)
        except (TypeError, ValueError):
            threads = 0
        if threads <= 0 or str(value).strip() not in (str(threads), f"{threads}.0"):
            raise ValueError(f"The thread count from {source} must be a positive integer. Got {value!r} instead.")
        return threads
    return available_cores()


def blas_threads_for(n_rows: int, n_columns: int, threads: int) -> int:
    """BLAS threads for a fit on ``n_rows x n_columns``: one for small fits, else ``threads``."""
    return 1 if n_rows * n_columns < SMALL_FIT_CELLS else threads


@contextmanager
def blas_threads(limit: int):
    """Run the block with at most ``limit`` BLAS threads (threadpoolctl, a scikit-learn dependency)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=int(limit), user_api="blas"):
        yield


def sleep_while_waiting(environ=None) -> bool:
    """Make OpenMP threads sleep instead of spin while they wait (``OMP_WAIT_POLICY=PASSIVE``).

    Each OpenMP runtime reads the variable once, when it is loaded (LightGBM links its own
    libgomp, scikit-learn another): this must run before ``import lightgbm``, which the command
    lines do first thing. Measured here with two threads on a loaded 2-core machine, a LightGBM
    fit took 48.7 s spinning and 6.3 s passive. Returns False when the user set the variable
    already (their choice stands).
    """
    environ = os.environ if environ is None else environ
    if "OMP_WAIT_POLICY" in environ:
        return False
    environ["OMP_WAIT_POLICY"] = "PASSIVE"
    return True


def limit_malloc_arenas(count: int = 2) -> bool:
    """Let glibc's malloc keep at most ``count`` arenas (``MALLOC_ARENA_MAX``), from inside the process.

    Every thread that allocates (LightGBM's and BLAS' workers, DuckDB's readers) otherwise gets an
    arena of its own, each keeping what it freed: batch scoring's memory then creeps up chunk by
    chunk instead of staying at one chunk's. Measured on 1,000,000 leads without reasons: peak
    0.81 GB with the default, 0.76 GB with 2 arenas. Returns False where there is no glibc (macOS,
    musl) or the user set ``MALLOC_ARENA_MAX`` (their choice stands).
    """
    if count <= 0:
        raise ValueError(f"The 'count' parameter of limit_malloc_arenas must be positive. Got {count!r}.")
    if "MALLOC_ARENA_MAX" in os.environ:
        return False
    import ctypes
    import platform

    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(_M_ARENA_MAX, count))


_M_ARENA_MAX = -8  # glibc's malloc.h


def return_free_memory() -> None:
    """Hand memory the process has freed back to the system (glibc's ``malloc_trim``; elsewhere nothing).

    glibc keeps freed memory in its heaps for later allocations; between two chunks of batch
    scoring that kept RSS creeping up chunk by chunk (0.33 GB after the first of 25 chunks of
    40,000 leads, 0.41 GB after later ones) and stays at the first chunk's level once trimmed.
    Costs milliseconds: call it between chunks, not inside loops.
    """
    import ctypes
    import platform

    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):
        return


def arrow_system_allocator() -> bool:
    """Let Arrow allocate with the C library's malloc, like numpy and pandas, not its own mimalloc pool.

    mimalloc keeps what Arrow frees (Parquet reads and writes, DuckDB's result batches) for Arrow
    alone, so memory freed by one chunk's Parquet work is not reused by the next chunk's numpy
    arrays. Arrow's C++ side (the Parquet reader and writer) picks its pool from
    ``ARROW_DEFAULT_MEMORY_POOL`` once, when pyarrow loads, so call this before anything imports
    pyarrow (pandas does); if pyarrow is loaded already, only its Python-level pool changes.
    Measured on scoring 100,000 leads without reasons in chunks of 40,000: peak 0.47 GB with
    mimalloc, 0.44 GB with the system allocator everywhere, no slower. Returns False when the
    user chose a pool (their choice stands).
    """
    if "ARROW_DEFAULT_MEMORY_POOL" in os.environ:
        return False
    os.environ["ARROW_DEFAULT_MEMORY_POOL"] = "system"
    if "pyarrow" in sys.modules:
        import pyarrow as pa

        pa.set_memory_pool(pa.system_memory_pool())
    return True


def _self_and_parents(base: Path, path: str):
    parts = [part for part in path.split("/") if part]
    for depth in range(len(parts), -1, -1):
        yield base.joinpath(*parts[:depth])


def _quota_v2(file: Path) -> float | None:
    try:
        quota, period = file.read_text().split()[:2]
    except (OSError, ValueError):
        return None
    if quota == "max" or float(period) <= 0:
        return None
    return float(quota) / float(period)


def _quota_v1(quota_file: Path, period_file: Path) -> float | None:
    try:
        quota, period = int(quota_file.read_text()), int(period_file.read_text())
    except (OSError, ValueError):
        return None
    if quota <= 0 or period <= 0:
        return None
    return quota / period
