"""Runs nbgrader for one grading job, with host-side limits: ``python -I nbgrader_run.py ARGS [--then ARGS]``.

Started by path in isolated mode from the job's course folder, so that nothing in the job's
folders (which hold submitted files) can stand in for a module.  Soft limits bound what a
hostile notebook can make this host-side process hold (its outputs are capped while it runs,
see ``grader.preprocessors``); the kernel's own, stricter limits are set by ``launcher.py``.
Several nbgrader commands separated by ``--then`` run in this one process (importing nbgrader
costs seconds of CPU); a command after a failed one does not run.

``python -I nbgrader_run.py --serve`` is the grading jobs' form (``grader.nbgrader_server``):
it imports nbgrader once and runs each job's commands in a fresh fork of itself (``serve``).

``grader.course.nbgrader`` runs every nbgrader command of the course through this file too.
"""

import gc
import json
import os
import resource
import sys
import traceback

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
    _setup()
    if sys.argv[1:] == ["--serve"]:
        return serve()
    return run(sys.argv[1:])


def _setup() -> None:
    # jsonschema imports rfc3987_syntax (if installed) for its "iri" format alone, compiling 39
    # grammars: 1.5 s of every nbgrader start.  Notebook validation never checks that format.
    sys.modules.setdefault("rfc3987_syntax", None)
    for res, value in ((resource.RLIMIT_AS, MEMORY), (resource.RLIMIT_FSIZE, FILE_SIZE)):
        hard = resource.getrlimit(res)[1]
        resource.setrlimit(res, (value if hard == resource.RLIM_INFINITY else min(value, hard), hard))
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    import nbgrader.api

    nbgrader.api.get_alembic_version = alembic_head


def run(argv: list) -> int:
    """The nbgrader commands of ``argv`` (separated by ``--then``), in this process; the exit status."""
    from jupyter_core.application import NoStart
    from nbgrader.apps.nbgraderapp import NbGraderApp
    from traitlets.config import SingletonConfigurable

    for args in _commands(argv):
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


def serve() -> int:
    """Grading jobs' nbgrader runs, each in a fresh fork of this process (``--serve``).

    This process imports what a job's run uses once, then forks a copy of itself, untouched
    by any earlier job, for each request read from stdin: one JSON line, ``{"args": [...],
    "cwd": folder, "env": {...}, "log": file}``.  The copy starts a session of its own,
    takes that folder, environment and log (stdout and stderr), and runs ``args`` as the
    one-shot form would.  Answers go to stdout, one JSON line each: ``{"pid": N}`` at once,
    then ``{"rc": status}`` when the copy has ended (killed: minus the signal).  The ended
    copy is reaped only when the next request comes (or stdin closes), so its pid, which is
    its process group's, cannot be reused while the grader may still kill that group.
    """
    gc.disable()
    _preimport()
    # The copies' collections need not scan what every copy inherits (nor write to its pages).
    gc.freeze()
    gc.enable()
    answers = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # stray prints of this process go to its log, not into the answers
    ended = None
    for line in sys.stdin:
        if ended is not None:
            os.waitpid(ended, 0)
            ended = None
        request = json.loads(line)
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            _job(request)  # never returns
        answers.write(json.dumps({"pid": pid}) + "\n")
        answers.flush()
        info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)
        rc = info.si_status if info.si_code == os.CLD_EXITED else -info.si_status
        ended = pid
        answers.write(json.dumps({"rc": rc}) + "\n")
        answers.flush()
    if ended is not None:
        os.waitpid(ended, 0)
    return 0


# What a grading job's autograde and generate_feedback import (found by listing a job's new
# modules), so that no fork pays for it; a module missing from the list is imported by the job.
_JOB_MODULES = (
    "nbclient",
    "nbgrader.apps.nbgraderapp",
    "nbgrader.converters",
    "nbconvert.exporters",
    "sqlalchemy.dialects.sqlite",
    "sqlite3",
    "jinja2.ext",
    "IPython.core.interactiveshell",
    "IPython.lib.lexers",
    "pygments.lexers.python",
    "pygments.lexers.html",
    "pygments.lexers.css",
    "pygments.lexers.javascript",
    "pygments.lexers.markup",
    "pygments.lexers.shell",
    "pygments.styles.default",
    "grader.job",
    "grader.preprocessors",
)


def _preimport() -> None:
    import importlib

    for name in _JOB_MODULES:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            print(f"[nbgrader_run] not preloaded: {name} ({exc})", file=sys.stderr, flush=True)


def _job(request: dict) -> None:
    """In a fresh fork: one job's nbgrader run, then exit with its status."""
    rc = 1
    try:
        os.setsid()
        log = os.open(request["log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.closerange(3, resource.getrlimit(resource.RLIMIT_NOFILE)[0])  # the answers pipe, and the like
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        rc = run(request["args"])
    except BaseException:
        traceback.print_exc()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(rc)


def alembic_head() -> str:
    """The gradebook schema's newest revision, for a new gradebook.

    nbgrader asks a second Python (``alembic heads``) for it: 3 s of every generate_assignment.
    Read here, from the same migration scripts, it costs about half a second (importing alembic).
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
