"""The course on Keras's other backends: JAX and PyTorch, each in a fresh process.

Keras picks its backend once per process, so each check here starts Python with
KERAS_BACKEND set.  Where JAX or PyTorch is not installed the check is skipped and says
what to install (CPU builds are enough: ``pip install 'jax[cpu]'``, ``pip install torch``).
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench import gpu as bench_gpu

ROOT = Path(__file__).resolve().parent.parent
OTHER_BACKENDS = ["jax", "torch"]
INSTALL = {"jax": "pip install 'jax[cpu]'", "torch": "pip install torch"}


def _installed(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


def _needs(name: str):
    return pytest.mark.skipif(
        not _installed(name), reason=f"{name} is not installed here; `{INSTALL[name]}` runs this check"
    )


def _run(args, backend, timeout=900, **env):
    full_env = dict(
        os.environ,
        KERAS_BACKEND=backend,
        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        **env,
    )
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=full_env, capture_output=True, text=True, timeout=timeout
    )


@pytest.mark.parametrize("backend", OTHER_BACKENDS)
def test_report_names_the_chosen_backend(backend):
    """KERAS_BACKEND=jax once made report() say that TensorFlow cannot be imported."""
    done = _run(
        [
            "-c",
            "import sys, dlcourse; dlcourse.device.report(); print('tensorflow imported:', 'tensorflow' in sys.modules)",
        ],
        backend,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    label = {"jax": "JAX", "torch": "PyTorch"}[backend]
    if _installed(backend):
        assert f"(backend: {backend}, KERAS_BACKEND={backend})" in out and "GPU" in out
        assert f"{label:<12s}cannot be imported" not in out
    else:
        assert f"{label:<12s}cannot be imported" in out and f"KERAS_BACKEND={backend}" in out
    assert not [line for line in out.splitlines() if line.startswith("TensorFlow")], (
        f"the report on {backend} reports on TensorFlow:\n{out}"
    )
    assert "tensorflow imported: False" in out


@pytest.mark.slow  # trains lesson 06's recipes in a second Python: out of `make test-fast`
@pytest.mark.parametrize("backend", [pytest.param(b, marks=_needs(b)) for b in OTHER_BACKENDS])
def test_device_and_lesson06_tests_pass_on(backend):
    """tests/test_device.py and tests/test_training.py (lesson 06's model and both recipes) on this backend."""
    done = _run(
        [
            "-m",
            "pytest",
            "tests/test_device.py",
            "tests/test_training.py",
            "-q",
            "-p",
            "no:cacheprovider",
            "-o",
            "addopts=",
            "-W",
            "ignore::DeprecationWarning",
        ],
        backend,
    )
    summary = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.stderr[-2000:]
    assert done.returncode == 0, f"on KERAS_BACKEND={backend}: {summary}\n{done.stdout[-6000:]}"
    assert " passed" in summary and "failed" not in summary


def _quick_backend() -> str:
    return next((b for b in OTHER_BACKENDS if _installed(b)), "tensorflow")


@pytest.mark.slow  # trains for two epochs in a second Python: out of `make test-fast`
def test_gpu_bench_runs_here_on_the_cpu():
    """`python -m bench --only gpu` in small: no GPU here, so the GPU run says why, and the CPU run measures."""
    backend = _quick_backend()
    done = _run(
        [
            "-m",
            "bench.gpu",
            "--backends",
            backend,
            "--devices",
            "gpu,cpu",
            "--recipes",
            "gpu",
            "--extra-batch-sizes",
            "",
            "--train",
            "2000",
            "--epochs",
            "2",
            "--budget",
            "600",
            "--run-limit",
            "600",
        ],
        backend,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    rows = [line for line in done.stdout.splitlines() if line.startswith("| ")]
    label = bench_gpu.LABELS[backend]
    assert any(f"{label} on GPU, gpu recipe | not measured: no GPU" in r for r in rows), rows
    measured = [r for r in rows if "on CPU, 2 cores" in r or "on CPU, 1 cores" in r]
    assert len(measured) == 1, rows
    assert "first 2,000 training images" in measured[0] and "after 2 epochs" in measured[0]
    assert "output float32" in measured[0]
    # (On JAX or PyTorch the row may say "imported TensorFlow": keras.utils.set_random_seed seeds
    # TensorFlow too wherever it is installed, as it is here. The GPU machine has none.)


# --- the bench's table, from made-up results ------------------------------------------


def _result(backend, device, seconds, accuracies, **extra):
    r = {
        "backend": backend,
        "device": device,
        "recipe": "gpu",
        "library": "1.0",
        "batch_size": 1024,
        "policy": "mixed_float16" if device == "gpu" else "float32",
        "jit_compile": True,
        "train_images": 60000,
        "cpu_cores": 2,
        "output_dtype": "float32",
        "tensorflow_imported": False,
        "gpu": {"name": "NVIDIA H200", "memory_mib": 143771, "compute_capability": [9, 0], "driver": "580.1"}
        if device == "gpu"
        else None,
        "epochs": [{"epoch": i + 1, "seconds": s, "accuracy": a} for i, (s, a) in enumerate(zip(seconds, accuracies))],
    }
    r.update(extra)
    return r


def test_bench_summary_times_the_target_and_the_steady_rate():
    s = bench_gpu.summarize(_result("jax", "gpu", [4.0, 4.5, 5.0], [0.985, 0.991, 0.993]))
    assert s["to_target_s"] == 4.5 and s["to_target_epoch"] == 2
    assert s["epochs_per_s"] == pytest.approx(2 / 1.0) and s["first_epoch_s"] == 4.0 and s["final"] == 0.993
    assert bench_gpu.summarize(_result("jax", "cpu", [10.0], [0.95]))["to_target_s"] is None


def test_bench_rows_name_the_gpu_and_the_ratio():
    rows = dict(
        bench_gpu.rows_for(
            [
                _result("jax", "gpu", [1.0, 1.5], [0.99, 0.995], batch_size=256),  # a sweep run: not the one compared
                _result("jax", "gpu", [4.0, 4.5, 5.0], [0.985, 0.991, 0.993]),
                _result("jax", "cpu", [20.0, 40.0, 60.0], [0.98, 0.989, 0.992]),
                {"backend": "torch", "device": "-", "recipe": "-", "error": "torch is not installed"},
            ]
        )
    )
    assert rows["GPU"] == "NVIDIA H200, 140.4 GiB, compute capability 9.0, driver 580.1"
    gpu_row = next(v for k, v in rows.items() if "JAX 1.0 on NVIDIA H200" in k and "batch 1024" in k)
    assert any("batch 256" in k for k in rows)
    assert (
        "99.0% after 4.5 s of training (epoch 2" in gpu_row and "2.00 epochs/s after the first epoch (4.0 s)" in gpu_row
    )
    cpu_row = next(v for k, v in rows.items() if "on CPU, 2 cores" in k)
    assert "99.0% after 60.0 s" in cpu_row and "0.05 epochs/s" in cpu_row
    assert (
        rows["GPU recipe, JAX: GPU against CPU"]
        == "40x the epochs per second; time to 99.0%: 4.5 s on the GPU, 60.0 s on the CPU"
    )
    assert any("PyTorch" in k and v == "not measured: torch is not installed" for k, v in rows.items())


def test_bench_flags_a_run_that_imported_tensorflow():
    rows = bench_gpu.rows_for([_result("torch", "gpu", [1.0, 2.0], [0.99, 0.99], tensorflow_imported=True)])
    assert any("imported TensorFlow" in v for _, v in rows)


def test_bench_stops_a_run_past_its_time():
    r = bench_gpu.run_one(_quick_backend(), "cpu", "gpu", train=500, epochs=1, timeout=1)
    assert r["error"].startswith("stopped after 1 s"), r


def test_bench_names_a_backend_that_is_not_installed():
    rows = bench_gpu.bench_gpu(["no_such_backend"], ["gpu"], ["gpu"], budget_s=60)
    assert rows == [("MNIST reference, no_such_backend", "not measured: no_such_backend is not installed")]


def test_bench_plan_measures_what_matters_first():
    runs = bench_gpu.plan(["jax", "torch"], ["gpu", "cpu"], ["gpu", "plain"], extra_batch_sizes=[256])
    assert runs == [
        ("jax", "gpu", "gpu", None),
        ("torch", "gpu", "gpu", None),
        ("jax", "cpu", "gpu", None),
        ("torch", "cpu", "gpu", None),
        ("jax", "gpu", "plain", None),
        ("torch", "gpu", "plain", None),
        ("jax", "gpu", "gpu", 256),
        ("torch", "gpu", "gpu", 256),
    ]
    assert bench_gpu.plan(["jax"], ["cpu"], ["plain"]) == [("jax", "cpu", "plain", None)]


def test_bench_reads_back_a_stopped_runs_epochs():
    line = "  jax cpu gpu: epoch 2, 55.204 s of training, test accuracy 98.91%"
    assert bench_gpu.parse_progress(line) == {"epoch": 2, "seconds": 55.204, "accuracy": pytest.approx(0.9891)}
    assert bench_gpu.parse_progress("Epoch 2/3") is None
