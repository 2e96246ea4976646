"""Runs nbgrader for one grading job, with host-side limits: ``python -I nbgrader_run.py ARGS [--then ARGS]``.

Started by path in isolated mode from the job's course folder, so that nothing in the job's
folders (which hold submitted files) can stand in for a module.  Soft limits bound what a
hostile notebook can make this host-side process hold (its outputs are capped while it runs,
see ``grader.preprocessors``); the kernel's own, stricter limits are set by ``launcher.py``.
Several nbgrader commands separated by ``--then`` run in this one process (importing nbgrader
costs seconds of CPU); a command after a failed one does not run.

``grader.course.nbgrader`` runs every nbgrader command of the course through this file too.
"""

import os
import resource
import sys

MEMORY = int(os.environ.get("DLCOURSE_HOST_MEMORY", 4 << 30))  # address space of this process
FILE_SIZE = int(os.environ.get("DLCOURSE_HOST_FILE_SIZE", 64 << 20))  # largest file it writes


def _commands(argv: list) -> list:
    commands, current = [], []
    for arg in argv:
        if arg == "--then":
            commands.append(current)
            current = []
        else:
            current.append(arg)
    return commands + [current]


def main() -> int:
    # jsonschema imports rfc3987_syntax (if installed) for its "iri" format alone, compiling 39
    # grammars: 1.5 s of every nbgrader start.  Notebook validation never checks that format.
    sys.modules.setdefault("rfc3987_syntax", None)
    for res, value in ((resource.RLIMIT_AS, MEMORY), (resource.RLIMIT_FSIZE, FILE_SIZE)):
        hard = resource.getrlimit(res)[1]
        resource.setrlimit(res, (value if hard == resource.RLIM_INFINITY else min(value, hard), hard))
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    import nbgrader.api
    from jupyter_core.application import NoStart
    from nbgrader.apps.nbgraderapp import NbGraderApp
    from traitlets.config import SingletonConfigurable

    nbgrader.api.get_alembic_version = alembic_head

    for args in _commands(sys.argv[1:]):
        app = NbGraderApp.instance()
        try:
            app.initialize(args)
            app.start()
        except NoStart:  # how a finished subcommand ends (jupyter_core's launch_instance says the same)
            pass
        except SystemExit as exc:
            if exc.code not in (0, None):
                return int(exc.code) if isinstance(exc.code, int) else 1
        finally:
            # nbgrader's apps are singletons: forget them so that the next command starts afresh.
            for cls in [NbGraderApp, *SingletonConfigurable.__subclasses__()]:
                _clear(cls)
        print(f"[nbgrader_run] finished: {' '.join(args[:1])}", flush=True)
    return 0


def alembic_head() -> str:
    """The gradebook schema's newest revision, for a new gradebook.

    nbgrader asks a second Python (``alembic heads``) for it: 3 s of every generate_assignment.
    Read here, from the same migration scripts, it costs a few milliseconds.
    """
    from alembic.config import Config
    from alembic.script import ScriptDirectory
    from nbgrader.dbutil import ALEMBIC_DIR

    config = Config()
    config.set_main_option("script_location", ALEMBIC_DIR)
    return ScriptDirectory.from_config(config).get_current_head()


def _clear(cls) -> None:
    for sub in cls.__subclasses__():
        _clear(sub)
    if getattr(cls, "_instance", None) is not None:
        cls.clear_instance()


if __name__ == "__main__":
    sys.exit(main())
