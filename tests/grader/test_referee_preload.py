"""The referee's preload (``grader/referee.py``): what the tests import is loaded before the
student's first cell, without what the preloaded libraries would pull in for nothing.

Run in a fresh Python each: the preload changes ``sys.modules``.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import textwrap

from grader import course

# A library that uses JAX where it is installed, as TensorFlow's TFLite helpers do.
USES_JAX = "try:\n    import jax\nexcept ImportError:\n    jax = None\n"


def _preload_then(tmp_path, modules: list[str], code: str) -> list[str]:
    """What ``code`` prints (split into words) after ``_preload(modules)`` in a fresh Python."""
    (tmp_path / "uses_jax.py").write_text(USES_JAX)
    script = textwrap.dedent(f"""
        import sys
        sys.path[:0] = [{str(tmp_path)!r}, {str(course.ROOT)!r}]
        from grader import referee
        referee._preload({modules!r})
    """) + textwrap.dedent(code)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.split()


def test_jax_is_held_back_while_preloading_and_importable_afterwards(tmp_path):
    out = _preload_then(
        tmp_path,
        ["uses_jax"],
        """
        import importlib.util, uses_jax
        print(uses_jax.jax is None, 'jax' in sys.modules)
        print(importlib.util.find_spec('jax') is not None)
        try:
            import jax
            print('imported')
        except ImportError:
            print('absent')
        """,
    )
    held, left_in_modules, installed, after = out
    assert (held, left_in_modules) == ("True", "False"), "the preloaded library got JAX, or its stand-in stayed"
    assert after == ("imported" if installed == "True" else "absent"), (
        "student code cannot import JAX after the preload"
    )


def test_jax_is_preloaded_when_a_test_imports_it(tmp_path):
    out = _preload_then(tmp_path, ["jax", "uses_jax"], "import uses_jax\nprint(uses_jax.jax is None)")
    installed = importlib.util.find_spec("jax") is not None
    assert out == [str(not installed)], "a test imports JAX: the preload must load it"
