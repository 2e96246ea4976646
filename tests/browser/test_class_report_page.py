"""The class report in Chromium: it draws offline, fetching nothing, and gives the README its picture.

The report is written from a real grading run of a demonstration class (tests/grader/demo_class.py
recorded its grades.csv and results.jsonl); with DLCOURSE_SCREENSHOTS set (``make screenshots``)
its top lands in docs/images/class_report.png.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from grader import report

pytestmark = pytest.mark.browser

RECORDING = Path(__file__).resolve().parents[1] / "grader" / "data" / "demo_class"


def test_class_report_draws_offline(browser, tmp_path, screenshots):
    out = tmp_path / "out"
    out.mkdir()
    for name in ("grades.csv", "results.jsonl"):
        shutil.copyfile(RECORDING / name, out / name)
    path = report.write(out)
    context = browser.new_context(viewport={"width": 1100, "height": 900}, device_scale_factor=1, offline=True)
    page = context.new_page()
    errors, requests = [], []
    page.on("console", lambda m: m.type == "error" and errors.append(m.text))
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("request", lambda r: requests.append(r.url))
    try:
        page.goto(path.as_uri())
        assert requests == [path.as_uri()], "the report loads nothing besides itself"
        assert not errors, errors
        charts = page.locator("svg")
        assert charts.count() == 3
        for i in range(3):
            box = charts.nth(i).bounding_box()
            assert box["width"] > 600 and box["height"] > 150, box
        assert page.locator("h2").all_inner_texts() == [
            "Scores",
            "Test cells",
            "Why tests failed",
            "Needs a look",
            "Time per submission",
            "Every submission",
        ]
        cards = page.locator(".card").all_inner_texts()
        assert cards[0].split()[0] == "11" and "submissions" in cards[0]
        assert page.get_by_text("nguyễnhoa (1005)").count() >= 1, "names are shown as the platform wrote them"
        # The picture: from the title to the failures of the third test cell.
        bottom = page.locator("h3", has_text="test_pool_output_size").bounding_box()["y"] - 12
        shot = screenshots / "class_report.png"
        page.screenshot(path=shot, full_page=True, clip={"x": 0, "y": 0, "width": 1100, "height": bottom})
        from PIL import Image  # a page of flat colours: 256 of them keep it as it is, in half the bytes

        Image.open(shot).convert("RGB").quantize(256).save(shot, optimize=True)
    finally:
        context.close()
