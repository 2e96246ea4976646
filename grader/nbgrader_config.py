"""nbgrader configuration for the course.

The course root is the repository: nbgrader's *source* is ``solutions/`` (the
instructor's masters, with solutions and hidden tests) and its *release* is
``lessons/`` (what learners get).  Run nbgrader through ``python -m grader``
(or from this folder) so that this file is the one loaded.
"""

import os

c = get_config()  # noqa: F821 (provided by traitlets when it loads this file)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

c.CourseDirectory.course_id = "dlcourse"
c.CourseDirectory.root = ROOT
c.CourseDirectory.source_directory = "solutions"
c.CourseDirectory.release_directory = "lessons"
c.CourseDirectory.submitted_directory = os.path.join("grader", "work", "submitted")
c.CourseDirectory.autograded_directory = os.path.join("grader", "work", "autograded")
c.CourseDirectory.feedback_directory = os.path.join("grader", "work", "feedback")
c.CourseDirectory.db_url = "sqlite:///" + os.path.join(ROOT, "grader", "work", "gradebook.db")
# Files a lesson folder may hold that are not part of the handout.
c.CourseDirectory.ignore = [
    ".ipynb_checkpoints",
    "*.pyc",
    "__pycache__",
    "feedback",
    ".*",
    "*.keras",
    "*.h5",
    "baselines.json",
]

# Training cells in the lessons take up to about a minute on a 2-core CPU; the
# default 30 s would cut them off.  One limit covers every cell of a notebook.
c.Execute.timeout = 300
c.Execute.interrupt_on_timeout = True

# `python -m grader autograde`: per-cell timeout (seconds) for particular lessons, where
# the default above does not fit; --timeout on the command line overrides both.
c.CourseGrader.timeouts = {
    "02_conv_pool_arithmetic": 120,  # no training: a cell that runs for minutes is stuck
}

# `python -m grader autograde`: the files a lesson's notebooks read besides themselves. Only these
# are taken from a submission (as plain files, read-only in the sandbox); anything else is ignored.
c.CourseGrader.lesson_files = {
    "06_mnist_project": ["mnist_model.keras"],
}

# `python -m grader autograde`: per-submission limits where the defaults of grader.sandbox.Limits do
# not fit (bytes, seconds, counts), e.g. {"memory": 12 * 2**30, "files": 2 * 2**30}.
c.CourseGrader.limits = {}

# Solution stubs learners see.
c.ClearSolutions.code_stub = {
    "python": "# YOUR CODE HERE\nraise NotImplementedError()",
}
c.ClearSolutions.text_stub = "YOUR ANSWER HERE"
