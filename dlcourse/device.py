"""GPU-aware set-up: find the accelerators, configure TensorFlow, explain what it sees.

Introduced in lesson 00.  Typical use at the top of a notebook::

    import dlcourse as dlc
    strategy = dlc.device.setup(seed=42)      # prints a short report
    with strategy.scope():
        model = build_model()

``report()`` is the diagnostic: when a GPU is present but TensorFlow cannot use
it, it says why and what to install.  TensorFlow is imported only when one of
these functions runs, so ``import dlcourse`` stays instant.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
from dataclasses import dataclass, field

__all__ = ["GpuInfo", "setup", "report", "gpus", "nvidia_smi_gpus", "diagnose", "matmul_speed"]

# Mixed float16 pays off from Volta (compute capability 7.0) on; older GPUs and
# CPUs run it slower than float32.
MIN_MIXED_PRECISION_CC = (7, 0)


@dataclass
class GpuInfo:
    """One GPU as TensorFlow sees it.

    ``memory_mib`` is the total memory in MiB from ``nvidia-smi`` (None when unknown);
    ``compute_capability`` is ``(major, minor)`` or None.
    """

    name: str
    device: str
    compute_capability: tuple[int, int] | None = None
    memory_mib: int | None = None


@dataclass
class _Smi:
    names: list[str] = field(default_factory=list)
    memory_mib: list[int | None] = field(default_factory=list)
    driver: str | None = None


def _tf():
    import tensorflow as tf

    return tf


def nvidia_smi_gpus() -> _Smi:
    """GPUs the NVIDIA driver reports (empty when there is no driver or no ``nvidia-smi``)."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return _Smi()
    try:
        out = subprocess.run(
            [exe, "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=20,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return _Smi()
    smi = _Smi()
    for line in out.strip().splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) < 3:
            continue
        smi.names.append(parts[0])
        smi.memory_mib.append(int(parts[1]) if parts[1].isdigit() else None)
        smi.driver = parts[2]
    return smi


def gpus() -> list[GpuInfo]:
    """The GPUs TensorFlow can use, with name, compute capability and memory."""
    tf = _tf()
    smi = nvidia_smi_gpus()
    found = []
    for i, device in enumerate(tf.config.list_physical_devices("GPU")):
        try:
            details = tf.config.experimental.get_device_details(device)
        except Exception:  # not all builds implement it
            details = {}
        memory = smi.memory_mib[i] if i < len(smi.memory_mib) else None
        found.append(
            GpuInfo(
                name=details.get("device_name", device.name),
                device=device.name,
                compute_capability=details.get("compute_capability"),
                memory_mib=memory,
            )
        )
    return found


def diagnose(tf_gpu_count: int | None = None) -> str | None:
    """Why TensorFlow uses no GPU although the machine has one, with the fix.

    Returns None when there is nothing to explain: TensorFlow sees a GPU, or the
    machine has none it could use.
    """
    tf = _tf()
    if tf_gpu_count is None:
        tf_gpu_count = len(tf.config.list_physical_devices("GPU"))
    if tf_gpu_count:
        return None
    smi = nvidia_smi_gpus()
    system = platform.system()
    if not smi.names:
        if system == "Darwin":
            return (
                "No NVIDIA GPU here. On Apple silicon, `pip install tensorflow-metal` lets "
                "TensorFlow use the Mac's GPU. The course runs fine on the CPU."
            )
        return None
    gpu = smi.names[0]
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) in ("", "-1"):
        return (
            f"nvidia-smi sees {gpu}, but CUDA_VISIBLE_DEVICES="
            f"{os.environ['CUDA_VISIBLE_DEVICES']!r} hides it from TensorFlow. "
            "Unset it (or set it to 0) before starting Python."
        )
    if system == "Windows":
        return (
            f"nvidia-smi sees {gpu}, but TensorFlow 2.11 and later has no GPU support on "
            "native Windows. Use WSL2 and `pip install 'tensorflow[and-cuda]'` inside it."
        )
    if not tf.test.is_built_with_cuda():
        return (
            f"nvidia-smi sees {gpu}, but this TensorFlow was installed without CUDA. "
            "Install the CUDA build into this environment: "
            "`pip install 'tensorflow[and-cuda]'`, then restart the kernel."
        )
    build = tf.sysconfig.get_build_info()
    return (
        f"nvidia-smi sees {gpu} (driver {smi.driver}), and TensorFlow is built for CUDA "
        f"{build.get('cuda_version', '?')} / cuDNN {build.get('cudnn_version', '?')}, but it "
        "found no usable GPU. The CUDA libraries are probably missing or do not match: "
        "`pip install 'tensorflow[and-cuda]'` installs matching ones; if that does not "
        "help, update the NVIDIA driver. Start Python with TF_CPP_MIN_LOG_LEVEL=0 to see "
        "TensorFlow's own loading errors."
    )


def report(print_it: bool = True) -> str:
    """Versions, devices and GPU details, plus a diagnosis when a GPU goes unused.

    Returns the report as a string (and prints it unless ``print_it`` is False).
    """
    python = f"Python      {sys.version.split()[0]} ({platform.system()} {platform.machine()})"
    try:
        tf = _tf()
        import keras
    except ImportError as exc:
        return _report_without_tensorflow(python, exc, print_it)
    import numpy as np

    lines = [
        python,
        f"TensorFlow  {tf.__version__}",
        f"Keras       {keras.__version__} (backend: {keras.backend.backend()})",
        f"NumPy       {np.__version__}",
    ]
    cpus = tf.config.list_physical_devices("CPU")
    lines.append(f"CPU         {len(cpus)} device(s), {os.cpu_count()} core(s)")
    found = gpus()
    if found:
        for g in found:
            cc = f", compute capability {g.compute_capability[0]}.{g.compute_capability[1]}" if g.compute_capability else ""
            mem = f", {g.memory_mib / 1024:.1f} GiB" if g.memory_mib else ""
            lines.append(f"GPU         {g.device}: {g.name}{mem}{cc}")
    else:
        lines.append("GPU         none: training runs on the CPU (every lesson fits its time budget there)")
        why = diagnose(tf_gpu_count=0)
        if why:
            lines.append(f"Why no GPU? {why}")
    text = "\n".join(lines)
    if print_it:
        print(text)
    return text


def _report_without_tensorflow(python: str, exc: ImportError, print_it: bool) -> str:
    lines = [
        python,
        f"TensorFlow  cannot be imported ({exc}). Install the course's environment: run "
        "`make lab` in the course folder (or `pip install -e .` in your own environment).",
    ]
    smi = nvidia_smi_gpus()
    for name, memory in zip(smi.names, smi.memory_mib):
        mem = f", {memory / 1024:.1f} GiB" if memory else ""
        lines.append(f"GPU         {name}{mem} (driver {smi.driver}); TensorFlow is needed to use it")
    text = "\n".join(lines)
    if print_it:
        print(text)
    return text


def _supports_mixed_precision(found: list[GpuInfo]) -> bool:
    return bool(found) and all(
        g.compute_capability is not None and tuple(g.compute_capability) >= MIN_MIXED_PRECISION_CC
        for g in found
    )


def setup(
    *,
    seed: int | None = None,
    mixed_precision: bool = False,
    memory_growth: bool = True,
    verbose: bool = True,
):
    """Configure TensorFlow for this machine and return a fitting distribution strategy.

    - ``memory_growth``: let each GPU's memory grow on demand instead of grabbing
      all of it (so several notebooks can share one GPU).
    - Strategy: ``MirroredStrategy`` over all GPUs when there are several,
      ``OneDeviceStrategy`` on the GPU when there is one, the default strategy on
      the CPU otherwise.  Build and compile models inside ``strategy.scope()``.
    - ``mixed_precision``: use the ``mixed_float16`` policy, only where every GPU
      has compute capability 7.0 or more (elsewhere it would be slower; a note
      says so and float32 is kept).
    - ``seed``: seed Python, NumPy and TensorFlow via ``keras.utils.set_random_seed``.

    Call it once, before building any model.
    """
    tf = _tf()
    import keras

    if seed is not None:
        keras.utils.set_random_seed(seed)

    physical = tf.config.list_physical_devices("GPU")
    if memory_growth:
        for device in physical:
            try:
                tf.config.experimental.set_memory_growth(device, True)
            except RuntimeError:
                # TensorFlow already initialised the GPU (setup() called twice).
                pass
    found = gpus()

    if len(physical) > 1:
        strategy = tf.distribute.MirroredStrategy()
    elif len(physical) == 1:
        strategy = tf.distribute.OneDeviceStrategy("/gpu:0")
    else:
        strategy = tf.distribute.get_strategy()

    policy = "float32"
    note = None
    if mixed_precision:
        if _supports_mixed_precision(found):
            keras.mixed_precision.set_global_policy("mixed_float16")
            policy = "mixed_float16"
        else:
            note = (
                "mixed precision needs a GPU with compute capability 7.0 or more; "
                "keeping float32"
            )
            keras.mixed_precision.set_global_policy("float32")

    if verbose:
        report()
        print(
            f"Strategy    {type(strategy).__name__} with {strategy.num_replicas_in_sync} replica(s); "
            f"precision policy {policy}; seed {seed}"
        )
        if note:
            print(f"Note        {note}")
    return strategy


def matmul_speed(device: str = "/CPU:0", n: int = 2048, repeat: int = 5) -> dict:
    """Time ``repeat`` float32 (n x n) @ (n x n) products on one TensorFlow device (lesson 01).

    Returns ``{"device", "seconds", "gflops"}``: the median seconds per product and the
    matching speed in GFLOP/s (2 n^3 floating-point operations per product).  One
    warm-up product runs first, so start-up costs are not counted.
    """
    import statistics
    import time

    tf = _tf()
    with tf.device(device):
        a = tf.random.normal((n, n))
        b = tf.random.normal((n, n))
        (a @ b).numpy()  # warm-up
        times = []
        for _ in range(repeat):
            start = time.perf_counter()
            (a @ b).numpy()  # .numpy() waits for the GPU to finish
            times.append(time.perf_counter() - start)
    seconds = statistics.median(times)
    return {"device": device, "seconds": seconds, "gflops": 2 * n**3 / seconds / 1e9}
