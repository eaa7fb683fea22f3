"""Thread counts come from the cores this process may use and the user's overrides, in that order of trust."""

import os
import subprocess
import sys

import pytest

from models.threads import (THREADS_ENVIRONMENT_VARIABLE, available_cores, blas_threads, blas_threads_for,
                            cgroup_cpu_quota, resolve_threads, sleep_while_waiting)


def _cgroup_v1(tmp_path, quota, period, path="docker/abc"):
    proc = tmp_path / "cgroup"
    proc.write_text(f"4:memory:/{path}\n3:cpu,cpuacct:/{path}\n0::/\n")
    folder = tmp_path / "fs" / "cpu" / path
    folder.mkdir(parents=True)
    (folder / "cpu.cfs_quota_us").write_text(f"{quota}\n")
    (folder / "cpu.cfs_period_us").write_text(f"{period}\n")
    return dict(cgroup_root=tmp_path / "fs", proc_cgroup=proc)


def test_a_cgroup_v1_quota_caps_the_cores(tmp_path):
    where = _cgroup_v1(tmp_path, 150_000, 100_000)
    assert cgroup_cpu_quota(**where) == pytest.approx(1.5)
    assert available_cores(**where) == 1  # 1.5 CPUs of quota: one thread, never two half-starved ones


def test_an_unlimited_cgroup_leaves_the_affinity(tmp_path):
    where = _cgroup_v1(tmp_path, -1, 100_000)
    assert cgroup_cpu_quota(**where) is None
    assert available_cores(**where) == len(os.sched_getaffinity(0))


def test_cgroup_v2_takes_the_tightest_quota_up_the_tree(tmp_path):
    proc = tmp_path / "cgroup"
    proc.write_text("0::/outer/inner\n")
    root = tmp_path / "fs"
    (root / "outer" / "inner").mkdir(parents=True)
    (root / "cpu.max").write_text("max 100000\n")
    (root / "outer" / "cpu.max").write_text("300000 100000\n")
    (root / "outer" / "inner" / "cpu.max").write_text("max 100000\n")
    assert cgroup_cpu_quota(cgroup_root=root, proc_cgroup=proc) == pytest.approx(3.0)


def test_overrides_in_order_flag_environment_config():
    environ = {THREADS_ENVIRONMENT_VARIABLE: "3"}
    assert resolve_threads(5, config_threads=2, environ=environ) == 5
    assert resolve_threads(None, config_threads=2, environ=environ) == 3
    assert resolve_threads(None, config_threads=2, environ={}) == 2
    assert resolve_threads(None, environ={}) == available_cores()
    with pytest.raises(ValueError, match="LEAD_SCORING_THREADS must be a positive integer. Got 'two'"):
        resolve_threads(None, environ={THREADS_ENVIRONMENT_VARIABLE: "two"})
    with pytest.raises(ValueError, match="--threads must be a positive integer. Got 0"):
        resolve_threads(0, environ={})


def test_small_fits_get_one_blas_thread():
    import numpy  # noqa: F401  (loads OpenBLAS, the pool being limited)
    from threadpoolctl import threadpool_info

    assert blas_threads_for(10_000, 100, 4) == 1
    assert blas_threads_for(10_000_000, 100, 4) == 4
    with blas_threads(1):
        assert {pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"} == {1}


def test_sleep_while_waiting_sets_the_policy_unless_the_user_did():
    environ = {}
    assert sleep_while_waiting(environ) is True and environ == {"OMP_WAIT_POLICY": "PASSIVE"}
    chosen = {"OMP_WAIT_POLICY": "ACTIVE"}
    assert sleep_while_waiting(chosen) is False and chosen == {"OMP_WAIT_POLICY": "ACTIVE"}


def test_training_cli_sets_lightgbms_threads_from_the_environment(tmp_path):
    """The variable reaches the fitted LightGBM (in a fresh process, as a user runs it)."""
    code = ("import os; os.environ['LEAD_SCORING_THREADS'] = '1'\n"
            "from features.spec import FeatureSpec\nfrom models.estimators import make_lightgbm\n"
            "print(make_lightgbm(FeatureSpec())[-1].n_jobs, os.environ.get('OMP_WAIT_POLICY'))\n"
            "from models.threads import sleep_while_waiting; sleep_while_waiting(); "
            "print(os.environ['OMP_WAIT_POLICY'])")
    env = {key: value for key, value in os.environ.items() if key != "OMP_WAIT_POLICY"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True).stdout
    assert out.split() == ["1", "None", "PASSIVE"]


def test_malloc_arenas_are_limited_on_glibc_unless_the_user_chose():
    """In a fresh process: glibc accepts the limit; a user's MALLOC_ARENA_MAX stands; zero is refused."""
    import platform

    from models.threads import limit_malloc_arenas

    code = "from models.threads import limit_malloc_arenas; print(limit_malloc_arenas(2))"
    env = {key: value for key, value in os.environ.items() if key != "MALLOC_ARENA_MAX"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True).stdout
    assert out.strip() == str(platform.system() == "Linux" and platform.libc_ver()[0] == "glibc")
    chosen = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                            env={**env, "MALLOC_ARENA_MAX": "4"}).stdout
    assert chosen.strip() == "False"
    with pytest.raises(ValueError, match="'count' parameter of limit_malloc_arenas must be positive"):
        limit_malloc_arenas(0)


def test_arrow_allocates_with_malloc_even_in_its_parquet_reader_unless_the_user_chose():
    """In a fresh process, called before pyarrow loads: Parquet reads leave Arrow's mimalloc pool untouched."""
    code = """
import io, sys
from models.threads import arrow_system_allocator
chosen = arrow_system_allocator()
import pandas as pd, pyarrow as pa, pyarrow.parquet as pq
buffer = io.BytesIO()
pd.DataFrame({"a": range(50_000), "b": [f"x{i}" for i in range(50_000)]}).to_parquet(buffer)
buffer.seek(0)
for batch in pq.ParquetFile(buffer).iter_batches(batch_size=5_000):
    batch.to_pandas()
print(chosen, pa.mimalloc_memory_pool().max_memory(), pa.system_memory_pool().max_memory())
"""
    env = {key: value for key, value in os.environ.items() if key != "ARROW_DEFAULT_MEMORY_POOL"}
    chosen, mimalloc, system = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                              env=env, check=True).stdout.split()
    assert chosen == "True" and int(mimalloc) == 0 and int(system) > 0
    chosen, mimalloc, system = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                                              env={**env, "ARROW_DEFAULT_MEMORY_POOL": "mimalloc"}).stdout.split()
    assert chosen == "False" and int(mimalloc) > 0
