"""dlcourse.device on this CPU machine, and its GPU branches through fakes of tf.config."""

import subprocess
from types import SimpleNamespace

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
import keras  # noqa: E402

from dlcourse import device  # noqa: E402


@pytest.fixture(autouse=True)
def _restore_policy():
    yield
    keras.mixed_precision.set_global_policy("float32")


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
        monkeypatch.setattr(tf.config.experimental, "set_memory_growth", lambda d, on: calls.growth.append((d.name, on)))
        monkeypatch.setattr(tf.config.experimental, "get_device_details", lambda d: {"device_name": name, "compute_capability": cc})
        monkeypatch.setattr(tf.distribute, "OneDeviceStrategy", lambda dev: FakeStrategy("one", 1, dev))
        monkeypatch.setattr(tf.distribute, "MirroredStrategy", lambda: FakeStrategy("mirrored", n))
        monkeypatch.setattr(device, "nvidia_smi_gpus", lambda: device._Smi([name] * n, [memory_mib] * n, "550.54"))
        return calls

    return install


# --- on this machine (CPU only) ---------------------------------------------------


def test_report_on_cpu_lists_versions_and_devices(capsys):
    text = device.report()
    assert f"TensorFlow  {tf.__version__}" in text
    assert f"Keras       {keras.__version__}" in text
    assert "CPU" in text and "GPU         none" in text
    assert capsys.readouterr().out.strip() == text.strip()


def test_setup_on_cpu_returns_default_strategy(capsys):
    strategy = device.setup(verbose=False)
    assert strategy.num_replicas_in_sync == 1
    assert isinstance(strategy, type(tf.distribute.get_strategy()))
    assert capsys.readouterr().out == ""


def test_setup_seeds_numpy_and_tensorflow():
    device.setup(seed=123, verbose=False)
    first = (np.random.rand(3), keras.random.uniform((3,)).numpy())
    device.setup(seed=123, verbose=False)
    second = (np.random.rand(3), keras.random.uniform((3,)).numpy())
    np.testing.assert_array_equal(first[0], second[0])
    np.testing.assert_array_equal(first[1], second[1])


def test_mixed_precision_refused_on_cpu(capsys):
    device.setup(mixed_precision=True)
    assert keras.mixed_precision.global_policy().name == "float32"
    assert "keeping float32" in capsys.readouterr().out


# --- GPU branches, through fakes ----------------------------------------------------


def test_one_gpu_gets_memory_growth_and_one_device_strategy(fake_gpus):
    calls = fake_gpus(1)
    strategy = device.setup(verbose=False)
    assert calls.growth == [("/physical_device:GPU:0", True)]
    assert calls.strategies == [("one", ("/gpu:0",))]
    assert strategy.num_replicas_in_sync == 1


def test_several_gpus_get_mirrored_strategy(fake_gpus):
    calls = fake_gpus(4)
    strategy = device.setup(verbose=False)
    assert len(calls.growth) == 4
    assert calls.strategies == [("mirrored", ())]
    assert strategy.num_replicas_in_sync == 4


def test_memory_growth_can_be_left_off(fake_gpus):
    calls = fake_gpus(2)
    device.setup(memory_growth=False, verbose=False)
    assert calls.growth == []


def test_memory_growth_after_initialisation_is_tolerated(fake_gpus, monkeypatch):
    fake_gpus(1)

    def already(d, on):
        raise RuntimeError("Physical devices cannot be modified after being initialized")

    monkeypatch.setattr(tf.config.experimental, "set_memory_growth", already)
    device.setup(verbose=False)


def test_mixed_precision_on_modern_gpu(fake_gpus, capsys):
    fake_gpus(1, cc=(8, 0))
    device.setup(mixed_precision=True)
    assert keras.mixed_precision.global_policy().name == "mixed_float16"
    assert "mixed_float16" in capsys.readouterr().out


def test_mixed_precision_refused_on_old_gpu(fake_gpus, capsys):
    fake_gpus(1, cc=(6, 1), name="Tesla P100")
    device.setup(mixed_precision=True)
    assert keras.mixed_precision.global_policy().name == "float32"
    assert "compute capability 7.0" in capsys.readouterr().out


def test_report_names_gpu_memory_and_capability(fake_gpus):
    fake_gpus(2, cc=(9, 0), name="NVIDIA H100 80GB HBM3", memory_mib=81559)
    text = device.report(print_it=False)
    assert text.count("NVIDIA H100 80GB HBM3, 79.6 GiB, compute capability 9.0") == 2
    assert "/physical_device:GPU:1" in text


# --- diagnosis: a GPU exists but TensorFlow does not use it ------------------------


@pytest.fixture
def smi_sees_a_gpu(monkeypatch):
    monkeypatch.setattr(device, "nvidia_smi_gpus", lambda: device._Smi(["NVIDIA GeForce RTX 3060"], [12288], "535.1"))
    monkeypatch.setattr(device.platform, "system", lambda: "Linux")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)


def test_diagnose_tensorflow_without_cuda(smi_sees_a_gpu, monkeypatch):
    monkeypatch.setattr(tf.test, "is_built_with_cuda", lambda: False)
    why = device.diagnose(tf_gpu_count=0)
    assert "RTX 3060" in why and "without CUDA" in why and "tensorflow[and-cuda]" in why


def test_diagnose_hidden_by_cuda_visible_devices(smi_sees_a_gpu, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "-1")
    assert "CUDA_VISIBLE_DEVICES" in device.diagnose(tf_gpu_count=0)


def test_diagnose_native_windows(smi_sees_a_gpu, monkeypatch):
    monkeypatch.setattr(device.platform, "system", lambda: "Windows")
    assert "WSL2" in device.diagnose(tf_gpu_count=0)


def test_diagnose_cuda_build_with_missing_libraries(smi_sees_a_gpu, monkeypatch):
    monkeypatch.setattr(tf.test, "is_built_with_cuda", lambda: True)
    monkeypatch.setattr(tf.sysconfig, "get_build_info", lambda: {"cuda_version": "12.5", "cudnn_version": "9"})
    why = device.diagnose(tf_gpu_count=0)
    assert "CUDA 12.5" in why and "driver 535.1" in why and "TF_CPP_MIN_LOG_LEVEL=0" in why


def test_report_includes_the_diagnosis(smi_sees_a_gpu, monkeypatch):
    monkeypatch.setattr(tf.test, "is_built_with_cuda", lambda: False)
    monkeypatch.setattr(tf.config, "list_physical_devices", lambda t=None: [] if t == "GPU" else ["cpu"])
    assert "Why no GPU? nvidia-smi sees NVIDIA GeForce RTX 3060" in device.report(print_it=False)


def test_nothing_to_diagnose_without_nvidia_gpu(monkeypatch):
    monkeypatch.setattr(device, "nvidia_smi_gpus", lambda: device._Smi())
    monkeypatch.setattr(device.platform, "system", lambda: "Linux")
    assert device.diagnose(tf_gpu_count=0) is None
    assert device.diagnose(tf_gpu_count=1) is None


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


def test_report_without_tensorflow_says_how_to_install(monkeypatch):
    def missing():
        raise ImportError("No module named 'tensorflow'")

    monkeypatch.setattr(device, "_tf", missing)
    monkeypatch.setattr(device, "nvidia_smi_gpus", lambda: device._Smi(["NVIDIA L4"], [23034], "550.1"))
    text = device.report(print_it=False)
    assert "cannot be imported" in text and "make lab" in text
    assert "NVIDIA L4, 22.5 GiB (driver 550.1)" in text


def test_matmul_speed_on_cpu():
    result = device.matmul_speed("/CPU:0", n=256, repeat=3)
    assert result["device"] == "/CPU:0" and result["seconds"] > 0
    assert result["gflops"] == pytest.approx(2 * 256**3 / result["seconds"] / 1e9)
