"""nbgrader's *Validate* button, used in JupyterLab as a learner does.

Lesson 00 as released (a copy of lessons/) has two exercises. The test types a correct
``preprocess_images`` and a wrong ``one_hot``, saves, presses *Validate*, and expects the
dialog to name exactly one failing test: the one for ``one_hot``.
"""

from __future__ import annotations

import pytest
from lab_driver import cell_index, open_notebook, save, set_cell_source

pytestmark = [pytest.mark.browser, pytest.mark.notebooks]

LESSON = "lessons/00_getting_started/00_getting_started.ipynb"
CORRECT_PREPROCESS = """def preprocess_images(images):
    return (images[..., np.newaxis] / 255.0).astype(np.float32)
"""
WRONG_ONE_HOT = """def one_hot(labels, num_classes=10):
    return np.zeros((len(labels), num_classes), np.float32)  # forgot the ones
"""
VALIDATE_TIMEOUT_S = 300  # nbgrader runs the whole lesson; the course's cell timeout


def test_validate_names_exactly_the_failing_exercise(page, lab):
    sources = open_notebook(page, lab, LESSON)
    set_cell_source(page, cell_index(sources, "def preprocess_images("), CORRECT_PREPROCESS)
    set_cell_source(page, cell_index(sources, "def one_hot("), WRONG_ONE_HOT)
    save(page)

    page.locator(".jp-NotebookPanel-toolbar").get_by_role("button", name="Validate").click()
    dialog = page.locator(".jp-Dialog", has_text="Validation Results")
    dialog.wait_for(timeout=VALIDATE_TIMEOUT_S * 1000)
    message = dialog.locator("#validation-message")
    text = message.inner_text()

    assert "validation-failed" in (message.get_attribute("class") or ""), text
    assert text.count("The following cell failed:") == 1, text
    assert "Check one_hot" in text, text
    assert "Check preprocess_images" not in text, text
    assert not page.errors, "the page logged errors:\n" + "\n".join(page.errors)
