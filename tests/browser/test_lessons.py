"""Every lesson runs in JupyterLab in Chromium, and every visualizer answers a learner's input.

Each solution notebook (working code; a copy, served as ``solved/``) is opened in the
browser and run with *Run All*: the session's one run of it, which tests/lessons reads
(every cell ran, no error, every visible and hidden test passed). Then no cell may have errored, no widget may show
"Error displaying widget" or stay "Loading widget", and the page may log no errors.
Every explanatory diagram the lesson draws (``dlc.diagrams``) must show as a picture; a
screenshot of each goes to ``diagrams/``. The lesson's visualizers are then used as a
learner would, the time from input to updated picture is reported, and a screenshot of
each is written (to docs/images with `make screenshots`).
"""

from __future__ import annotations

import ast
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from lab_driver import (
    cell_index,
    notebook_json,
    open_notebook,
    output,
    run_all,
    slider_handle,
    slider_readout,
    slider_value,
    timed_change,
    widget_problems,
)

from tests.lessons import solution_runs

pytestmark = [pytest.mark.browser, pytest.mark.notebooks]

REPO = Path(__file__).resolve().parents[2]
REPEAT = 3  # timed repetitions of each cheap interaction
NOTEBOOKS = sorted(p.relative_to(REPO / "solutions").as_posix() for p in (REPO / "solutions").glob("*/*.ipynb"))


def status_text(area, pattern: str):
    """The status text (an ipywidgets Label or HTML) that matches ``pattern``."""
    return area.locator(".widget-label, .widget-html-content").filter(has_text=re.compile(pattern)).first


def press_slider(page, area, label: str, key: str = "ArrowRight") -> None:
    handle = slider_handle(area, label)
    handle.focus()
    page.keyboard.press(key)


def use_playground(page, area, record):
    status = status_text(area, r"^epoch \d+")
    epoch = lambda: int(re.match(r"epoch (\d+)", status.inner_text()).group(1))  # noqa: E731
    picture = area.locator("img").first
    record(
        "hidden layers slider (rebuild + redraw)",
        timed_change(page, lambda: press_slider(page, area, "hidden layers", "ArrowLeft"), picture),
    )
    page.wait_for_function("el => /^epoch 0:/.test(el.innerText)", arg=status.element_handle())
    timed_change(page, lambda: press_slider(page, area, "hidden layers", "ArrowRight"), picture)
    step = area.locator("button", has_text=re.compile(r"^\s*step\s*$"))
    for _ in range(REPEAT):
        before = epoch()
        record("step (1 epoch + redraw)", timed_change(page, step.click, picture))
        page.wait_for_function(
            "([el, n]) => !el.innerText.startsWith(`epoch ${n}:`)", arg=[status.element_handle(), before]
        )
        assert epoch() > before, f"step did not train: epoch {before} -> {epoch()}"
    play = area.locator(".widget-play button").first  # toggles play / pause
    record("play (first tick: 5 epochs + redraw)", timed_change(page, play.click, picture))
    page.wait_for_function(
        "el => Number(/^epoch (\\d+)/.exec(el.innerText)[1]) >= 150", arg=status.element_handle(), timeout=120_000
    )
    play.click()
    paused = epoch()
    page.wait_for_timeout(1500)
    assert epoch() - paused <= 10, f"pause did not stop training: epoch {paused} -> {epoch()}"


def use_conv_explorer(page, area, record):
    status = status_text(area, r"W2|output")
    before = status.inner_text()
    kernel = int(slider_value(area, "kernel F"))
    for _ in range(REPEAT):
        record(
            "kernel slider (geometry + redraw)",
            timed_change(page, lambda: press_slider(page, area, "kernel F"), area.locator("img").first),
        )
    assert int(slider_value(area, "kernel F")) == kernel + REPEAT
    page.wait_for_function("([el, old]) => el.innerText !== old", arg=[status.element_handle(), before])
    for _ in range(REPEAT):  # back to the lesson's configuration for the screenshot
        press_slider(page, area, "kernel F", "ArrowLeft")
    page.wait_for_function("([el, old]) => el.innerText === old", arg=[status.element_handle(), before])
    step = area.locator("button", has_text="step")
    frame = slider_value(area, "step")
    record("step button (animation frame)", timed_change(page, step.click, area.locator("img").first))
    # The picture is redrawn before the slider's readout follows: wait for the readout.
    readout = slider_readout(area, "step")
    page.wait_for_function("([el, old]) => el.innerText.trim() !== old", arg=[readout.element_handle(), frame])
    assert slider_value(area, "step") != frame, "the step button did not advance the animation"


def use_feature_maps(page, area, record):
    status = status_text(area, r"maps of")
    for _ in range(REPEAT):
        record(
            "map slider (maps + arithmetic + redraw)",
            timed_change(page, lambda: press_slider(page, area, "map"), area.locator("img").first),
        )
    page.wait_for_function(f"el => /map {REPEAT} at/.test(el.innerText)", arg=status.element_handle())
    record("image slider", timed_change(page, lambda: press_slider(page, area, "image"), area.locator("img").first))


def use_unroller(page, area, record):
    status = status_text(area, r"^t = \d+")
    t = int(re.match(r"t = (\d+)", status.inner_text()).group(1))
    for _ in range(REPEAT):
        record(
            "time slider (gates + redraw)",
            timed_change(page, lambda: press_slider(page, area, "time t", "ArrowLeft"), area.locator("img").first),
        )
    page.wait_for_function(
        "([el, t]) => el.innerText.startsWith(`t = ${t}:`)", arg=[status.element_handle(), t - REPEAT]
    )


def use_latent_explorer(page, area, record):
    status = status_text(area, r"^code z = ")
    before = status.inner_text()
    for _ in range(REPEAT):
        record(
            "z1 slider (decode + redraw)",
            timed_change(page, lambda: press_slider(page, area, "code z1"), area.locator("img").first),
        )
    page.wait_for_function("([el, old]) => el.innerText !== old", arg=[status.element_handle(), before])
    record(
        "noise slider (denoise + redraw)",
        timed_change(page, lambda: press_slider(page, area, "noise"), area.locator("img").first),
    )


def bar_percentages(bars) -> list[int]:
    """The ten class probabilities shown, in percent (after the "prediction ..." heading)."""
    return [int(p) for p in re.findall(r"(\d+)%", bars.inner_text())][-10:]


def use_draw_digit(page, area, record):
    bars = area.locator(".widget-html-content").filter(has_text="9").last
    preview = area.locator("img").first
    record("Clear button", timed_change(page, area.locator("button", has_text="Clear").click, preview))
    page.wait_for_function("el => !/[1-9]\\d*%/.test(el.innerText)", arg=bars.element_handle())
    canvas = area.locator("canvas").last
    box = canvas.bounding_box()
    x, top = box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.15

    def stroke(length=0.7, moves=15, dx=0.0):  # a "1": a vertical line down the middle
        page.mouse.move(x + dx, top)
        page.mouse.down()
        for k in range(1, moves + 1):
            page.mouse.move(x + dx, top + k * box["height"] * length / moves)
        page.mouse.up()

    timed_change(page, stroke, preview)
    page.wait_for_function("el => /[1-9]\\d*%/.test(el.innerText)", arg=bars.element_handle())
    for k in range(1, REPEAT + 1):  # thicken the top of the line a little: the picture updates on mouse-up
        record(
            "short stroke (preprocess + predict + redraw)",
            timed_change(page, lambda k=k: stroke(0.08, 2, dx=2.0 * k), preview),
        )
    probabilities = bar_percentages(bars)
    assert len(probabilities) == 10, bars.inner_text()
    assert max(range(10), key=probabilities.__getitem__) == 1, f"a vertical stroke was not read as a 1: {probabilities}"


DIAGRAM_CALL = re.compile(r"\bdlc\.diagrams\.(\w+)\(")


def diagram_cells(sources: list[str]) -> dict[int, list[str]]:
    """Code cells that draw a ``dlc.diagrams`` picture: index -> the diagrams' names."""
    return {i: found for i, source in enumerate(sources) if (found := DIAGRAM_CALL.findall(source))}


@dataclass
class Visualizer:
    name: str  # also the screenshot's file name in docs/images
    marker: str  # text of the cell that shows it
    use: Callable


VISUALIZERS = {
    "01_shallow_vs_deep/01_shallow_vs_deep.ipynb": [Visualizer("playground", "Playground(", use_playground)],
    "02_conv_pool_arithmetic/02_conv_pool_arithmetic.ipynb": [
        Visualizer("conv_explorer", "ConvExplorer(size=5", use_conv_explorer)
    ],
    "03_cnns/03_cnns.ipynb": [Visualizer("feature_map_explorer", "FeatureMapExplorer(cnn", use_feature_maps)],
    "04_rnn_lstm/04_rnn_lstm.ipynb": [Visualizer("unroller", "Unroller(lstm_layer", use_unroller)],
    "05_autoencoders/05_autoencoders.ipynb": [Visualizer("latent_explorer", "LatentExplorer(", use_latent_explorer)],
    "06_mnist_project/06b_project.ipynb": [Visualizer("draw_digit", "DrawDigit(", use_draw_digit)],
}


def test_every_visualizer_has_a_browser_check():
    """A new visualizer (a subclass of ``Visualizer`` in dlcourse/widgets) needs an entry in VISUALIZERS."""
    classes = set()
    for module in (REPO / "dlcourse" / "widgets").glob("*.py"):
        for node in ast.walk(ast.parse(module.read_text())):
            if isinstance(node, ast.ClassDef) and any(getattr(b, "id", None) == "Visualizer" for b in node.bases):
                classes.add(node.name)
    covered = {v.marker.split("(")[0] for vs in VISUALIZERS.values() for v in vs}
    assert classes, "no Visualizer subclasses found in dlcourse/widgets"
    assert covered == classes, f"visualizers without a browser check: {sorted(classes - covered)}"


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda n: n.split("/")[-1].removesuffix(".ipynb"))
def test_lesson_runs_in_the_browser(page, lab, notebook, screenshots, latencies):
    sources = open_notebook(page, lab, f"solved/{notebook}")
    start = time.perf_counter()
    problems = run_all(page)
    # This run is the session's run of the solution: tests/lessons checks its outputs.
    solution_runs.record(notebook, notebook_json(page), time.perf_counter() - start, "JupyterLab (Run All)")
    assert not problems, f"{notebook} in JupyterLab:\n" + "\n".join(problems)
    assert not widget_problems(page), widget_problems(page)

    for index, names in diagram_cells(sources).items():  # each explanatory picture drawn, and kept
        area = output(page, index)
        drawn = area.locator("img").evaluate_all("els => els.filter(e => e.complete && e.naturalWidth > 0).length")
        assert drawn >= len(names), f"cell {index} draws {', '.join(names)} but shows {drawn} picture(s)"
        area.screenshot(path=screenshots / "diagrams" / f"{'+'.join(names)}.png")

    for vis in VISUALIZERS.get(notebook, []):
        area = output(page, cell_index(sources, vis.marker))
        assert area.locator(".jupyter-widgets").count(), f"{vis.name}: no live widget in the output"
        vis.use(page, area, lambda action, seconds, name=vis.name: latencies.append((name, action, seconds)))
        area.screenshot(path=screenshots / f"{vis.name}.png")

    assert not widget_problems(page, settle_s=5), widget_problems(page)
    assert not page.errors, "the page logged errors:\n" + "\n".join(page.errors)


def test_run_all_reports_an_unsolved_exercise(page, lab):
    """The check above can fail: a lesson as released stops at its first exercise."""
    sources = open_notebook(page, lab, "lessons/02_conv_pool_arithmetic/02_conv_pool_arithmetic.ipynb")
    problems = run_all(page)
    assert problems, "Run All on an unsolved lesson reported nothing"
    assert "NotImplementedError" in problems[0], problems
    assert any(p.endswith("did not run") for p in problems), problems
    assert int(problems[0].split()[1].rstrip(":")) > cell_index(sources, "def conv_output_size(")
