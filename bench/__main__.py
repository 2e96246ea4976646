"""Run the benchmarks and rewrite the results tables in bench/README.md.

    python -m bench                 everything but gpu and cluster
    python -m bench --only import,load_mnist
    python -m bench --only gpu      lesson 06 on a GPU with JAX and PyTorch (bench/gpu.py)
    python -m bench --only cluster  40 submissions with --jobs 2 against a 2-worker dask cluster on loopback
    python -m bench --no-write      print, leave README.md alone

Benchmarks measure; they never fail for being slow.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "bench" / "README.md"
BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"
GPU_BEGIN, GPU_END = "<!-- gpu-results:begin -->", "<!-- gpu-results:end -->"
CLUSTER_BEGIN, CLUSTER_END = "<!-- cluster-results:begin -->", "<!-- cluster-results:end -->"


def _python(code: str) -> str:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT).stdout


def bench_import(repeat: int = 7) -> list[tuple[str, str]]:
    code = (
        "import time, sys; t = time.perf_counter(); import dlcourse; "
        "print(time.perf_counter() - t, 'tensorflow' in sys.modules)"
    )
    runs = [_python(code).split() for _ in range(repeat)]
    seconds = statistics.median(float(r[0]) for r in runs)
    tf_loaded = any(r[1] == "True" for r in runs)
    return [
        (
            "`import dlcourse`",
            f"{seconds * 1000:.1f} ms (median of {repeat} fresh processes); imports TensorFlow: {'yes' if tf_loaded else 'no'}",
        )
    ]


def bench_load_mnist(repeat: int = 7) -> list[tuple[str, str]]:
    cold_code = "import time, dlcourse; t = time.perf_counter(); dlcourse.load_mnist(); print(time.perf_counter() - t)"
    cold = statistics.median(float(_python(cold_code)) for _ in range(repeat))
    warm_code = (
        "import time, statistics, dlcourse; dlcourse.load_mnist(); ts = []\n"
        "for _ in range(20):\n    t = time.perf_counter(); dlcourse.load_mnist(); ts.append(time.perf_counter() - t)\n"
        "print(statistics.median(ts))"
    )
    warm = float(_python(warm_code))
    return [
        (
            "`load_mnist()` cold (first call in a process: read, decompress, verify SHA-256)",
            f"{cold * 1000:.0f} ms (median of {repeat})",
        ),
        ("`load_mnist()` warm (verified before; returns fresh copies)", f"{warm * 1000:.0f} ms (median of 20)"),
    ]


def bench_notebooks() -> list[tuple[str, str]]:
    import nbformat
    from nbclient import NotebookClient

    rows, total = [], 0.0
    for path in sorted((ROOT / "solutions").glob("*/*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        t = time.perf_counter()
        NotebookClient(
            nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
        ).execute()
        seconds = time.perf_counter() - t
        total += seconds
        rel = path.relative_to(ROOT).as_posix()
        rows.append((f"`{rel}` top to bottom", f"{seconds:.1f} s"))
        print(f"  {rel}: {seconds:.1f} s", flush=True)
    rows.append(("all solution notebooks, total", f"{total:.1f} s"))
    return rows


def _latency_ms(action, settings) -> tuple[float, float]:
    times = []
    for kwargs in settings:
        t = time.perf_counter()
        action(kwargs)
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times), max(times)


def bench_widgets() -> list[tuple[str, str]]:
    """Redraw latency: state change + picture rendered to PNG, as a slider move causes."""
    from dlcourse.widgets.conv_explorer import ConvExplorer, keras_output_size

    explorer = ConvExplorer(size=7, kernel=3)
    explorer.set(stride=2)  # warm up: imports Keras for the shape check
    settings = [
        {"size": n, "kernel": k, "stride": s, "padding": p}
        for n in (5, 8, 12)
        for k in (2, 3, 5)
        for s in (1, 2, 3)
        for p in (0, 1, 2)
    ]
    keras_output_size.cache_clear()
    median, worst = _latency_ms(lambda kw: explorer.set(**kw), settings)
    rows = [
        (
            "conv explorer: slider change (new layer, Keras shape check uncached)",
            f"median {median:.1f} ms, worst {worst:.1f} ms over {len(settings)} settings",
        )
    ]
    explorer.set(size=12, kernel=3, stride=1, padding=2)
    median, worst = _latency_ms(lambda _: explorer.step(), range(50))
    rows.append(
        (
            "conv explorer: animation step (16×16 padded input)",
            f"median {median:.1f} ms, worst {worst:.1f} ms over 50 steps",
        )
    )
    from dlcourse.widgets.playground import Playground

    pg = Playground("spiral", hidden=(8, 8, 4), activation="tanh")
    pg.train(1)  # warm up: traces the training loop
    median, worst = _latency_ms(lambda _: pg.train(epochs=5), range(30))
    rows.append(
        (
            "playground: one play tick (5 epochs on 200 points + redraw)",
            f"median {median:.0f} ms, worst {worst:.0f} ms over 30 ticks",
        )
    )
    pg.set(dataset="mnist")
    pg.train(1)
    median, worst = _latency_ms(lambda _: pg.train(epochs=1), range(10))
    rows.append(
        (
            "playground, MNIST subset: one play tick (1 epoch on 2,000 digits + redraw)",
            f"median {median:.0f} ms, worst {worst:.0f} ms over 10 ticks",
        )
    )
    import keras

    keras.utils.set_random_seed(0)
    cnn = keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            keras.layers.Conv2D(16, 3, activation="relu"),
            keras.layers.MaxPooling2D(2),
            keras.layers.Conv2D(32, 3, activation="relu"),
            keras.layers.MaxPooling2D(2),
            keras.layers.Flatten(),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    from dlcourse.data import load_mnist
    from dlcourse.widgets.feature_maps import FeatureMapExplorer

    images = load_mnist()[1][0][:20, :, :, None].astype("float32") / 255
    explorer = FeatureMapExplorer(cnn, images, layer=cnn.layers[2].name)
    explorer.set(image=1)
    median, worst = _latency_ms(
        lambda i: explorer.set(image=i % 20, channel=i % 16, row=i % 11, col=(3 * i) % 11), range(20)
    )
    rows.append(
        (
            "feature-map explorer: new image / map / position (maps, arithmetic, redraw)",
            f"median {median:.0f} ms, worst {worst:.0f} ms over 20 changes",
        )
    )

    from dlcourse.widgets.latent_explorer import LatentExplorer

    decoder = keras.Sequential(
        [keras.Input((2,)), keras.layers.Dense(64, activation="relu"), keras.layers.Dense(784, activation="sigmoid")]
    )
    denoiser = keras.Sequential(
        [keras.Input((784,)), keras.layers.Dense(256, activation="relu"), keras.layers.Dense(784, activation="sigmoid")]
    )
    codes = np.random.default_rng(0).normal(size=(10000, 2))
    latent = LatentExplorer(decoder, codes, np.arange(10000) % 10, denoiser=denoiser, images=images.reshape(-1, 784))
    median, worst = _latency_ms(
        lambda i: latent.set(z1=float(np.sin(i)), z2=float(np.cos(i)), noise=(i % 10) / 10), range(20)
    )
    rows.append(
        (
            "latent explorer: move the point / noise level (decode, denoise, redraw)",
            f"median {median:.0f} ms, worst {worst:.0f} ms over 20 moves",
        )
    )

    from dlcourse.widgets.unroller import Unroller

    lstm = keras.layers.LSTM(32)
    lstm.build((None, None, 1))
    unroller = Unroller(lstm, np.sin(np.arange(24) / 3), t=0)
    median, worst = _latency_ms(lambda i: unroller.show(i), range(24))
    rows.append(
        (
            "unroller: one time step (gates, states, cell diagram, redraw)",
            f"median {median:.0f} ms, worst {worst:.0f} ms over 24 steps",
        )
    )

    from dlcourse.widgets.draw_digit import DrawDigit

    pad = DrawDigit(cnn, interval=0)  # predict on every move (the widget's default waits 0.12 s between)
    pad.start(60, 60)
    median, worst = _latency_ms(lambda i: pad.move(60 + 4 * i, 60 + 3 * (i % 20)), range(40))
    rows.append(
        (
            "draw a digit: one mouse move (stroke, MNIST preprocessing, predict, redraw)",
            f"median {median:.0f} ms, worst {worst:.0f} ms over 40 moves",
        )
    )
    return rows


def _solution_functions(notebook: Path, grade_id: str, namespace: dict) -> dict:
    """Execute one solution cell of a notebook (by grade_id) into ``namespace``."""
    import nbformat

    for cell in nbformat.read(notebook, as_version=4).cells:
        if cell.metadata.get("nbgrader", {}).get("grade_id") == grade_id:
            exec(compile(cell.source, f"{notebook.name}:{grade_id}", "exec"), namespace)  # noqa: S102 - the course's own solution cell
            return namespace
    raise LookupError(f"no cell {grade_id!r} in {notebook}")


def bench_mnist_project() -> list[tuple[str, str]]:
    """Lesson 06: the notes' two baselines and the reference solution, accuracy and time."""
    import json
    import shutil
    import tempfile

    import keras
    import nbformat
    from nbclient import NotebookClient

    from dlcourse.data import load_mnist

    lesson = ROOT / "solutions" / "06_mnist_project"
    rows = []
    with tempfile.TemporaryDirectory(prefix="dlcourse-bench-") as tmp:
        shutil.copy(lesson / "06a_notes_pipeline.ipynb", tmp)
        nb = nbformat.read(Path(tmp) / "06a_notes_pipeline.ipynb", as_version=4)
        epochs = [c for c in nb.cells if "EPOCHS = 3 " in c.source]
        if len(epochs) != 1:
            raise LookupError("06a_notes_pipeline.ipynb has no `EPOCHS = 3` line to set to the notes' 10")
        epochs[0].source = epochs[0].source.replace("EPOCHS = 3 ", "EPOCHS = 10 ")  # the notes' training length
        NotebookClient(nb, timeout=900, kernel_name="python3", resources={"metadata": {"path": tmp}}).execute()
        for name, b in json.loads((Path(tmp) / "baselines.json").read_text()).items():
            rows.append(
                (
                    f'MNIST, notes\' baseline "{name}" ({b["params"]:,} parameters; {b["epochs"]} epochs, batch 200)',
                    f"test accuracy {b['accuracy']:.2%}, {b['seconds']:.0f} s (fit + evaluate)",
                )
            )
            print(f"  baseline {name}: {b['accuracy']:.2%} in {b['seconds']:.0f} s", flush=True)

    (x_train, y_train), (x_test, y_test) = load_mnist()
    x_train = x_train[..., None].astype("float32") / 255
    x_test = x_test[..., None].astype("float32") / 255
    ns = _solution_functions(lesson / "06b_project.ipynb", "project_model", {"keras": keras, "np": np})
    log = []

    class TestAccuracy(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.start, self.evaluating = time.perf_counter(), 0.0

        def on_epoch_end(self, epoch, logs=None):
            t = time.perf_counter()
            trained = t - self.start - self.evaluating  # seconds of training so far, evaluations excluded
            acc = float(np.mean(self.model.predict(x_test, batch_size=1000, verbose=0).argmax(1) == y_test))
            self.evaluating += time.perf_counter() - t
            log.append((epoch + 1, trained, acc))
            print(f"  reference epoch {epoch + 1}: {trained:.0f} s, test accuracy {acc:.2%}", flush=True)

    keras.utils.set_random_seed(0)  # as the notebook's training cell
    model = ns["build_project_model"]()
    original_fit = model.fit
    model.fit = lambda *a, **kw: original_fit(*a, **{**kw, "callbacks": [TestAccuracy()]})
    ns["train_project_model"](model, x_train, y_train)
    final, train_seconds = log[-1][2], log[-1][1]
    rows.append(
        (
            f"MNIST, reference solution ({model.count_params():,} parameters, {len(log)} epochs)",
            f"test accuracy {final:.2%}, training {train_seconds:.0f} s",
        )
    )
    reached = [(e, s) for e, s, a in log if a >= 0.99]
    rows.append(
        (
            "MNIST, reference solution: time to 99.0% test accuracy",
            f"{reached[0][1]:.0f} s (epoch {reached[0][0]})" if reached else "not reached",
        )
    )
    return rows


def bench_grading(n: int = 40) -> list[tuple[str, str]]:
    """`python -m grader autograde` on n lesson-02 submissions at 1 and 2 jobs, and plain nbgrader."""
    import shutil
    import tempfile

    from grader import autograde, course

    lesson, nb = "02_conv_pool_arithmetic", "02_conv_pool_arithmetic.ipynb"
    rows = []
    with tempfile.TemporaryDirectory(prefix="dlcourse-bench-grading-") as tmp:
        subs = Path(tmp) / "submissions"
        for i in range(n):  # alternately solved and blank, as a class hands them in
            src = course.SOLUTIONS if i % 2 == 0 else course.LESSONS
            (subs / f"s{i:02d}" / lesson).mkdir(parents=True)
            shutil.copy(src / lesson / nb, subs / f"s{i:02d}" / lesson / nb)
        seconds = {}
        for jobs in (1, 2):
            t = time.perf_counter()
            autograde.autograde(lesson, subs, Path(tmp) / f"out{jobs}", jobs=jobs, progress=lambda *_: None)
            seconds[jobs] = time.perf_counter() - t
            print(f"  grader, {jobs} job(s): {seconds[jobs]:.0f} s", flush=True)
            rows.append(
                (
                    f"grading {n} lesson-02 submissions: `python -m grader autograde --jobs {jobs}` (sandboxed)",
                    f"{seconds[jobs]:.0f} s, {seconds[jobs] / n:.1f} s per submission",
                )
            )
        rows.append(("grading: speed-up of 2 jobs over 1 (2 cores)", f"{seconds[1] / seconds[2]:.2f}x"))
        plain = Path(tmp) / "plain"
        shutil.copytree(subs, plain / "submitted")
        (plain / "source" / lesson).mkdir(parents=True)
        shutil.copy(course.SOLUTIONS / lesson / nb, plain / "source" / lesson / nb)
        overrides = [
            f"--CourseDirectory.root={plain}",
            f"--CourseDirectory.db_url=sqlite:///{plain}/gradebook.db",
            "--CourseDirectory.source_directory=source",
            "--CourseDirectory.release_directory=release",
            "--CourseDirectory.submitted_directory=submitted",
            "--CourseDirectory.autograded_directory=autograded",
        ]
        course.nbgrader("generate_assignment", lesson, *overrides)
        t = time.perf_counter()
        course.nbgrader("autograde", lesson, *overrides)
        plain_seconds = time.perf_counter() - t
        print(f"  plain nbgrader autograde: {plain_seconds:.0f} s", flush=True)
        rows.append(
            (
                f"grading {n} lesson-02 submissions: plain `nbgrader autograde` (no sandbox, one at a time, no feedback)",
                f"{plain_seconds:.0f} s, {plain_seconds / n:.1f} s per submission",
            )
        )
    return rows


def _lesson02_class(folder: Path, n: int) -> Path:
    """n lesson-02 submissions, alternately the solution and the blank lesson, as a class hands them in."""
    import shutil

    from grader import course

    lesson, nb = "02_conv_pool_arithmetic", "02_conv_pool_arithmetic.ipynb"
    for i in range(n):
        src = course.SOLUTIONS if i % 2 == 0 else course.LESSONS
        (folder / f"s{i:02d}" / lesson).mkdir(parents=True)
        shutil.copy(src / lesson / nb, folder / f"s{i:02d}" / lesson / nb)
    return folder


def _start_cluster(folder: Path, workers: int) -> tuple[str, list[subprocess.Popen]]:
    """`dask scheduler` and ``workers`` `dask worker --nthreads 1` on loopback; returns the address and processes."""
    import json

    import distributed

    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), str(Path(distributed.__file__).resolve().parent.parent)])
    )
    file = folder / "scheduler.json"
    log = (folder / "cluster.log").open("wb")  # the processes hold it until they end
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "dask",
                "scheduler",
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--no-dashboard",
                "--scheduler-file",
                str(file),
            ],
            env=env,
            stdout=log,
            stderr=log,
        )
    ]
    while not file.exists():
        time.sleep(0.2)
    time.sleep(0.2)
    address = json.loads(file.read_text())["address"]
    for i in range(workers):
        procs.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "dask",
                    "worker",
                    address,
                    "--nworkers",
                    "1",
                    "--nthreads",
                    "1",
                    "--memory-limit",
                    "2GiB",
                    "--no-dashboard",
                    "--host",
                    "127.0.0.1",
                    "--local-directory",
                    str(folder / f"w{i}"),
                ],
                env=env,
                stdout=log,
                stderr=log,
            )
        )
    with distributed.Client(address, timeout=30) as client:
        client.wait_for_workers(workers, timeout=300)
    return address, procs


def bench_grading_cluster(n: int = 40, repeat: int = 1) -> list[tuple[str, str]]:
    """The same class graded with `--jobs 2` here and on a 2-worker dask cluster on this machine (``repeat`` > 1: runs alternated)."""
    import tempfile

    try:
        import distributed  # noqa: F401
    except ImportError:
        return [("grading on a dask cluster", "not measured: dask.distributed is not installed")]
    from grader import autograde, cluster

    lesson = "02_conv_pool_arithmetic"
    rows = []
    with tempfile.TemporaryDirectory(prefix="dlcourse-bench-cluster-") as tmp:
        subs = _lesson02_class(Path(tmp) / "submissions", n)
        t = time.perf_counter()
        address, procs = _start_cluster(Path(tmp), 2)
        start_seconds = time.perf_counter() - t
        try:
            t = time.perf_counter()
            grid = cluster.Cluster(address, progress=lambda *_: None)
            grid.check()
            check_seconds = time.perf_counter() - t
            master, _ = autograde.prepare(lesson, Path(tmp) / "probe")
            t = time.perf_counter()
            grid.send_master(master)
            send_seconds = time.perf_counter() - t
            seconds: dict[str, list[float]] = {"here": [], "cluster": []}
            busy: dict[str, list[float]] = {"here": [], "cluster": []}
            for r in range(repeat):
                for where in ("here", "cluster"):
                    t = time.perf_counter()
                    results = autograde.autograde(
                        lesson,
                        subs,
                        Path(tmp) / f"out-{where}-{r}",
                        jobs=2,
                        progress=lambda *_: None,
                        cluster={"address": address} if where == "cluster" else None,
                    )
                    seconds[where].append(time.perf_counter() - t)
                    busy[where].append(sum(x.seconds for x in results) / (2 * seconds[where][-1]))
                    print(
                        f"  {where}, run {r + 1}: {seconds[where][-1]:.0f} s, slots busy {busy[where][-1]:.1%}",
                        flush=True,
                    )
            same = all(
                (Path(tmp) / f"out-here-{r}" / "grades.csv").read_bytes()
                == (Path(tmp) / f"out-cluster-{r}" / "grades.csv").read_bytes()
                for r in range(repeat)
            )
            # One submission's trip without grading: its parcel out, a result with its feedback back.
            sample = next(x for x in results if x.feedback)
            parcel = cluster.pack_submission(
                next(x for x in _class_submissions(subs, lesson) if x.student_id == sample.student_id), []
            )
            trips = []
            for _ in range(20):
                t = time.perf_counter()
                grid.client.submit(lambda p, r: r, parcel, sample, pure=False).result()
                trips.append(time.perf_counter() - t)
            trip = statistics.median(trips)
            grid.close()
        finally:
            for proc in reversed(procs):
                proc.terminate()
            for proc in procs:
                proc.wait(60)
    here, there = statistics.median(seconds["here"]), statistics.median(seconds["cluster"])
    spread = (max(seconds["here"]) - min(seconds["here"])) / here

    def runs(values):
        return ", ".join(f"{v:.0f}" for v in values) + " s"

    rows.append(
        (
            (
                f"grading {n} lesson-02 submissions: `--jobs 2` here against a 2-worker dask cluster on the same machine "
                f"(`--scheduler`, loopback{', runs alternated' if repeat > 1 else ''})"
            ),
            f"here {runs(seconds['here'])}; cluster {runs(seconds['cluster'])}; cluster overhead "
            f"{there / here - 1:+.1%}{' (medians)' if repeat > 1 else ''}; same grades.csv: {'yes' if same else 'NO'}"
            + (f"; spread of the runs here {spread:.0%}" if repeat > 1 else "")
            + f"; load average at the end {os.getloadavg()[0]:.1f}",
        )
    )
    rows.append(
        (
            "dask cluster: share of the wall time the 2 slots spent in `grade_one` (1 = no idle slot)",
            (
                f"here {', '.join(f'{b:.1%}' for b in busy['here'])}; "
                f"cluster {', '.join(f'{b:.1%}' for b in busy['cluster'])}"
            ),
        )
    )
    rows.append(
        (
            "dask cluster: fixed costs of a run (2 workers on loopback)",
            (
                f"connect and check every worker's environment {check_seconds:.1f} s; master course to every worker "
                f"{send_seconds:.1f} s; starting the scheduler and workers (not part of a run) {start_seconds:.0f} s"
            ),
        )
    )
    rows.append(
        (
            (
                "dask cluster: one lesson-02 submission's round trip without grading (notebook out, result and "
                "feedback back)"
            ),
            f"{trip * 1000:.0f} ms (median of 20)",
        )
    )
    return rows


def _class_submissions(folder: Path, lesson: str):
    from grader.submissions import collect

    return collect(folder, lesson, folder.parent / "unzipped")[0]


def bench_browser() -> list[tuple[str, str]]:
    """Input-to-display latency of each visualizer in JupyterLab in headless Chromium.

    Runs the browser tests of the lessons that have a visualizer (tests/browser), which
    time each interaction from the input event to the updated picture on the page.
    """
    import json
    import tempfile

    with tempfile.TemporaryDirectory(prefix="dlcourse-bench-browser-") as tmp:
        report = Path(tmp) / "latency.json"
        env = dict(os.environ, DLCOURSE_LATENCY_JSON=str(report))
        select = "lesson_runs_in_the_browser and not 00_ and not 06a"
        done = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/browser", "-k", select],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0 or not report.exists():
            print(done.stdout[-3000:], done.stderr[-2000:])
            return [
                ("visualizers in Chromium", "not measured: the browser tests failed or were skipped (see their output)")
            ]
        rows = json.loads(report.read_text())
    return [
        (
            f"in JupyterLab + Chromium: {r['visualizer'].replace('_', ' ')}, {r['action']}",
            f"median {r['median_s'] * 1000:.0f} ms, worst {r['worst_s'] * 1000:.0f} ms over {r['n']} (input event to new picture on the page)",
        )
        for r in rows
    ]


def bench_gpu() -> list[tuple[str, str]]:
    """Lesson 06's reference model with JAX and PyTorch, on the GPU and on 2 CPU cores (bench/gpu.py)."""
    from bench.gpu import bench_gpu as run

    return run()


BENCHES = {
    "import": bench_import,
    "load_mnist": bench_load_mnist,
    "widgets": bench_widgets,
    "notebooks": bench_notebooks,
    "mnist": bench_mnist_project,
    "grading": bench_grading,
    "browser": bench_browser,
    "gpu": bench_gpu,
    "cluster": bench_grading_cluster,
}
# Run only when named: gpu needs JAX or PyTorch (and a GPU to be worth it); cluster needs dask.distributed
# (`pip install -e .[cluster]`) and grades 40 submissions here and again on a cluster.
ON_REQUEST = {"gpu", "cluster"}
OWN_TABLE = {
    "gpu": (GPU_BEGIN, GPU_END),
    "cluster": (CLUSTER_BEGIN, CLUSTER_END),
}  # tables of their own, rewritten whole


def machine(gpu: bool = False) -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kb = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1))
        mem = f", {kb / 2**20:.0f} GiB RAM"
    except (OSError, AttributeError):
        pass
    used = "the GPU named in the table" if gpu else "no GPU used"
    return f"{cpu}, {os.cpu_count()} cores{mem}, {used}; Python {platform.python_version()}"


def _existing_rows(begin: str = BEGIN, end: str = END) -> list[tuple[str, str]]:
    block = re.search(re.escape(begin) + "(.*?)" + re.escape(end), README.read_text(), flags=re.DOTALL)
    rows = []
    for line in (block.group(1) if block else "").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
        if line.startswith("| ") and len(cells) == 2 and cells[0] not in ("benchmark", "---"):
            rows.append((cells[0], cells[1]))
    return rows


def write(rows: list[tuple[str, str]], table_of: str | None = None) -> None:
    """Put ``rows`` in the table: a benchmark measured again replaces its row, the rest stay.

    ``table_of``: a benchmark with a table of its own (``OWN_TABLE``: gpu, cluster), rewritten whole.
    """
    begin, end = OWN_TABLE[table_of] if table_of else (BEGIN, END)
    gpu = table_of == "gpu"
    if not table_of:
        new = dict(rows)
        rows = [(k, new.pop(k, v)) for k, v in _existing_rows()] + list(new.items())
    table = [
        begin,
        f"Measured {datetime.date.today().isoformat()} on: {machine(gpu)}.",
        "",
        "| benchmark | result |",
        "| --- | --- |",
        *[f"| {k} | {v} |" for k, v in rows],
        end,
    ]
    text = README.read_text()
    if begin not in text:
        raise SystemExit(f"{README.relative_to(ROOT)} has no {begin} ... {end} block to write into")
    text = re.sub(re.escape(begin) + ".*?" + re.escape(end), lambda _: "\n".join(table), text, flags=re.DOTALL)
    README.write_text(text)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument(
        "--only", help=f"comma-separated subset of {','.join(BENCHES)} (gpu and cluster run only when named)"
    )
    parser.add_argument("--no-write", action="store_true", help="print the results, leave bench/README.md alone")
    args = parser.parse_args()
    chosen = args.only.split(",") if args.only else [b for b in BENCHES if b not in ON_REQUEST]
    unknown = [name for name in chosen if name not in BENCHES]
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(BENCHES)}")
    rows: list[tuple[str, str]] = []
    own: dict[str, list[tuple[str, str]]] = {}
    for name in chosen:
        print(f"bench: {name} ...", flush=True)
        (own.setdefault(name, []) if name in OWN_TABLE else rows).extend(BENCHES[name]())
    for k, v in rows + [row for table in own.values() for row in table]:
        print(f"{k}: {v}")
    if not args.no_write:
        if rows:
            write(rows)
        for name, table in own.items():
            write(table, table_of=name)
        print(f"updated {README.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
