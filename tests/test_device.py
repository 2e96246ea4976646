"""dlcourse.device on this CPU machine, whichever Keras backend runs, and its GPU branches through fakes.

The first part runs on the backend Keras uses in this process (TensorFlow by default;
tests/test_backends.py runs this file again with KERAS_BACKEND=jax and torch).  The GPU
branches are tested through fakes: of the few ``tf.config`` calls for TensorFlow (only
when TensorFlow is the backend), and of small stand-ins for ``jax`` and ``torch``, which
need neither installed.
"""

import json
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from dlcourse import device  # noqa: E402

BACKEND = keras.backend.backend()
on_tensorflow = pytest.mark.skipif(
    BACKEND != "tensorflow", reason=f"TensorFlow's own calls are faked; Keras runs on {BACKEND}"
)
tf = pytest.importorskip("tensorflow") if BACKEND == "tensorflow" else None


@pytest.fixture(autouse=True)
def _restore_policy():
    yield
    keras.mixed_precision.set_global_policy("float32")


# --- on this machine (CPU only), whichever backend ----------------------------------


def test_backend_is_the_one_keras_uses():
    assert device.backend() == BACKEND


def test_report_on_cpu_lists_versions_and_devices(capsys):
    text = device.report()
    lib = __import__(BACKEND)
    assert f"{device.BACKENDS[BACKEND]:<12s}{lib.__version__}" in text
    assert f"Keras       {keras.__version__} (backend: {BACKEND}" in text
    assert "CPU" in text and "GPU         none" in text
    assert "cannot be imported" not in text
    assert capsys.readouterr().out.strip() == text.strip()


def test_setup_on_cpu_returns_a_single_device_strategy(capsys):
    strategy = device.setup(verbose=False)
    assert strategy.num_replicas_in_sync == 1
    if BACKEND == "tensorflow":
        assert isinstance(strategy, type(tf.distribute.get_strategy()))
    else:
        assert isinstance(strategy, device.SingleDevice) and strategy.device == "cpu"
    with strategy.scope():  # notebooks build their models in here, on every backend
        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    assert model.count_params() == 8
    assert capsys.readouterr().out == ""


def test_setup_seeds_numpy_and_the_backend():
    def draw():
        return np.random.rand(3), keras.ops.convert_to_numpy(keras.random.uniform((3,)))

    device.setup(seed=123, verbose=False)
    first = draw()
    device.setup(seed=123, verbose=False)
    second = draw()
    device.setup(seed=124, verbose=False)
    other = draw()
    np.testing.assert_array_equal(first[0], second[0])
    np.testing.assert_array_equal(first[1], second[1])
    assert not np.array_equal(first[1], other[1]), "a different seed gave the same random numbers"


def test_setup_verbose_names_backend_and_placement(capsys):
    device.setup(seed=7)
    out = capsys.readouterr().out
    assert f"backend: {BACKEND}" in out and "seed 7" in out
    assert ("Strategy" if BACKEND == "tensorflow" else "Placement   Keras puts models and data on cpu") in out


def test_mixed_precision_refused_on_cpu(capsys):
    device.setup(mixed_precision=True)
    assert keras.mixed_precision.global_policy().name == "float32"
    assert "keeping float32" in capsys.readouterr().out


@pytest.mark.parametrize("name", ["/CPU:0", "cpu"])
def test_matmul_speed_on_cpu(name):
    result = device.matmul_speed(name, n=256, repeat=3)
    assert result["device"] == name and result["seconds"] > 0
    assert result["gflops"] == pytest.approx(2 * 256**3 / result["seconds"] / 1e9)


def test_matmul_speed_rejects_unknown_devices():
    with pytest.raises(ValueError, match="/GPU:0"):
        device.matmul_speed("tpu:0")


# --- which backend: Keras's rule, before Keras is imported ---------------------------


@pytest.fixture
def keras_not_imported(monkeypatch, tmp_path):
    monkeypatch.delitem(sys.modules, "keras")
    monkeypatch.delenv("KERAS_BACKEND", raising=False)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    return tmp_path


def test_backend_default_is_tensorflow(keras_not_imported):
    assert device.backend() == "tensorflow" and device.backend_source() is None


def test_backend_from_keras_json(keras_not_imported):
    (keras_not_imported / "keras.json").write_text(json.dumps({"backend": "jax"}))
    assert device.backend() == "jax"
    assert device.backend_source() == str(keras_not_imported / "keras.json")


def test_backend_from_environment_wins(keras_not_imported, monkeypatch):
    (keras_not_imported / "keras.json").write_text(json.dumps({"backend": "jax"}))
    monkeypatch.setenv("KERAS_BACKEND", "torch")
    assert device.backend() == "torch" and device.backend_source() == "KERAS_BACKEND"


def test_unsupported_backend_is_named(keras_not_imported, monkeypatch):
    monkeypatch.setenv("KERAS_BACKEND", "numpy")
    text = device.report(print_it=False)
    assert "'numpy'" in text and "KERAS_BACKEND=numpy" in text and "tensorflow" in text
    with pytest.raises(RuntimeError, match="jax or torch"):
        device.setup()


# --- JAX and PyTorch: GPU branches through stand-ins ---------------------------------


class FakeJaxDevice(SimpleNamespace):
    pass


def fake_jax(gpus=0, *, cc="9.0", kind="NVIDIA H100 80GB HBM3"):
    cpu = [FakeJaxDevice(platform="cpu", id=0, device_kind="cpu")]
    gpu = [FakeJaxDevice(platform="gpu", id=i, device_kind=kind, compute_capability=cc) for i in range(gpus)]

    def devices(kind=None):
        if kind == "cpu":
            return cpu
        if kind == "gpu" and not gpu:
            raise RuntimeError("Unknown backend: 'gpu' requested")
        return gpu or cpu

    return SimpleNamespace(__version__="0.4.35", devices=devices)


def fake_torch(gpus=(), *, cuda="12.4", init_error=None, mps=False):
    """``gpus``: a list of (name, total bytes, (major, minor))."""

    def init():
        if init_error:
            raise RuntimeError(init_error)

    return SimpleNamespace(
        __version__="2.5.1" + (f"+cu{cuda.replace('.', '')}" if cuda else "+cpu"),
        version=SimpleNamespace(cuda=cuda),
        cuda=SimpleNamespace(
            is_available=lambda: bool(gpus),
            device_count=lambda: len(gpus),
            get_device_properties=lambda i: SimpleNamespace(
                name=gpus[i][0], total_memory=gpus[i][1], major=gpus[i][2][0], minor=gpus[i][2][1]
            ),
            init=init,
        ),
        backends=SimpleNamespace(mps=SimpleNamespace(is_available=lambda: mps)),
    )


@pytest.fixture
def on_backend(monkeypatch):
    """Make dlcourse.device believe Keras runs on ``name`` with the stand-in ``lib``, and ``smi`` GPUs exist."""

    def install(name, lib, *, smi=None, system="Linux"):
        real_import = device._import
        monkeypatch.setattr(device, "backend", lambda: name)
        monkeypatch.setattr(device, "_import", lambda mod: lib if mod == name else real_import(mod))
        monkeypatch.setattr(device, "nvidia_smi_gpus", lambda: smi or device._Smi())
        monkeypatch.setattr(device.platform, "system", lambda: system)
        monkeypatch.setenv("KERAS_BACKEND", name)
        for var in ("CUDA_VISIBLE_DEVICES", "JAX_PLATFORMS", "KERAS_TORCH_DEVICE"):
            monkeypatch.delenv(var, raising=False)
        monkeypatch.setattr(device, "_installed", lambda dist: False)

    return install


H100 = device._Smi(["NVIDIA H100 80GB HBM3"], [81559], "550.54")
RTX = device._Smi(["NVIDIA GeForce RTX 4090"], [24564], "560.35")


def test_jax_report_names_backend_version_and_gpu(on_backend):
    on_backend("jax", fake_jax(gpus=2), smi=device._Smi(H100.names * 2, H100.memory_mib * 2, "550.54"))
    text = device.report(print_it=False)
    assert "JAX         0.4.35" in text and "TensorFlow" not in text
    assert "(backend: jax, KERAS_BACKEND=jax)" in text
    assert "gpu:0: NVIDIA H100 80GB HBM3, 79.6 GiB, compute capability 9.0" in text
    assert "gpu:1: NVIDIA H100" in text


def test_jax_setup_places_on_the_gpu_without_preallocating(on_backend, monkeypatch, capsys):
    on_backend("jax", fake_jax(gpus=1), smi=H100)
    monkeypatch.setenv("XLA_PYTHON_CLIENT_PREALLOCATE", "unset-me")
    monkeypatch.delenv("XLA_PYTHON_CLIENT_PREALLOCATE")
    strategy = device.setup(seed=1, mixed_precision=True)
    assert isinstance(strategy, device.SingleDevice) and strategy.device == "gpu:0"
    assert strategy.num_replicas_in_sync == 1
    assert device.os.environ["XLA_PYTHON_CLIENT_PREALLOCATE"] == "false"
    assert keras.mixed_precision.global_policy().name == "mixed_float16"
    assert "Keras puts models and data on gpu:0; precision policy mixed_float16" in capsys.readouterr().out


def test_jax_several_gpus_noted(on_backend, capsys):
    on_backend("jax", fake_jax(gpus=4), smi=device._Smi(H100.names * 4, H100.memory_mib * 4, "550.54"))
    device.setup()
    assert (
        "4 GPUs: Keras on JAX trains on gpu:0 only; for all of them see keras.distribution.DataParallel"
        in capsys.readouterr().out
    )


def test_jax_mixed_precision_refused_on_old_gpu(on_backend, capsys):
    on_backend(
        "jax",
        fake_jax(gpus=1, cc="6.1", kind="Tesla P100-PCIE-16GB"),
        smi=device._Smi(["Tesla P100"], [16280], "535.1"),
    )
    device.setup(mixed_precision=True)
    assert keras.mixed_precision.global_policy().name == "float32"
    assert "compute capability 7.0" in capsys.readouterr().out


def test_jax_cpu_build_on_a_gpu_machine(on_backend):
    on_backend("jax", fake_jax(), smi=RTX)
    text = device.report(print_it=False)
    assert "GPU         none" in text
    assert "Why no GPU? nvidia-smi sees NVIDIA GeForce RTX 4090, but this JAX is the CPU-only build" in text
    assert "pip install -U 'jax[cuda12]'" in text


def test_jax_plugin_installed_but_no_gpu(on_backend, monkeypatch):
    on_backend("jax", fake_jax(), smi=RTX)
    monkeypatch.setattr(device, "_installed", lambda dist: dist == "jax-cuda12-plugin")
    why = device.diagnose(gpu_count=0)
    assert "jax-cuda12-plugin is installed" in why and "driver 560.35" in why and "JAX_PLATFORMS=cuda" in why


def test_jax_platforms_cpu_hides_the_gpu(on_backend, monkeypatch):
    on_backend("jax", fake_jax(), smi=RTX)
    monkeypatch.setenv("JAX_PLATFORMS", "cpu")
    assert "JAX_PLATFORMS='cpu'" in device.diagnose()


def test_jax_on_native_windows(on_backend):
    on_backend("jax", fake_jax(), smi=RTX, system="Windows")
    why = device.diagnose(gpu_count=0)
    assert "native Windows" in why and "WSL2" in why and "KERAS_BACKEND=torch" in why


def test_torch_report_names_backend_version_and_gpu(on_backend):
    on_backend("torch", fake_torch([("NVIDIA GeForce RTX 4090", 24 * 2**30, (8, 9))]), smi=RTX)
    text = device.report(print_it=False)
    assert "PyTorch     2.5.1+cu124 (CUDA 12.4)" in text and "TensorFlow" not in text
    assert "cuda:0: NVIDIA GeForce RTX 4090, 24.0 GiB, compute capability 8.9" in text


def test_torch_setup_places_on_the_gpu(on_backend, capsys):
    on_backend("torch", fake_torch([("NVIDIA A100-SXM4-40GB", 40 * 2**30, (8, 0))] * 2))
    strategy = device.setup(mixed_precision=True)
    assert isinstance(strategy, device.SingleDevice) and strategy.device == "cuda:0"
    assert keras.mixed_precision.global_policy().name == "mixed_float16"
    out = capsys.readouterr().out
    assert "2 GPUs: Keras on PyTorch trains on cuda:0 only" in out and "DataParallel" not in out


def test_torch_on_apple_silicon_uses_metal(on_backend):
    on_backend("torch", fake_torch(cuda=None, mps=True), system="Darwin")
    assert [(g.device, g.compute_capability) for g in device.gpus()] == [("mps", None)]
    assert "mps: Apple GPU (Metal)" in device.report(print_it=False)


def test_torch_cpu_build_on_linux(on_backend):
    on_backend("torch", fake_torch(cuda=None), smi=RTX)
    why = device.diagnose(gpu_count=0)
    assert "PyTorch (2.5.1+cpu) was built without CUDA" in why and "--force-reinstall torch" in why


def test_torch_cpu_build_on_windows(on_backend):
    on_backend("torch", fake_torch(cuda=None), smi=RTX, system="Windows")
    why = device.diagnose(gpu_count=0)
    assert "built without CUDA" in why and "Windows" in why and "Get Started" in why


def test_torch_cuda_build_with_old_driver(on_backend):
    error = "The NVIDIA driver on your system is too old (found version 11040)."
    on_backend("torch", fake_torch(cuda="12.4", init_error=error), smi=RTX)
    why = device.diagnose(gpu_count=0)
    assert "built for CUDA 12.4" in why and f"PyTorch says: {error}" in why and "update the driver" in why


def test_torch_sent_to_the_cpu_by_keras_torch_device(on_backend, monkeypatch):
    on_backend("torch", fake_torch([("NVIDIA GeForce RTX 4090", 24 * 2**30, (8, 9))]), smi=RTX)
    monkeypatch.setenv("KERAS_TORCH_DEVICE", "cpu")
    assert device.gpus() == []
    assert "KERAS_TORCH_DEVICE='cpu'" in device.report(print_it=False)


@pytest.mark.parametrize("name", ["jax", "torch"])
def test_cuda_visible_devices_hides_the_gpu(on_backend, monkeypatch, name):
    on_backend(name, fake_jax() if name == "jax" else fake_torch(), smi=RTX)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    why = device.diagnose(gpu_count=0)
    assert "CUDA_VISIBLE_DEVICES=''" in why and device.BACKENDS[name] in why


@pytest.mark.parametrize("name", ["jax", "torch"])
def test_nothing_to_diagnose_without_nvidia_gpu(on_backend, name):
    on_backend(name, fake_jax() if name == "jax" else fake_torch())
    assert device.diagnose(gpu_count=0) is None


@pytest.mark.parametrize("name, install", [("jax", "pip install jax"), ("torch", "pip install torch")])
def test_report_when_the_chosen_backend_is_missing(on_backend, monkeypatch, name, install):
    """The bug this replaced: KERAS_BACKEND=jax without JAX reported that TensorFlow cannot be imported."""
    on_backend(name, None, smi=device._Smi(["NVIDIA L4"], [23034], "550.1"))

    def missing(mod):
        raise ImportError(f"No module named '{mod}'")

    monkeypatch.setattr(device, "_import", missing)
    text = device.report(print_it=False)
    label = device.BACKENDS[name]
    assert f"{label:<12s}cannot be imported (No module named '{name}')" in text
    assert f"KERAS_BACKEND={name}" in text and install in text and "unset KERAS_BACKEND" in text
    assert "TensorFlow  cannot" not in text
    assert f"NVIDIA L4, 22.5 GiB (driver 550.1); {label} is needed to use it" in text


# --- TensorFlow: GPU branches through fakes of tf.config ------------------------------


@pytest.fixture
def fake_gpus(monkeypatch):
    """Make TensorFlow appear to have ``n`` GPUs; record what setup() does with them."""

    def install(n, *, cc=(8, 0), name="NVIDIA A100-SXM4-40GB", memory_mib=40960):
        gpus = [tf.config.PhysicalDevice(name=f"/physical_device:GPU:{i}", device_type="GPU") for i in range(n)]
        real_list = tf.config.list_physical_devices
        calls = SimpleNamespace(growth=[], strategies=[])

        def list_devices(device_type=None):
            return list(gpus) if device_type == "GPU" else real_list(device_type)

        class FakeStrategy:
            def __init__(self, kind, replicas, *args):
                self.num_replicas_in_sync = replicas
                calls.strategies.append((kind, args))

        monkeypatch.setattr(tf.config, "list_physical_devices", list_devices)
        monkeypatch.setattr(
            tf.config.experimental, "set_memory_growth", lambda d, on: calls.growth.append((d.name, on))
        )
        monkeypatch.setattr(
            tf.config.experimental, "get_device_details", lambda d: {"device_name": name, "compute_capability": cc}
        )
        monkeypatch.setattr(tf.distribute, "OneDeviceStrategy", lambda dev: FakeStrategy("one", 1, dev))
        monkeypatch.setattr(tf.distribute, "MirroredStrategy", lambda: FakeStrategy("mirrored", n))
        monkeypatch.setattr(device, "nvidia_smi_gpus", lambda: device._Smi([name] * n, [memory_mib] * n, "550.54"))
        return calls

    return install


@on_tensorflow
def test_one_gpu_gets_memory_growth_and_one_device_strategy(fake_gpus):
    calls = fake_gpus(1)
    strategy = device.setup(verbose=False)
    assert calls.growth == [("/physical_device:GPU:0", True)]
    assert calls.strategies == [("one", ("/gpu:0",))]
    assert strategy.num_replicas_in_sync == 1


@on_tensorflow
def test_several_gpus_get_mirrored_strategy(fake_gpus):
    calls = fake_gpus(4)
    strategy = device.setup(verbose=False)
    assert len(calls.growth) == 4
    assert calls.strategies == [("mirrored", ())]
    assert strategy.num_replicas_in_sync == 4


@on_tensorflow
def test_memory_growth_can_be_left_off(fake_gpus):
    calls = fake_gpus(2)
    device.setup(memory_growth=False, verbose=False)
    assert calls.growth == []


@on_tensorflow
def test_memory_growth_after_initialisation_is_tolerated(fake_gpus, monkeypatch):
    fake_gpus(1)

    def already(d, on):
        raise RuntimeError("Physical devices cannot be modified after being initialized")

    monkeypatch.setattr(tf.config.experimental, "set_memory_growth", already)
    device.setup(verbose=False)


@on_tensorflow
def test_mixed_precision_on_modern_gpu(fake_gpus, capsys):
    fake_gpus(1, cc=(8, 0))
    device.setup(mixed_precision=True)
    assert keras.mixed_precision.global_policy().name == "mixed_float16"
    assert "mixed_float16" in capsys.readouterr().out


@on_tensorflow
def test_mixed_precision_refused_on_old_gpu(fake_gpus, capsys):
    fake_gpus(1, cc=(6, 1), name="Tesla P100")
    device.setup(mixed_precision=True)
    assert keras.mixed_precision.global_policy().name == "float32"
    assert "compute capability 7.0" in capsys.readouterr().out


@on_tensorflow
def test_report_names_gpu_memory_and_capability(fake_gpus):
    fake_gpus(2, cc=(9, 0), name="NVIDIA H100 80GB HBM3", memory_mib=81559)
    text = device.report(print_it=False)
    assert text.count("NVIDIA H100 80GB HBM3, 79.6 GiB, compute capability 9.0") == 2
    assert "/physical_device:GPU:1" in text


@pytest.fixture
def smi_sees_a_gpu(monkeypatch):
    monkeypatch.setattr(device, "nvidia_smi_gpus", lambda: device._Smi(["NVIDIA GeForce RTX 3060"], [12288], "535.1"))
    monkeypatch.setattr(device.platform, "system", lambda: "Linux")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)


@on_tensorflow
def test_diagnose_tensorflow_without_cuda(smi_sees_a_gpu, monkeypatch):
    monkeypatch.setattr(tf.test, "is_built_with_cuda", lambda: False)
    why = device.diagnose(gpu_count=0)
    assert "RTX 3060" in why and "without CUDA" in why and "tensorflow[and-cuda]" in why


@on_tensorflow
def test_diagnose_hidden_by_cuda_visible_devices(smi_sees_a_gpu, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "-1")
    assert "CUDA_VISIBLE_DEVICES" in device.diagnose(gpu_count=0)


@on_tensorflow
def test_diagnose_native_windows(smi_sees_a_gpu, monkeypatch):
    monkeypatch.setattr(device.platform, "system", lambda: "Windows")
    why = device.diagnose(gpu_count=0)
    assert "WSL2" in why and "PyTorch backend" in why


@on_tensorflow
def test_diagnose_cuda_build_with_missing_libraries(smi_sees_a_gpu, monkeypatch):
    monkeypatch.setattr(tf.test, "is_built_with_cuda", lambda: True)
    monkeypatch.setattr(tf.sysconfig, "get_build_info", lambda: {"cuda_version": "12.5", "cudnn_version": "9"})
    why = device.diagnose(gpu_count=0)
    assert "CUDA 12.5" in why and "driver 535.1" in why and "TF_CPP_MIN_LOG_LEVEL=0" in why


@on_tensorflow
def test_report_includes_the_diagnosis(smi_sees_a_gpu, monkeypatch):
    monkeypatch.setattr(tf.test, "is_built_with_cuda", lambda: False)
    monkeypatch.setattr(tf.config, "list_physical_devices", lambda t=None: [] if t == "GPU" else ["cpu"])
    assert "Why no GPU? nvidia-smi sees NVIDIA GeForce RTX 3060" in device.report(print_it=False)


@on_tensorflow
def test_nothing_to_diagnose_without_nvidia_gpu_on_tensorflow(monkeypatch):
    monkeypatch.setattr(device, "nvidia_smi_gpus", lambda: device._Smi())
    monkeypatch.setattr(device.platform, "system", lambda: "Linux")
    assert device.diagnose(gpu_count=0) is None
    assert device.diagnose(gpu_count=1) is None


@on_tensorflow
def test_report_without_tensorflow_says_how_to_install(monkeypatch):
    def missing():
        raise ImportError("No module named 'tensorflow'")

    monkeypatch.delenv("KERAS_BACKEND", raising=False)
    monkeypatch.setattr(device, "backend_source", lambda: None)
    monkeypatch.setattr(device, "_tf", missing)
    monkeypatch.setattr(device, "nvidia_smi_gpus", lambda: device._Smi(["NVIDIA L4"], [23034], "550.1"))
    text = device.report(print_it=False)
    assert "TensorFlow  cannot be imported" in text and "make lab" in text
    assert "NVIDIA L4, 22.5 GiB (driver 550.1); TensorFlow is needed to use it" in text


# --- nvidia-smi ------------------------------------------------------------------------


def test_nvidia_smi_output_is_parsed(monkeypatch):
    out = "NVIDIA H100 80GB HBM3, 81559, 550.54.15\nNVIDIA H100 80GB HBM3, 81559, 550.54.15\n"
    monkeypatch.setattr(device.shutil, "which", lambda name: "/usr/bin/nvidia-smi")
    monkeypatch.setattr(device.subprocess, "run", lambda *a, **k: SimpleNamespace(stdout=out))
    smi = device.nvidia_smi_gpus()
    assert smi.names == ["NVIDIA H100 80GB HBM3"] * 2
    assert smi.memory_mib == [81559, 81559] and smi.driver == "550.54.15"


def test_nvidia_smi_failure_means_no_gpu(monkeypatch):
    def broken(*a, **k):
        raise subprocess.CalledProcessError(9, "nvidia-smi")

    monkeypatch.setattr(device.shutil, "which", lambda name: "/usr/bin/nvidia-smi")
    monkeypatch.setattr(device.subprocess, "run", broken)
    assert device.nvidia_smi_gpus().names == []
