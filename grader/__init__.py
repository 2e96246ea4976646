"""The course's grading tools: nbgrader configuration and the ``python -m grader`` command."""
