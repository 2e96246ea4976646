"""Lesson 06's reference model on a GPU with Keras's JAX and PyTorch backends, and on the CPU for the ratio.

``python -m bench --only gpu`` runs this.  Each training is a fresh Python process
(Keras picks its backend once per process) started with ``KERAS_BACKEND`` set; a CPU
run hides the GPU (``CUDA_VISIBLE_DEVICES=""``) and is pinned to ``--cpu-cores`` cores
(2 by default, like the course's reference CPU machine).  The code trained is the
notebook's own, read from ``solutions/06_mnist_project/06b_project.ipynb``: the cell
that defines ``build_project_model`` / ``train_project_model`` (grade_id
``project_model``) and the GPU section's cell that defines ``fast_gpu_fit``.  MNIST
comes from ``data/mnist.npz`` through ``dlcourse.data``; nothing imports TensorFlow
unless the backend is TensorFlow, and every run reports whether it was imported.

Recipes: ``gpu`` is the section's ``fast_gpu_fit`` (its defaults: batches of 256,
4 epochs; mixed precision and compilation as ``dlc.training.fast_fit_options()`` chooses);
``plain`` is the reference ``train_project_model`` (batches of 128, 5 epochs).

    python -m bench --only gpu                        JAX and PyTorch, GPU and CPU, all of MNIST
    python -m bench.gpu --backends jax --devices cpu --train 3000 --epochs 1     a small run
    python -m bench.gpu --worker --backend jax --device cpu --recipe gpu        one run, JSON out
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "solutions" / "06_mnist_project" / "06b_project.ipynb"
LABELS = {"tensorflow": "TensorFlow", "jax": "JAX", "torch": "PyTorch"}
RESULT = "BENCH-GPU-RESULT "
HEADER = "BENCH-GPU-HEADER "
PROGRESS = re.compile(r"epoch (\d+), ([\d.]+) s of training, test accuracy ([\d.]+)%")


# --- inside one run ------------------------------------------------------------------


def notebook_code(namespace: dict, notebook: Path = NOTEBOOK) -> dict:
    """Execute the notebook's project cell and its GPU recipe cell into ``namespace``.

    Reads the notebook as JSON (no nbformat needed).  Raises LookupError, naming the
    cell, when one is missing.
    """
    cells = [c for c in json.loads(notebook.read_text())["cells"] if c["cell_type"] == "code"]

    def source(c):
        return "".join(c["source"]) if isinstance(c["source"], list) else c["source"]

    project = [c for c in cells if c.get("metadata", {}).get("nbgrader", {}).get("grade_id") == "project_model"]
    recipe = [c for c in cells if "def fast_gpu_fit(" in source(c)]
    for name, found in (("project_model (build_project_model)", project), ("def fast_gpu_fit", recipe)):
        if len(found) != 1:
            raise LookupError(f"{notebook.name}: expected one code cell with {name}, found {len(found)}")
    for cell in (project[0], recipe[0]):
        exec(compile(source(cell), f"{notebook.name}:{cell.get('id', '?')}", "exec"), namespace)
    return namespace


def parse_progress(line: str) -> dict | None:
    """A worker's per-epoch line back as ``{"epoch", "seconds", "accuracy"}`` (None if it is not one)."""
    m = PROGRESS.search(line)
    return {"epoch": int(m.group(1)), "seconds": float(m.group(2)), "accuracy": float(m.group(3)) / 100} if m else None


def _pin_cpu(cores: int) -> None:
    available = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if available and cores < len(available):
        os.sched_setaffinity(0, set(available[:cores]))
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(cores)


def worker(args) -> dict:
    """One training run in this process; returns what it measured (see ``main``'s JSON)."""
    if args.device == "cpu":
        _pin_cpu(args.cpu_cores)
    import numpy as np

    import dlcourse as dlc

    (x_train, y_train), (x_test, y_test) = dlc.data.load_mnist()
    x_train = x_train[..., None].astype("float32") / 255
    x_test = x_test[..., None].astype("float32") / 255
    if args.train:
        x_train, y_train = x_train[: args.train], y_train[: args.train]
    import keras

    if args.device == "cpu" and keras.backend.backend() == "torch":
        import torch

        torch.set_num_threads(args.cpu_cores)
    found = dlc.device.gpus()
    result = {
        "backend": keras.backend.backend(),
        "device": args.device,
        "recipe": args.recipe,
        "keras": keras.__version__,
        "library": dlc.device._library_version(keras.backend.backend(), dlc.device._import(keras.backend.backend())),
        "gpu": None,
        "cpu_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "train_images": len(x_train),
        "batch_size": args.batch_size,  # None: the recipe's own, filled in below
    }
    if args.device == "gpu":
        if not found:
            result["skipped"] = "no GPU: " + (dlc.device.diagnose(gpu_count=0) or "the machine has none")
            return result
        g = found[0]
        result["gpu"] = {
            "name": g.name,
            "device": g.device,
            "memory_mib": g.memory_mib,
            "compute_capability": list(g.compute_capability) if g.compute_capability else None,
            "driver": dlc.device.nvidia_smi_gpus().driver,
        }
    elif found:
        result["skipped"] = f'a CPU run, but Keras sees {found[0].device}: hide the GPU (CUDA_VISIBLE_DEVICES="")'
        return result

    ns = notebook_code({"keras": keras, "np": np, "dlc": dlc})
    fast = ns["fast"]
    defaults = ns["fast_gpu_fit"].__defaults__  # (epochs, batch_size, peak_lr, callbacks)
    result.update(
        policy=fast.policy if args.recipe == "gpu" else "float32",
        jit_compile=fast.jit_compile if args.recipe == "gpu" else "auto",
        batch_size=args.batch_size or (defaults[1] if args.recipe == "gpu" else 128),
    )
    print(HEADER + json.dumps(result), flush=True)  # what a stopped run still reports
    log = []

    class TestAccuracy(keras.callbacks.Callback):
        """After each epoch: seconds of training so far (test evaluations excluded), test accuracy."""

        def on_train_begin(self, logs=None):
            self.start, self.evaluating = time.perf_counter(), 0.0

        def on_epoch_end(self, epoch, logs=None):
            {k: float(v) for k, v in (logs or {}).items()}  # waits for the device to finish the epoch
            t = time.perf_counter()
            trained = t - self.start - self.evaluating
            probs = self.model.predict(x_test, batch_size=2000, verbose=0)
            accuracy = float(np.mean(np.asarray(probs).argmax(1) == y_test))
            self.evaluating += time.perf_counter() - t
            log.append({"epoch": epoch + 1, "seconds": trained, "accuracy": accuracy})
            print(
                f"  {result['backend']} {args.device} {args.recipe}: epoch {epoch + 1}, {trained:.3f} s of training, "
                f"test accuracy {accuracy:.2%}",
                file=sys.stderr,
                flush=True,
            )

    keras.utils.set_random_seed(0)
    if args.recipe == "gpu":
        kwargs = {
            k: v for k, v in (("epochs", args.epochs), ("batch_size", args.batch_size), ("peak_lr", args.peak_lr)) if v
        }
        model = ns["fast_gpu_fit"](ns["build_project_model"], x_train, y_train, callbacks=[TestAccuracy()], **kwargs)
    else:
        model = ns["build_project_model"]()
        original_fit = model.fit
        model.fit = lambda *a, **kw: original_fit(
            *a, **{**kw, "callbacks": [TestAccuracy()], **({"epochs": args.epochs} if args.epochs else {})}
        )
        ns["train_project_model"](model, x_train, y_train)
    result["params"] = int(model.count_params())
    result["epochs"] = log
    result["output_dtype"] = str(keras.backend.standardize_dtype(model(x_test[:2], training=False).dtype))
    result["tensorflow_imported"] = "tensorflow" in sys.modules
    return result


# --- the whole benchmark ------------------------------------------------------------


def _env(backend: str, device: str) -> dict:
    env = dict(os.environ, KERAS_BACKEND=backend, PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    if device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""
        if backend == "jax":
            env["JAX_PLATFORMS"] = "cpu"
    env.pop("KERAS_TORCH_DEVICE", None)
    return env


def run_one(
    backend: str, device: str, recipe: str, *, train=None, epochs=None, batch_size=None, cpu_cores=2, timeout=300
) -> dict:
    """Start one worker process and return its result (``{"error": ...}`` when it failed).

    The worker's per-epoch lines are passed on to stderr as they come, so a long run shows
    its progress; after ``timeout`` seconds it is stopped.
    """
    cmd = [
        sys.executable,
        "-m",
        "bench.gpu",
        "--worker",
        "--backend",
        backend,
        "--device",
        device,
        "--recipe",
        recipe,
        "--cpu-cores",
        str(cpu_cores),
    ]
    for flag, value in (("--train", train), ("--epochs", epochs), ("--batch-size", batch_size)):
        if value:
            cmd += [flag, str(value)]
    start = time.perf_counter()
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=_env(backend, device), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
    )
    timer = threading.Timer(timeout, proc.kill)
    timer.start()
    result, header, tail, progress = None, None, [], []
    try:
        for line in proc.stdout:
            if line.startswith(RESULT):
                result = json.loads(line[len(RESULT) :])
            elif line.startswith(HEADER):
                header = json.loads(line[len(HEADER) :])
            elif parse_progress(line):  # the worker's own per-epoch line
                progress.append(line.strip())
                print(line, end="", file=sys.stderr, flush=True)
            else:
                tail = (tail + [line.rstrip()])[-40:]
        proc.wait()
    finally:
        timer.cancel()
    base = {"backend": backend, "device": device, "recipe": recipe}
    if result is not None:
        result["process_seconds"] = time.perf_counter() - start
        return result
    if time.perf_counter() - start >= timeout:
        epochs = [parse_progress(p) for p in progress]
        epochs = [e for e in epochs if e]
        if epochs:  # keep what it measured before it was stopped
            return {**base, **(header or {}), "epochs": epochs, "stopped": f"stopped after {timeout} s"}
        return {**base, "error": f"stopped after {timeout} s"}
    print("\n".join(tail), file=sys.stderr)
    last = next((t for t in reversed(tail) if t.strip()), "no output")
    return {**base, "error": f"exit status {proc.returncode}: {last}"}


def summarize(r: dict, target: float = 0.99) -> dict:
    """Time to ``target`` test accuracy, epochs per second after the first epoch, final accuracy."""
    log = r.get("epochs") or []
    if not log:
        return {}
    reached = next((e for e in log if e["accuracy"] >= target), None)
    first = log[0]["seconds"]
    if len(log) > 1:
        rate = (len(log) - 1) / (log[-1]["seconds"] - first)
    else:
        rate = 1 / first
    return {
        "final": log[-1]["accuracy"],
        "epochs": len(log),
        "first_epoch_s": first,
        "epochs_per_s": rate,
        "steady": len(log) > 1,
        "to_target_s": reached["seconds"] if reached else None,
        "to_target_epoch": reached["epoch"] if reached else None,
        "total_s": log[-1]["seconds"],
    }


def _what(r: dict) -> str:
    recipe = "GPU recipe (`fast_gpu_fit`" if r["recipe"] == "gpu" else "plain recipe (`train_project_model`"
    recipe += f", batch {r.get('batch_size', '?')}, {r.get('policy', '?')}, jit_compile={r.get('jit_compile', '?')})"
    where = f"{r['gpu']['name']}" if r.get("gpu") else f"CPU, {r.get('cpu_cores', '?')} cores"
    data = "" if r.get("train_images", 60000) == 60000 else f", first {r['train_images']:,} training images"
    return (
        f"MNIST reference, {LABELS.get(r['backend'], r['backend'])} {r.get('library', '')} on {where}, {recipe}{data}"
    )


def rows_for(results: list[dict], target: float = 0.99) -> list[tuple[str, str]]:
    """Table rows: the GPU, one row per run, and the GPU / CPU ratio per backend."""
    rows = []
    gpu = next((r["gpu"] for r in results if r.get("gpu")), None)
    if gpu:
        cc = gpu.get("compute_capability")
        rows.append(
            (
                "GPU",
                f"{gpu['name']}"
                + (f", {gpu['memory_mib'] / 1024:.1f} GiB" if gpu.get("memory_mib") else "")
                + (f", compute capability {cc[0]}.{cc[1]}" if cc else "")
                + (f", driver {gpu['driver']}" if gpu.get("driver") else ""),
            )
        )
    for r in results:
        if "error" in r or "skipped" in r:
            label = f"MNIST reference, {LABELS.get(r['backend'], r['backend'])}"
            if r["device"] != "-":
                label += f" on {r['device'].upper()}, {r['recipe']} recipe"
            if r.get("batch_size"):
                label += f", batch {r['batch_size']}"
            rows.append((label, f"not measured: {r.get('error') or r.get('skipped')}"))
            continue
        s = summarize(r, target)
        reached = (
            f"{target:.1%} after {s['to_target_s']:.1f} s of training (epoch {s['to_target_epoch']}, compilation included)"
            if s["to_target_s"] is not None
            else f"{target:.1%} not reached"
        )
        rate = (
            f"{s['epochs_per_s']:.2f} epochs/s after the first epoch ({s['first_epoch_s']:.1f} s)"
            if s["steady"]
            else f"{s['epochs_per_s']:.2f} epochs/s (one epoch, compilation included)"
        )
        tf_note = "; imported TensorFlow" if r.get("tensorflow_imported") and r["backend"] != "tensorflow" else ""
        tf_note += f"; {r['stopped']}" if r.get("stopped") else ""
        epochs = f"{s['epochs']} epoch" + ("s" if s["epochs"] != 1 else "")
        rows.append(
            (
                _what(r),
                f"test accuracy {s['final']:.2%} after {epochs}; {reached}; {rate}; "
                f"output {r.get('output_dtype', '?')}{tf_note}",
            )
        )
    for backend in dict.fromkeys(r["backend"] for r in results):
        cpu = [
            r
            for r in results
            if r["backend"] == backend and r["recipe"] == "gpu" and r["device"] == "cpu" and r.get("epochs")
        ]
        gpu = [
            r
            for r in results
            if r["backend"] == backend
            and r["recipe"] == "gpu"
            and r["device"] == "gpu"
            and r.get("epochs")
            and cpu
            and r.get("batch_size") == cpu[0].get("batch_size")
        ]
        pair = {"cpu": summarize(cpu[0], target), "gpu": summarize(gpu[0], target)} if cpu and gpu else {}
        if "gpu" in pair and "cpu" in pair:
            g, c = pair["gpu"], pair["cpu"]
            text = f"{g['epochs_per_s'] / c['epochs_per_s']:.0f}x the epochs per second"
            if g["to_target_s"] is not None and c["to_target_s"] is not None:
                text += (
                    f"; time to {target:.1%}: {g['to_target_s']:.1f} s on the GPU, {c['to_target_s']:.1f} s on the CPU"
                )
            rows.append((f"GPU recipe, {LABELS.get(backend, backend)}: GPU against CPU", text))
    return rows


def plan(backends, devices, recipes, extra_batch_sizes=()) -> list[tuple[str, str, str, int | None]]:
    """The runs, most wanted first: (backend, device, recipe, batch size or None for the recipe's own).

    1. the GPU recipe on the GPU, per backend; 2. the same on the CPU, for the ratio; 3. the
    plain recipe on the GPU; 4. the GPU recipe on the GPU with each of ``extra_batch_sizes``.
    The plain recipe on the CPU runs only when no GPU run is asked for (the ``mnist``
    benchmark measures it with TensorFlow).
    """
    runs = []
    if "gpu" in recipes:
        runs += [(b, d, "gpu", None) for d in ("gpu", "cpu") if d in devices for b in backends]
    if "plain" in recipes:
        runs += [(b, d, "plain", None) for d in devices for b in backends if d == "gpu" or "gpu" not in devices]
    if "gpu" in recipes and "gpu" in devices:
        runs += [(b, "gpu", "gpu", size) for size in extra_batch_sizes for b in backends]
    return runs


def bench_gpu(
    backends=("jax", "torch"),
    devices=("gpu", "cpu"),
    recipes=("gpu", "plain"),
    *,
    train=None,
    epochs=None,
    batch_size=None,
    extra_batch_sizes=(512, 1024),
    cpu_cores=2,
    budget_s=480,
    run_limit_s=240,
    target=0.99,
) -> list[tuple[str, str]]:
    """Run ``plan(...)`` while ``budget_s`` seconds last, each run for at most ``run_limit_s``; return the table rows.

    Backends that are not installed get a row saying so; runs that would start after the
    budget is spent get a "not measured: out of time" row; a run stopped at its limit
    keeps the epochs it finished.
    """
    start = time.perf_counter()
    results = []
    installed = []
    for backend in backends:
        if importlib.util.find_spec(backend) is None:
            results.append({"backend": backend, "device": "-", "recipe": "-", "error": f"{backend} is not installed"})
        else:
            installed.append(backend)
    for backend, device, recipe, size in plan(installed, devices, recipes, extra_batch_sizes):
        size = size or batch_size
        left = budget_s - (time.perf_counter() - start)
        if left < 30:
            results.append(
                {
                    "backend": backend,
                    "device": device,
                    "recipe": recipe,
                    "batch_size": size,
                    "error": f"out of time (budget {budget_s} s)",
                }
            )
            continue
        print(
            f"bench gpu: {backend} on {device}, {recipe} recipe" + (f", batch {size}" if size else "") + " ...",
            file=sys.stderr,
            flush=True,
        )
        results.append(
            run_one(
                backend,
                device,
                recipe,
                train=train,
                epochs=epochs,
                batch_size=size,
                cpu_cores=cpu_cores,
                timeout=int(min(left, run_limit_s)),
            )
        )
    return rows_for(results, target)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.gpu", description=__doc__.split("\n\n")[0])
    parser.add_argument("--worker", action="store_true", help="run one training here and print its result as JSON")
    parser.add_argument("--backend", default="jax", help="the worker's Keras backend")
    parser.add_argument("--device", choices=("gpu", "cpu"), default="gpu", help="the worker's device")
    parser.add_argument("--recipe", choices=("gpu", "plain"), default="gpu", help="the worker's training recipe")
    parser.add_argument("--backends", default="jax,torch", help="comma-separated Keras backends (default: jax,torch)")
    parser.add_argument("--devices", default="gpu,cpu", help="comma-separated: gpu, cpu")
    parser.add_argument("--recipes", default="gpu,plain", help="comma-separated: gpu, plain")
    parser.add_argument("--train", type=int, help="train on the first N training images only (a quick run)")
    parser.add_argument("--epochs", type=int, help="override the recipe's number of epochs")
    parser.add_argument("--batch-size", type=int, help="override the GPU recipe's batch size")
    parser.add_argument("--peak-lr", type=float, help="override the GPU recipe's peak learning rate")
    parser.add_argument("--cpu-cores", type=int, default=2, help="cores a CPU run may use (default 2)")
    parser.add_argument(
        "--extra-batch-sizes",
        default="512,1024",
        help="GPU recipe on the GPU also with these batch sizes, last (default 512,1024; '' for none)",
    )
    parser.add_argument("--budget", type=int, default=480, help="seconds for all runs together (default 480)")
    parser.add_argument("--run-limit", type=int, default=240, help="seconds for one run at most (default 240)")
    parser.add_argument("--target", type=float, default=0.99, help="test accuracy to time (default 0.99)")
    args = parser.parse_args(argv)
    if args.worker:
        print(RESULT + json.dumps(worker(args)), flush=True)
        return 0
    extra = [int(b) for b in args.extra_batch_sizes.split(",") if b.strip()]
    rows = bench_gpu(
        args.backends.split(","),
        args.devices.split(","),
        args.recipes.split(","),
        train=args.train,
        epochs=args.epochs,
        batch_size=args.batch_size,
        extra_batch_sizes=extra,
        cpu_cores=args.cpu_cores,
        budget_s=args.budget,
        run_limit_s=args.run_limit,
        target=args.target,
    )
    for k, v in rows:
        print(f"| {k} | {v} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
