"""Runs nbgrader for one grading job, with host-side limits: ``python -I nbgrader_run.py ARGS``.

Started by path in isolated mode from the job's course folder, so that nothing in the job's
folders (which hold submitted files) can stand in for a module.  Soft limits bound what a
hostile notebook can make this host-side process hold (its outputs are capped while it runs,
see ``grader.preprocessors``); the kernel's own, stricter limits are set by ``launcher.py``.
"""

import os
import resource
import sys

MEMORY = int(os.environ.get("DLCOURSE_HOST_MEMORY", 4 << 30))  # address space of this process
FILE_SIZE = int(os.environ.get("DLCOURSE_HOST_FILE_SIZE", 64 << 20))  # largest file it writes


def main() -> None:
    for res, value in ((resource.RLIMIT_AS, MEMORY), (resource.RLIMIT_FSIZE, FILE_SIZE)):
        hard = resource.getrlimit(res)[1]
        resource.setrlimit(res, (value if hard == resource.RLIM_INFINITY else min(value, hard), hard))
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from nbgrader.apps.nbgraderapp import main as nbgrader_main

    sys.argv = ["nbgrader", *sys.argv[1:]]
    nbgrader_main()


if __name__ == "__main__":
    main()
