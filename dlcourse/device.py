"""GPU-aware set-up on every Keras backend: find the accelerators, configure, explain.

Introduced in lesson 00.  Typical use at the top of a notebook::

    import dlcourse as dlc
    strategy = dlc.device.setup(seed=42)      # prints a short report
    with strategy.scope():
        model = build_model()

The course runs on Keras's default backend, TensorFlow.  Keras 3 also runs on JAX
and PyTorch (``KERAS_BACKEND=jax`` or ``torch``, or ``"backend"`` in
``~/.keras/keras.json``), and so does everything here: ``report()`` names the
backend in use, its version and the GPUs it sees, and when a GPU is present but
unused it says why and what to install for that backend.  The backend's library is
imported only when one of these functions runs, so ``import dlcourse`` stays
instant and never imports TensorFlow.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from importlib import metadata

__all__ = [
    "BACKENDS",
    "GpuInfo",
    "backend",
    "backend_source",
    "setup",
    "report",
    "gpus",
    "nvidia_smi_gpus",
    "diagnose",
    "matmul_speed",
]

#: The Keras backends the course runs on, with their libraries' names as people say them.
#: TensorFlow is the default (Keras's too).
BACKENDS = {"tensorflow": "TensorFlow", "jax": "JAX", "torch": "PyTorch"}
DEFAULT_BACKEND = "tensorflow"

# Mixed float16 pays off from Volta (compute capability 7.0) on; older GPUs and
# CPUs run it slower than float32.
MIN_MIXED_PRECISION_CC = (7, 0)

_INSTALL = {
    "tensorflow": "run `make lab` in the course folder (or `pip install -e .` in your own environment)",
    "jax": "`pip install jax`; with an NVIDIA GPU on Linux, `pip install 'jax[cuda12]'`",
    "torch": "`pip install torch`",
}


@dataclass
class GpuInfo:
    """One GPU as the Keras backend sees it.

    ``device`` is the backend's name for it (``/physical_device:GPU:0`` on TensorFlow,
    ``gpu:0`` on JAX, ``cuda:0`` or ``mps`` on PyTorch); ``memory_mib`` is the total
    memory in MiB (None when unknown); ``compute_capability`` is ``(major, minor)``
    for NVIDIA GPUs, else None.
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


class SingleDevice:
    """What ``setup()`` returns on JAX and PyTorch, in place of a ``tf.distribute`` strategy.

    Keras places models and data on ``device`` itself (the first GPU, else the CPU);
    ``scope()`` does nothing, so code written as ``with strategy.scope():`` runs
    unchanged on every backend.
    """

    num_replicas_in_sync = 1

    def __init__(self, device: str):
        self.device = device

    def scope(self):
        return contextlib.nullcontext()

    def __repr__(self):
        return f"SingleDevice({self.device!r})"


# --- which backend ----------------------------------------------------------------


def _keras_config_path() -> str:
    home = os.environ.get("KERAS_HOME")
    if not home:
        base = os.path.expanduser("~")
        home = os.path.join(base if os.access(base, os.W_OK) else "/tmp", ".keras")
    return os.path.join(home, "keras.json")


def backend_source() -> str | None:
    """Where the backend choice comes from: ``"KERAS_BACKEND"``, the path of ``keras.json``, or None (Keras's default)."""
    if os.environ.get("KERAS_BACKEND"):
        return "KERAS_BACKEND"
    path = _keras_config_path()
    try:
        with open(path) as f:
            chosen = json.load(f).get("backend")
    except (OSError, ValueError, AttributeError):
        return None
    return path if chosen and chosen != DEFAULT_BACKEND else None


def backend() -> str:
    """The Keras backend of this process: ``"tensorflow"``, ``"jax"``, ``"torch"`` (or another Keras name).

    Once Keras is imported its choice is final and is returned; before that, Keras's own
    rule is applied without importing anything: ``KERAS_BACKEND``, else ``"backend"`` in
    ``keras.json`` (under ``KERAS_HOME``, default ``~/.keras``), else TensorFlow.
    """
    keras = sys.modules.get("keras")
    if keras is not None:
        try:
            return keras.backend.backend()
        except AttributeError:  # Keras half-imported (its backend failed to load)
            pass
    if os.environ.get("KERAS_BACKEND"):
        return os.environ["KERAS_BACKEND"]
    try:
        with open(_keras_config_path()) as f:
            return json.load(f).get("backend") or DEFAULT_BACKEND
    except (OSError, ValueError, AttributeError):
        return DEFAULT_BACKEND


def _import(name: str):
    """The backend's library (``tensorflow``, ``jax`` or ``torch``); tests replace this."""
    return importlib.import_module(name)


def _tf():
    return _import("tensorflow")


def _chosen_by() -> str:
    source = backend_source()
    if source == "KERAS_BACKEND":
        return f"KERAS_BACKEND={os.environ['KERAS_BACKEND']}"
    if source:
        return f'"backend" in {source}'
    return "Keras's default"


def _unsupported(name: str) -> str:
    return (
        f"Keras backend {name!r} ({_chosen_by()}): the course runs on tensorflow (its default), "
        "jax or torch. Unset KERAS_BACKEND (or set it to one of those) and restart Python."
    )


# --- what the NVIDIA driver sees ------------------------------------------------------


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


# --- what the backend sees ---------------------------------------------------------


def _tf_gpus(smi: _Smi) -> list[GpuInfo]:
    tf = _tf()
    found = []
    for i, device in enumerate(tf.config.list_physical_devices("GPU")):
        try:
            details = tf.config.experimental.get_device_details(device)
        except Exception:  # not all builds implement it
            details = {}
        found.append(
            GpuInfo(
                name=details.get("device_name", device.name),
                device=device.name,
                compute_capability=details.get("compute_capability"),
                memory_mib=smi.memory_mib[i] if i < len(smi.memory_mib) else None,
            )
        )
    return found


def _jax_gpu_devices():
    jax = _import("jax")
    try:
        return [d for d in jax.devices() if d.platform == "gpu"]
    except RuntimeError:  # no backend could start
        return []


def _jax_gpus(smi: _Smi) -> list[GpuInfo]:
    found = []
    for i, d in enumerate(_jax_gpu_devices()):
        cc = None
        match = re.match(r"(\d+)\.(\d+)", str(getattr(d, "compute_capability", "") or ""))
        if match:
            cc = (int(match.group(1)), int(match.group(2)))
        found.append(
            GpuInfo(
                name=getattr(d, "device_kind", "GPU"),
                device=f"gpu:{d.id}",
                compute_capability=cc,
                memory_mib=smi.memory_mib[i] if i < len(smi.memory_mib) else None,
            )
        )
    return found


def _torch_device_override() -> str | None:
    """KERAS_TORCH_DEVICE, when it sends Keras somewhere other than a GPU."""
    chosen = os.environ.get("KERAS_TORCH_DEVICE")
    return chosen if chosen and not chosen.startswith(("cuda", "mps")) else None


def _torch_gpus(smi: _Smi) -> list[GpuInfo]:
    torch = _import("torch")
    if _torch_device_override():
        return []
    found = []
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            p = torch.cuda.get_device_properties(i)
            found.append(
                GpuInfo(
                    name=p.name,
                    device=f"cuda:{i}",
                    compute_capability=(p.major, p.minor),
                    memory_mib=int(p.total_memory) // 2**20,
                )
            )
    else:
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            found.append(GpuInfo(name="Apple GPU (Metal)", device="mps"))
    return found


_GPU_FINDERS = {"tensorflow": _tf_gpus, "jax": _jax_gpus, "torch": _torch_gpus}


def gpus() -> list[GpuInfo]:
    """The GPUs the Keras backend in use can train on, with name, compute capability and memory.

    An empty list means Keras trains on the CPU; ``report()`` and ``diagnose()`` say why
    when the machine has a GPU all the same.
    """
    name = backend()
    if name not in _GPU_FINDERS:
        raise RuntimeError(_unsupported(name))
    return _GPU_FINDERS[name](nvidia_smi_gpus())


# --- why a GPU goes unused ---------------------------------------------------------


def _installed(distribution: str) -> bool:
    try:
        metadata.version(distribution)
        return True
    except metadata.PackageNotFoundError:
        return False


def _diagnose_tensorflow(gpu: str, smi: _Smi, system: str) -> str:
    tf = _tf()
    if system == "Windows":
        return (
            f"nvidia-smi sees {gpu}, but TensorFlow 2.11 and later has no GPU support on "
            "native Windows. Use WSL2 and `pip install 'tensorflow[and-cuda]'` inside it, or "
            "Keras's PyTorch backend, which has CUDA on Windows (README, Troubleshooting)."
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


def _diagnose_jax(gpu: str, smi: _Smi, system: str) -> str:
    platforms = os.environ.get("JAX_PLATFORMS", "")
    if platforms and not any(p in platforms for p in ("cuda", "gpu", "rocm")):
        return (
            f"nvidia-smi sees {gpu}, but JAX_PLATFORMS={platforms!r} keeps JAX off it. "
            "Unset JAX_PLATFORMS before starting Python."
        )
    if system == "Windows":
        return (
            f"nvidia-smi sees {gpu}, but JAX has no CUDA support on native Windows. Use WSL2 "
            "and `pip install 'jax[cuda12]'` inside it, or Keras's PyTorch backend "
            "(KERAS_BACKEND=torch with a CUDA build of PyTorch), which has CUDA on Windows."
        )
    plugins = [d for d in ("jax-cuda12-plugin", "jax-cuda13-plugin") if _installed(d)]
    if not plugins:
        return (
            f"nvidia-smi sees {gpu}, but this JAX is the CPU-only build (no jax-cuda plugin). "
            "Install the CUDA build into this environment: `pip install -U 'jax[cuda12]'` "
            "(or 'jax[cuda13]' with an NVIDIA driver of version 580 or newer; either brings its "
            "own CUDA libraries), then restart the kernel."
        )
    return (
        f"nvidia-smi sees {gpu} (driver {smi.driver}), and {plugins[0]} is installed, but JAX "
        "found no usable GPU. The plugin probably does not match jax/jaxlib's version, or the "
        "driver is too old for its CUDA: `pip install -U 'jax[cuda12]'` installs a matching "
        "set; if that does not help, update the NVIDIA driver. Start Python with "
        "JAX_PLATFORMS=cuda to see JAX's own error."
    )


def _diagnose_torch(gpu: str, smi: _Smi, system: str) -> str:
    torch = _import("torch")
    override = _torch_device_override()
    if override:
        return (
            f"KERAS_TORCH_DEVICE={override!r} tells Keras to train on {override}"
            + (f", though {gpu} is there" if gpu else "")
            + ". Unset it to use the GPU."
        )
    cuda = getattr(torch.version, "cuda", None)
    if not cuda:
        where = (
            "On Windows, PyTorch's default wheel is CPU-only: take the `pip install torch` line "
            "for CUDA from the selector on PyTorch's Get Started page."
            if system == "Windows"
            else "`pip install --force-reinstall torch` (on Linux the default wheel is the CUDA build)."
        )
        return (
            f"nvidia-smi sees {gpu}, but this PyTorch ({torch.__version__}) was built without "
            f"CUDA. Install a CUDA build into this environment: {where} Then restart the kernel."
        )
    try:
        torch.cuda.init()
        error = ""
    except Exception as exc:  # the reason PyTorch gives: no driver, driver too old, ...
        error = f" PyTorch says: {str(exc).strip().splitlines()[0]}"
    return (
        f"nvidia-smi sees {gpu} (driver {smi.driver}), and PyTorch is built for CUDA {cuda}, "
        f"but it finds no usable GPU.{error} Usually the NVIDIA driver is too old for that "
        "CUDA: update the driver, or install a PyTorch built for an older CUDA."
    )


_DIAGNOSES = {"tensorflow": _diagnose_tensorflow, "jax": _diagnose_jax, "torch": _diagnose_torch}


def diagnose(gpu_count: int | None = None) -> str | None:
    """Why the Keras backend uses no GPU although the machine has one, with the fix.

    ``gpu_count`` is how many GPUs the backend sees (counted when None).  Returns None
    when there is nothing to explain: the backend uses a GPU, or the machine has none
    it could use.
    """
    name = backend()
    if name not in _DIAGNOSES:
        return _unsupported(name)
    if gpu_count is None:
        gpu_count = len(gpus())
    if gpu_count:
        return None
    if name == "torch" and _torch_device_override():
        return _diagnose_torch("", nvidia_smi_gpus(), platform.system())
    smi = nvidia_smi_gpus()
    system = platform.system()
    if not smi.names:
        if system == "Darwin":
            return {
                "tensorflow": "No NVIDIA GPU here. On Apple silicon, `pip install tensorflow-metal` lets "
                "TensorFlow use the Mac's GPU. The course runs fine on the CPU.",
                "jax": "No NVIDIA GPU here. On Apple silicon Keras's PyTorch backend "
                "(KERAS_BACKEND=torch) uses the Mac's GPU; JAX's Metal support is experimental. "
                "The course runs fine on the CPU.",
                "torch": "No NVIDIA GPU here, and PyTorch reports no Metal (MPS) device: "
                "a recent PyTorch on Apple silicon with macOS 12.3 or newer has one. The course "
                "runs fine on the CPU.",
            }[name]
        return None
    gpu = smi.names[0]
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) in ("", "-1"):
        return (
            f"nvidia-smi sees {gpu}, but CUDA_VISIBLE_DEVICES="
            f"{os.environ['CUDA_VISIBLE_DEVICES']!r} hides it from {BACKENDS[name]}. "
            "Unset it (or set it to 0) before starting Python."
        )
    return _DIAGNOSES[name](gpu, smi, system)


# --- the report --------------------------------------------------------------------


def _library_version(name: str, lib) -> str:
    if name == "jax":
        jaxlib = sys.modules.get("jaxlib")
        version = getattr(jaxlib, "__version__", None) if jaxlib else None
        return f"{lib.__version__}" + (f" (jaxlib {version})" if version else "")
    if name == "torch":
        cuda = getattr(getattr(lib, "version", None), "cuda", None)
        return f"{lib.__version__} ({'CUDA ' + cuda if cuda else 'built without CUDA'})"
    return lib.__version__


def _cpu_devices(name: str, lib) -> int:
    if name == "tensorflow":
        return len(lib.config.list_physical_devices("CPU"))
    if name == "jax":
        try:
            return len(lib.devices("cpu"))
        except RuntimeError:
            return 0
    return 1


def _label(name: str) -> str:
    return f"{BACKENDS.get(name, name):<12s}"


def report(print_it: bool = True) -> str:
    """Versions, the Keras backend, devices and GPU details, plus a diagnosis when a GPU goes unused.

    Returns the report as a string (and prints it unless ``print_it`` is False).
    """
    python = f"Python      {sys.version.split()[0]} ({platform.system()} {platform.machine()})"
    name = backend()
    if name not in BACKENDS:
        return _emit([python, f"Keras       {_unsupported(name)}"], print_it)
    try:
        lib = _tf() if name == "tensorflow" else _import(name)
    except ImportError as exc:
        return _report_without_backend(python, name, exc, print_it)
    try:
        import keras
    except ImportError as exc:
        return _emit(
            [
                python,
                f"{_label(name)}{_library_version(name, lib)}",
                f"Keras       cannot be imported ({exc}). Install it: `pip install keras`.",
            ],
            print_it,
        )
    import numpy as np

    source = backend_source()
    chosen = f", {_chosen_by()}" if source else ""
    lines = [
        python,
        f"{_label(name)}{_library_version(name, lib)}",
        f"Keras       {keras.__version__} (backend: {name}{chosen})",
        f"NumPy       {np.__version__}",
        f"CPU         {_cpu_devices(name, lib)} device(s), {os.cpu_count()} core(s)",
    ]
    found = gpus()
    if found:
        for g in found:
            cc = (
                f", compute capability {g.compute_capability[0]}.{g.compute_capability[1]}"
                if g.compute_capability
                else ""
            )
            mem = f", {g.memory_mib / 1024:.1f} GiB" if g.memory_mib else ""
            lines.append(f"GPU         {g.device}: {g.name}{mem}{cc}")
    else:
        lines.append("GPU         none: training runs on the CPU (every lesson fits its time budget there)")
        why = diagnose(gpu_count=0)
        if why:
            lines.append(f"Why no GPU? {why}")
    return _emit(lines, print_it)


def _emit(lines: list[str], print_it: bool) -> str:
    text = "\n".join(lines)
    if print_it:
        print(text)
    return text


def _report_without_backend(python: str, name: str, exc: ImportError, print_it: bool) -> str:
    label = BACKENDS[name]
    if name == DEFAULT_BACKEND and not backend_source():
        advice = (
            f"Install the course's environment: {_INSTALL[name]}. If pip finds no TensorFlow for "
            f"this Python ({platform.python_version()}), Keras also runs on PyTorch or JAX: see "
            "Troubleshooting in the course's README."
        )
    else:
        advice = (
            f"Keras is set to use it ({_chosen_by()}): install it into this environment "
            f"({_INSTALL[name]}) or choose another backend (unset KERAS_BACKEND for the "
            "course's default, TensorFlow)."
        )
    lines = [python, f"{_label(name)}cannot be imported ({exc}). {advice}"]
    smi = nvidia_smi_gpus()
    for gpu, memory in zip(smi.names, smi.memory_mib):
        mem = f", {memory / 1024:.1f} GiB" if memory else ""
        lines.append(f"GPU         {gpu}{mem} (driver {smi.driver}); {label} is needed to use it")
    return _emit(lines, print_it)


# --- set-up ------------------------------------------------------------------------


def _supports_mixed_precision(found: list[GpuInfo]) -> bool:
    return bool(found) and all(
        g.compute_capability is not None and tuple(g.compute_capability) >= MIN_MIXED_PRECISION_CC for g in found
    )


def _tf_strategy(memory_growth: bool):
    tf = _tf()
    physical = tf.config.list_physical_devices("GPU")
    if memory_growth:
        for device in physical:
            try:
                tf.config.experimental.set_memory_growth(device, True)
            except RuntimeError:
                # TensorFlow already initialised the GPU (setup() called twice).
                pass
    if len(physical) > 1:
        return tf.distribute.MirroredStrategy()
    if len(physical) == 1:
        return tf.distribute.OneDeviceStrategy("/gpu:0")
    return tf.distribute.get_strategy()


def setup(
    *,
    seed: int | None = None,
    mixed_precision: bool = False,
    memory_growth: bool = True,
    verbose: bool = True,
):
    """Configure the Keras backend for this machine and return a fitting strategy.

    - ``memory_growth``: let GPU memory grow on demand instead of being claimed up front
      (so several notebooks can share one GPU).  TensorFlow: memory growth on each GPU.
      JAX: ``XLA_PYTHON_CLIENT_PREALLOCATE=false``, which works only if JAX has not yet
      used the GPU in this process (call ``setup()`` first).  PyTorch grows on demand anyway.
    - Strategy (TensorFlow): ``MirroredStrategy`` over all GPUs when there are several,
      ``OneDeviceStrategy`` on the GPU when there is one, the default strategy on the
      CPU otherwise.  JAX and PyTorch: a ``SingleDevice`` whose ``scope()`` does nothing
      (Keras places everything on the first GPU, else the CPU).  Build and compile
      models inside ``strategy.scope()``; the same code runs on every backend.
    - ``mixed_precision``: use the ``mixed_float16`` policy, only where every GPU
      has compute capability 7.0 or more (elsewhere it would be slower; a note
      says so and float32 is kept).
    - ``seed``: seed Python, NumPy and the backend via ``keras.utils.set_random_seed``.

    Call it once, before building any model.
    """
    name = backend()
    if name not in BACKENDS:
        raise RuntimeError(_unsupported(name))
    if name == "jax" and memory_growth:
        os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    if name == "tensorflow":
        _tf()
    import keras

    if seed is not None:
        keras.utils.set_random_seed(seed)

    if name == "tensorflow":
        strategy = _tf_strategy(memory_growth)
    found = gpus()
    if name != "tensorflow":
        strategy = SingleDevice(found[0].device if found else "cpu")

    policy = "float32"
    note = None
    if mixed_precision:
        if _supports_mixed_precision(found):
            keras.mixed_precision.set_global_policy("mixed_float16")
            policy = "mixed_float16"
        else:
            note = "mixed precision needs a GPU with compute capability 7.0 or more; keeping float32"
            keras.mixed_precision.set_global_policy("float32")
    if name != "tensorflow" and len(found) > 1:
        note = f"{len(found)} GPUs: Keras on {BACKENDS[name]} trains on {found[0].device} only" + (
            "; for all of them see keras.distribution.DataParallel" if name == "jax" else ""
        )

    if verbose:
        report()
        if name == "tensorflow":
            print(
                f"Strategy    {type(strategy).__name__} with {strategy.num_replicas_in_sync} replica(s); "
                f"precision policy {policy}; seed {seed}"
            )
        else:
            print(
                f"Placement   Keras puts models and data on {strategy.device}; precision policy {policy}; seed {seed}"
            )
        if note:
            print(f"Note        {note}")
    return strategy


# --- a matrix product, timed ---------------------------------------------------------


def _parse_device(device: str) -> tuple[str, int]:
    """``"/CPU:0"``, ``"/GPU:1"``, ``"gpu:0"``, ``"cuda:1"``, ``"cpu"`` -> ``("cpu" | "gpu", index)``."""
    match = re.fullmatch(r"/?(?:physical_device:)?(cpu|gpu|cuda)(?::(\d+))?", device.strip().lower())
    if not match:
        raise ValueError(f"device {device!r}: expected '/CPU:0' or '/GPU:0' (or 'cpu', 'gpu:1', 'cuda:0')")
    return ("cpu" if match.group(1) == "cpu" else "gpu"), int(match.group(2) or 0)


def _matmul_timer(name: str, kind: str, index: int, n: int):
    """A function that runs one (n x n) @ (n x n) float32 product on the device and waits for it."""
    if name == "tensorflow":
        tf = _tf()
        with tf.device(f"/{kind.upper()}:{index}"):
            a, b = tf.random.normal((n, n)), tf.random.normal((n, n))

        def run():
            with tf.device(f"/{kind.upper()}:{index}"):
                (a @ b).numpy()  # .numpy() waits for the GPU to finish

        return run
    if name == "jax":
        jax = _import("jax")
        target = jax.devices("cpu")[index] if kind == "cpu" else _jax_gpu_devices()[index]
        ka, kb = jax.random.split(jax.random.PRNGKey(0))
        a = jax.device_put(jax.random.normal(ka, (n, n)), target)
        b = jax.device_put(jax.random.normal(kb, (n, n)), target)
        product = jax.jit(lambda x, y: x @ y)
        return lambda: product(a, b).block_until_ready()
    torch = _import("torch")
    target = torch.device("cpu" if kind == "cpu" else f"cuda:{index}")
    a = torch.randn(n, n, device=target)
    b = torch.randn(n, n, device=target)

    def run():
        a @ b
        if target.type == "cuda":
            torch.cuda.synchronize(target)

    return run


def matmul_speed(device: str = "/CPU:0", n: int = 2048, repeat: int = 5) -> dict:
    """Time ``repeat`` float32 (n x n) @ (n x n) products on one device of the Keras backend (lesson 01).

    ``device`` is ``"/CPU:0"`` or ``"/GPU:0"`` (TensorFlow's names; ``"cpu"``, ``"gpu:1"``
    and ``"cuda:0"`` work too), whatever the backend.  Returns ``{"device", "seconds",
    "gflops"}``: the median seconds per product and the matching speed in GFLOP/s
    (2 n^3 floating-point operations per product).  One warm-up product runs first, so
    start-up costs (and JAX's compilation) are not counted.
    """
    import statistics
    import time

    name = backend()
    if name not in BACKENDS:
        raise RuntimeError(_unsupported(name))
    kind, index = _parse_device(device)
    run = _matmul_timer(name, kind, index, n)
    run()  # warm-up
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    seconds = statistics.median(times)
    return {"device": device, "seconds": seconds, "gflops": 2 * n**3 / seconds / 1e9}
