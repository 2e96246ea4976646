"""Driving a notebook in JupyterLab through Playwright, as a learner would.

The server runs with ``expose_app_in_browser``, so ``window.jupyterapp`` gives these
helpers JupyterLab's own commands and models: they wait for a kernel, run all cells
and read outputs from the notebook model rather than guessing from pixels. Input that
a learner makes (typing, sliders, buttons, drawing) goes through real mouse and
keyboard events.
"""

from __future__ import annotations

import re
import time

# Text that JupyterLab's widget manager shows when a widget cannot be displayed.
WIDGET_FAILURES = ("Error displaying widget", "model not found")
WIDGET_LOADING = "Loading widget"

_NOTEBOOK_READY = """() => {
    const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
    const kernel = w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel;
    return !!(w && w.content && w.context && w.context.isReady && kernel && kernel.status === 'idle');
}"""

_MARK_CELLS = """() => {
    const cells = window.jupyterapp.shell.currentWidget.content.widgets;
    cells.forEach((cell, i) => cell.node.setAttribute('data-dlc-cell', String(i)));
    return cells.map(cell => cell.model.type === 'code' ? cell.model.sharedModel.getSource() : '');
}"""

_RUN_ALL = """async (timeoutMs) => {
    const app = window.jupyterapp;
    const kernel = app.shell.currentWidget.sessionContext.session.kernel;
    const run = (async () => {
        await app.commands.execute('notebook:run-all-cells');
        while (kernel.status !== 'idle') await new Promise(r => setTimeout(r, 100));
        return true;
    })();
    return Promise.race([run, new Promise(r => setTimeout(() => r(false), timeoutMs))]);
}"""

_PROBLEMS = """() => {
    const problems = [];
    window.jupyterapp.shell.currentWidget.content.widgets.forEach((cell, i) => {
        if (cell.model.type !== 'code' || !cell.model.sharedModel.getSource().trim()) return;
        if (cell.model.executionCount === null) problems.push(`cell ${i} did not run`);
        for (const out of cell.model.outputs.toJSON())
            if (out.output_type === 'error') problems.push(`cell ${i}: ${out.ename}: ${out.evalue}`);
    });
    return problems;
}"""


def open_notebook(page, lab, path: str, timeout_s: float = 120) -> list[str]:
    """Open ``path`` (relative to the server root), wait for an idle kernel.

    Returns the cells' sources ('' for Markdown cells); each cell's node gets
    ``data-dlc-cell="<index>"``.
    """
    page.goto(lab.url(path))
    page.wait_for_function(_NOTEBOOK_READY, timeout=timeout_s * 1000)
    return page.evaluate(_MARK_CELLS)


def run_all(page, timeout_s: float = 600) -> list[str]:
    """Run all cells (stops at an error, as JupyterLab does); return what went wrong:
    cells with an error output, code cells that never ran, a run past ``timeout_s``."""
    finished = page.evaluate(_RUN_ALL, timeout_s * 1000)
    problems = page.evaluate(_PROBLEMS)
    return problems if finished else [f"Run All did not finish in {timeout_s:.0f} s", *problems]


def notebook_json(page) -> dict:
    """The open notebook as nbformat JSON, outputs included, from JupyterLab's model."""
    return page.evaluate("() => window.jupyterapp.shell.currentWidget.context.model.toJSON()")


def widget_problems(page, settle_s: float = 30) -> list[str]:
    """Widget outputs that failed to display, or are still loading after ``settle_s``."""
    notebook = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook")
    deadline = time.monotonic() + settle_s
    while WIDGET_LOADING in notebook.inner_text() and time.monotonic() < deadline:
        time.sleep(0.5)
    text = notebook.inner_text()
    found = [f"{phrase!r} shown in the page" for phrase in WIDGET_FAILURES if phrase in text]
    if WIDGET_LOADING in text:
        found.append(f"{WIDGET_LOADING!r} still shown after {settle_s:.0f} s")
    return found


def cell_index(sources: list[str], marker: str) -> int:
    """Index of the first code cell whose source contains ``marker``."""
    for i, source in enumerate(sources):
        if marker in source:
            return i
    raise AssertionError(f"no cell contains {marker!r}")


def output(page, index: int):
    """The output area of cell ``index``, scrolled into view."""
    area = page.locator(f"[data-dlc-cell='{index}'] .jp-OutputArea").first
    area.scroll_into_view_if_needed()
    return area


def _slider(area, label: str):
    """The ipywidgets slider whose description is exactly ``label``."""
    name = area.page.locator(".widget-label", has_text=re.compile(f"^{re.escape(label)}$"))
    return area.locator(".widget-slider").filter(has=name)


def slider_handle(area, label: str):
    """The draggable handle of the slider described as ``label`` (it takes arrow keys)."""
    return _slider(area, label).locator(".noUi-handle").first


def slider_readout(area, label: str):
    """The readout (the number shown beside it) of the slider described as ``label``."""
    return _slider(area, label).locator(".widget-readout").first


def slider_value(area, label: str) -> str:
    """The value the slider described as ``label`` shows."""
    return slider_readout(area, label).inner_text().strip()


def timed_change(page, action, watched, timeout_s: float = 30) -> float:
    """Seconds from ``action()`` until the element ``watched`` (a locator) shows something
    new: a new ``src`` for an image, new text otherwise."""
    handle = watched.element_handle()
    read = "el => el.tagName === 'IMG' ? el.src : el.innerText"
    before = handle.evaluate(read)
    start = time.perf_counter()
    action()
    page.wait_for_function(
        f"([el, before]) => ({read})(el) !== before", arg=[handle, before], timeout=timeout_s * 1000, polling="raf"
    )
    return time.perf_counter() - start


def set_cell_source(page, index: int, code: str) -> None:
    """Replace a cell's code by typing, as a learner would (select all, then paste-like input)."""
    editor = page.locator(f"[data-dlc-cell='{index}'] .cm-content").first
    editor.scroll_into_view_if_needed()
    editor.click()
    page.keyboard.press("Control+a")
    page.keyboard.insert_text(code)


def save(page) -> None:
    """Save the notebook (Ctrl+S) and wait until the file on disk is current."""
    page.keyboard.press("Control+s")
    page.wait_for_function("() => !window.jupyterapp.shell.currentWidget.context.model.dirty", timeout=30_000)
