"""The package's import contract: fast, lazy, and free of TensorFlow."""

import subprocess
import sys

import dlcourse


def _run(code: str) -> str:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()


def test_import_does_not_import_tensorflow():
    out = _run("import sys, dlcourse; print('tensorflow' in sys.modules, 'keras' in sys.modules)")
    assert out == "False False", f"importing dlcourse pulled in TensorFlow/Keras: {out}"


def test_data_checks_and_plots_do_not_import_tensorflow():
    code = (
        "import sys, dlcourse as dlc; dlc.load_mnist(); dlc.checks.assert_close(1.0, 1.0);"
        "import matplotlib; matplotlib.use('Agg'); dlc.plots.show_images(dlc.load_mnist()[1][0][:4]);"
        "print('tensorflow' in sys.modules)"
    )
    assert _run(code) == "False"


def test_submodules_load_lazily():
    assert dlcourse.data.load_mnist is not None
    assert {"checks", "data", "device", "plots"} <= set(dir(dlcourse))


def test_unknown_attribute_raises():
    try:
        _ = dlcourse.no_such_thing
    except AttributeError as exc:
        assert "no_such_thing" in str(exc)
    else:
        raise AssertionError("expected AttributeError")
