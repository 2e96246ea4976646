"""The grading kernel: an IPython kernel whose test cells are run by a referee.

The grader starts this file (by path, ``python -I``, inside the sandbox) instead of a plain
IPython kernel.  Before any of the student's code exists it

1. reads the grading plan from an inherited file descriptor (test cells' code, setup cells'
   code, the names the exercises define, a fresh secret key) and closes it;
2. imports the libraries the tests use and records how they look (every module's and
   class's callables, the builtins);
3. installs a PEP 578 audit hook, which no code can remove, and only then starts the kernel.

Student cells run as usual.  A test cell is not sent as code: the grader sends
``sys.audit("dlcourse.test", grade_id, nonce)`` and the hook runs the test cell itself:

- in its own namespace (setup-cell names, test helpers, and the exercises' functions behind a
  *barrier*), never the student's globals, with a private copy of the builtins;
- in a fresh thread, so that no frame reachable from student code leads to the referee;
- after restoring anything the student changed in the libraries and the builtins (and noting
  it for review); the student's functions return plain data (numbers, strings, arrays,
  Keras models rebuilt from config and weights), so no object with a made-up ``__eq__`` or
  ``__array__`` reaches a check; arguments are copies;
- the test's code is wrapped so that only reaching its last line records a per-run random
  token; the referee signs ``passed`` with the key only if that token arrived.

The verdict goes into a file signed with HMAC-SHA256, which the grader verifies: code in the
student's cells cannot produce, suppress (other than by failing) or forge it.  While a
student's frame is on the stack the hook refuses what could reach the referee's memory or
change how code runs: frame access, ``gc``'s object walks, raw memory through ``ctypes``,
``/proc/*/mem``, tracing and profiling, new audit hooks, new processes, rewriting the
code of library functions.  What this defends and what it does not is written down in
README.md ("What the grader guarantees").
"""

from __future__ import annotations

import ast
import builtins
import contextvars
import ctypes
import functools
import gc
import hashlib
import hmac
import io
import json
import operator
import os
import secrets
import signal
import sys
import sysconfig
import threading
import time
import types

_thread = sys.modules["_thread"]
# The interpreter's own containers, held from before any student code: a student may rebind
# sys.modules or sys.meta_path to objects of their own (whose methods would then answer the
# referee); the referee reads these, and puts them back where the names were rebound.
_MODULES = sys.modules
_SYS = sys.__dict__
_IMPORT_LISTS = {"meta_path": sys.meta_path, "path_hooks": sys.path_hooks}
_MISSING = object()
_PROC_MEM = ("/mem", "/map_files", "/pagemap")
_QUIET_MODULES = (
    "__main__",
    "IPython",
    "ipykernel",
    "jupyter_client",
    "jupyter_core",
    "zmq",
    "tornado",
    "asyncio",
    "traitlets",
    "matplotlib",
    "matplotlib_inline",
    "pyparsing",  # matplotlib's: enable_packrat() swaps ParserElement._parse for its cached twin
    "comm",
    "ipywidgets",
    "debugpy",
    "prompt_toolkit",
    "jedi",
    "parso",
    "pygments",
    "pexpect",
    "psutil",
    "sys",
    "threading",
    "logging",
    "warnings",
    "linecache",
    "_weakrefset",
    "weakref",
    "abc",
    "copyreg",
    "site",
    "sitecustomize",
    "encodings",
    "ipython_pygments_lexers",
    "stack_data",
    "executing",
    "decorator",
    "wcwidth",
    "pure_eval",
    "asttokens",
    "nest_asyncio",
    "nest_asyncio2",
    "getpass",
)
_HOT_MODULES = ("builtins", "numpy", "dlcourse", "math")
# Modules whose every name is part of how tests judge (assert_numpy_only's op list, for one): no
# value of theirs may change, code or not.
_FROZEN_MODULES = frozenset({"dlcourse.checks"})
# Set by IPython and ipykernel around every cell (input() forwarding, the exit helpers, display).
_KERNEL_BUILTINS = frozenset(
    {
        "input",
        "raw_input",
        "exit",
        "quit",
        "get_ipython",
        "display",
        "help",
        "__IPYTHON__",
        "_",
        "__",
        "___",
        "copyright",
        "credits",
        "license",
    }
)
# Refusals a library meets in its ordinary work (namedtuple, logging, enum ask for frames and cope without).
_QUIET_REFUSALS = frozenset({"sys._getframe", "object.__getattr__", "compile"})
_FRAME_ATTRS = frozenset({"tb_frame", "gi_frame", "cr_frame", "ag_frame"})
_CODE_ATTRS = frozenset({"__code__", "__defaults__", "__kwdefaults__"})
# Code the referee compiles from the grading plan (the master's setup and test cells), never the student's.
_PLAN_CODE = ("<setup ", "<test ")
_LAUNCH_FRAMES = ("main", "<module>")  # the kernel's bottom frames, in this file
_FRAME_EVENTS = frozenset({"sys._getframe", "object.__getattr__"})  # refused only where they reach a protected frame
_MAX_OUTPUT = 64_000  # characters of a test's printed output kept for the feedback


class Denied(PermissionError):
    """An operation the grading kernel refuses while a student's code is on the stack."""


class _AuditRefusal(RuntimeError):
    """Refusal of sys.addaudithook (a RuntimeError subclass, which CPython swallows)."""


# The referee runs as __main__, the student's module name: its own errors must not look like the
# student's classes when IPython keeps the last one in sys.last_type.
Denied.__module__ = _AuditRefusal.__module__ = "grader.referee"


def _same_entries(live, snap: dict) -> bool:
    """Whether ``live`` (a dict or a class's mapping proxy) holds exactly ``snap``'s keys and objects, in order.

    By identity only (no one's ``__eq__`` runs), in C: a dict whose entries were reordered
    reads as changed, and the caller's exact comparison then decides.
    """
    return _same_objects(live, snap) and all(map(operator.is_, live, snap))


def _same_objects(live, snap: dict) -> bool:
    """As ``_same_entries`` without the keys: a key-only change (the last entry renamed) brings none
    of the student's code in and cannot remove itself, so the check at the end of the test sees it."""
    return len(live) == len(snap) and all(map(operator.is_, live.values(), snap.values()))


class _DictVersions:
    """Which of many dicts changed since it was last asked, read from CPython's version tags.

    CPython keeps a 64-bit tag in every dict that takes a new, never reused value whenever the
    dict changes: a key added or deleted, a value replaced (PEP 509; still kept up for dict
    watchers through 3.13). Reading the tags of the 11,000 module and class dicts TensorFlow
    brings costs about 1 ms, where comparing those dicts object by object costs 25 to 70 ms
    (bench/README.md). Only raw memory could change a dict and keep its tag, and the referee
    refuses raw memory to the student's code. ``usable()`` says whether this interpreter keeps
    the tag where it is read; without it the callers compare everything, as before.
    """

    OFFSET = 24  # PyDictObject: ob_refcnt, ob_type, ma_used, then ma_version_tag (64-bit CPython)
    _value = operator.attrgetter("value")

    def __init__(self, dicts: list, readers: dict | None = None):
        """``readers``: tag readers already made, by dict id (checks over the same dicts share them)."""
        self.dicts = dicts  # kept alive with the readers: an address is read only while its dict exists
        readers = {} if readers is None else readers
        for d in dicts:
            if id(d) not in readers:
                readers[id(d)] = ctypes.c_uint64.from_address(id(d) + self.OFFSET)
        self.readers = [readers[id(d)] for d in dicts]
        self.seen: list = [None] * len(dicts)  # the first call names every dict

    def changed(self) -> list[int]:
        """The indices of the dicts changed since the last call (each tag read before the caller compares)."""
        now = list(map(self._value, self.readers))
        if now == self.seen:
            return []
        changed = [i for i, (tag, seen) in enumerate(zip(now, self.seen)) if tag != seen]
        self.seen = now
        return changed

    @classmethod
    def usable(cls) -> bool:
        """Whether every kind of change moves the tag here (checked on fresh objects)."""
        if (
            sys.implementation.name != "cpython"
            or not (3, 10) <= sys.version_info[:2] <= (3, 13)
            or ctypes.sizeof(ctypes.c_void_p) != 8
            or sysconfig.get_config_var("Py_GIL_DISABLED")
        ):
            return False

        class Probe:
            pass

        probe, real = {"a": 1}, gc.get_referents(Probe.__dict__)[0]
        if ctypes.c_ssize_t.from_address(id(probe) + cls.OFFSET - 8).value != len(probe):
            return False  # ma_used is not where the layout puts it
        changes = [
            (probe, lambda: probe.__setitem__("a", object())),
            (probe, lambda: probe.__setitem__("b", 2)),
            (probe, lambda: probe.pop("b")),
            (probe, lambda: probe.update(c=3)),
            (probe, probe.clear),
            (real, lambda: type.__setattr__(Probe, "x", 1)),
            (real, lambda: type.__setattr__(Probe, "x", 2)),
            (real, lambda: type.__delattr__(Probe, "x")),
        ]
        tag = cls._value
        for d, change in changes:
            before = tag(ctypes.c_uint64.from_address(id(d) + cls.OFFSET))
            change()
            if tag(ctypes.c_uint64.from_address(id(d) + cls.OFFSET)) == before:
                return False
        return True


_BASES = type.__dict__["__bases__"]


def _module(name: str, default=None):
    """``sys.modules.get(name)`` from the interpreter's own dict, whatever ``sys.modules`` names now."""
    return dict.get(_MODULES, name, default)


def _text(value) -> str:
    """``value`` if it is exactly a ``str``, else a stand-in. A code object's file name can be a
    subclass of ``str`` (``compile`` keeps it), whose methods are the student's code: the referee
    never calls them, least of all inside its audit hook."""
    return value if type(value) is str else "<not a str>"


def _type_name(obj) -> str:
    """The name of ``obj``'s class, read from the type itself (a metaclass of the student's is not asked)."""
    return _text(type.__dict__["__name__"].__get__(type(obj)))


def _real_dict(cls: type) -> dict:
    """The dict behind ``cls.__dict__`` (a read-only proxy of it): the one whose tag moves."""
    return gc.get_referents(type.__dict__["__dict__"].__get__(cls))[0]


def _block_codes() -> frozenset:
    """The code of the stand-ins ``dlcourse.checks.assert_numpy_only`` puts in place of TensorFlow and Keras."""
    block = getattr(_module("dlcourse.checks"), "_Block", None)
    return frozenset(
        const
        for maker in ("_blocked", "_op_blocker")
        if isinstance(getattr(block, maker, None), types.FunctionType)
        for const in getattr(block, maker).__code__.co_consts
        if isinstance(const, types.CodeType)
    )


def _is_block(value, blocks: frozenset) -> bool:
    return bool(blocks) and type(value) is types.FunctionType and value.__code__ in blocks


def _is_code(value) -> bool:
    return isinstance(
        value,
        (
            types.FunctionType,
            types.BuiltinFunctionType,
            types.MethodType,
            type,
            types.ModuleType,
            functools.partial,
            staticmethod,
            classmethod,
            property,
            types.MethodDescriptorType,
            types.WrapperDescriptorType,
        ),
    )


class Referee:
    """Holds the plan, the pristine state and the key; only the audit hook can reach it."""

    def __init__(self, plan: dict):
        self.key = bytes.fromhex(plan["key"])
        self.results = plan["results"]
        self.tests: dict[str, str] = plan["tests"]
        self.setup: list[str] = plan["setup"]
        self.student_names: list[str] = plan["student_names"]
        self.withheld = {name: _read_fd(fd) for name, fd in plan.get("withheld", {}).items()}
        self.workdir: str = plan.get("workdir") or os.getcwd()
        self.trusted = tuple(os.path.realpath(p) + os.sep for p in plan["trusted"])
        self.own_file = os.path.realpath(__file__)
        self.debug = bool(plan.get("debug"))
        self.main_ident = threading.get_ident()
        self.local = threading.local()
        self.shell = None
        self.ns: dict | None = None
        self.setup_error: str | None = None
        self.compromised: str | None = None
        self.findings: list[str] = []  # tampering seen since the last record
        self.test_running = False
        # Pristine references, taken before any student code exists.
        self.compile, self.exec, self.type, self.isinstance = compile, exec, type, isinstance
        self.builtins_copy = dict(builtins.__dict__)
        self.recursion_limit = sys.getrecursionlimit()
        np = _module("numpy")
        self.np_errstate = np.geterr() if np is not None else {}
        keras = _module("keras")
        self.keras_config = (
            (
                keras.config.floatx(),
                keras.config.epsilon(),
                keras.config.image_data_format(),
                keras.config.dtype_policy(),
            )
            if keras is not None
            else None
        )
        self.user_ns: dict = {}
        self.block_codes = _block_codes()
        self.snapshot_modules()

    # -- pristine state ------------------------------------------------------------------
    def snapshot_modules(self) -> None:
        self.mods: dict[str, tuple[types.ModuleType, dict]] = {}
        self.container_values: list[list] = []
        self.import_hook_values = {name: list(hooks) for name, hooks in _IMPORT_LISTS.items()}  # kept alive
        self.import_hooks = {name: set(map(id, hooks)) for name, hooks in self.import_hook_values.items()}
        self.classes: dict[int, tuple[type, dict]] = {}
        for name, module in list(sys.modules.items()):
            d = getattr(module, "__dict__", None)
            if not isinstance(module, types.ModuleType) or not isinstance(d, dict):
                continue
            self.mods[name] = (module, dict(d))
            for value in list(d.values()):
                if isinstance(value, type) and getattr(value, "__module__", None) == name:
                    self.classes[id(value)] = (value, dict(value.__dict__))
        self.sys_modules = dict(sys.modules)
        # Keyword-only defaults live in a mutable dict (changing them in place is not audited).
        self.kwdefaults = [
            (f, dict(f.__kwdefaults__))
            for name, (m, snap) in self.mods.items()
            if name.split(".")[0] in ("dlcourse", "numpy")
            for f in snap.values()
            if type(f) is types.FunctionType and f.__kwdefaults__
        ]
        self.hot = [(name, m, snap) for name, (m, snap) in self.mods.items() if name.split(".")[0] in _HOT_MODULES]
        # What a student's function could change for the test's next library call to see: every
        # module and class that is not churned by the kernel itself (checked after every call).
        self.watched_modules = [
            (name, m.__dict__, snap)
            for name, (m, snap) in self.mods.items()
            if name.split(".")[0] not in _QUIET_MODULES
        ]
        self.watched_classes = [
            (cls, snap)
            for cls, snap in self.classes.values()
            if str(getattr(cls, "__module__", "")).split(".")[0] not in _QUIET_MODULES
        ]
        # A module's or class's own type decides how its names are looked up (a ModuleType subclass's
        # __getattribute__) and how it is called (a metaclass's __call__): none may change.
        # (The kernel's own modules, the quiet ones, and the notebook's module may change as they like.)
        modules = [(name, m) for name, (m, _) in self.mods.items() if name.split(".")[0] not in _QUIET_MODULES]
        self.typed = [m for _, m in modules] + [cls for cls, _ in self.watched_classes]
        self.typed_names = [f"module {name}" for name, _ in modules] + [
            f"class {cls.__module__}.{cls.__qualname__}" for cls, _ in self.watched_classes
        ]
        self.types = list(map(type, self.typed))
        self.typed_classes = [cls for cls, _ in self.watched_classes]
        self.bases = list(map(_BASES.__get__, self.typed_classes))
        # What no student's code may give another type or other bases, even through a library's frame.
        self.guarded = set(map(id, self.typed))
        # Dicts a library keeps at module level (registries, lookup tables: Keras finds its
        # initializers and layers by name in one): a student's class or function put there would be
        # found by the test's next library call. (label, dict, ids of the values it held)
        containers: dict[int, tuple[str, dict, set]] = {}
        for name, live, snap in self.watched_modules:
            for key, value in snap.items():
                if type(value) is dict and value is not live and value is not _MODULES and id(value) not in containers:
                    held = list(value.values())
                    self.container_values.append(held)  # kept alive: their ids stay theirs
                    containers[id(value)] = (f"{name}.{key}", value, set(map(id, held)))
        self.containers = list(containers.values())
        # Each check looks only at the dicts changed since it last looked, where the tags allow.
        self.versions = None
        if _DictVersions.usable():
            with self.internal():  # the second snapshot runs under the audit hook: none of this is the student's
                real = {id(cls): _real_dict(cls) for cls, _ in self.classes.values()}
                watched_dicts = [live for _, live, _ in self.watched_modules]
                readers: dict = {}
                self.versions = {
                    "test modules": _DictVersions([m.__dict__ for m, _ in self.mods.values()], readers),
                    "test classes": _DictVersions(list(real.values()), readers),
                    "cell modules": _DictVersions(watched_dicts, readers),
                    "call modules": _DictVersions(watched_dicts, readers),
                    "call classes": _DictVersions([real[id(cls)] for cls, _ in self.watched_classes], readers),
                    "call sys.modules": _DictVersions([_MODULES], readers),
                    "test containers": _DictVersions([d for _, d, _ in self.containers], readers),
                    "call containers": _DictVersions([d for _, d, _ in self.containers], readers),
                }

    def changed(self, which: str, count: int):
        """The indices of the ``count`` dicts that ``which`` check must compare: the changed ones, or all."""
        return range(count) if self.versions is None else self.versions[which].changed()

    def _in_snapshot(self, func: types.FunctionType) -> bool:
        """Whether ``func`` is what its module (or a class in it) held when the snapshot was taken."""
        entry = self.mods.get(func.__module__)
        parts = func.__qualname__.split(".")
        value = entry[1].get(parts[0], _MISSING) if entry else _MISSING
        for part in parts[1:]:
            if not isinstance(value, type):
                return False
            value = type.__dict__["__dict__"].__get__(value).get(part, _MISSING)
        return getattr(value, "__func__", value) is func

    def _untrusted_code(self, value, depth: int = 0) -> bool:
        """Whether ``value`` is a function or class written in the student's cells (or anywhere untrusted).

        Only ``type()`` and C-level attributes are used: no method of the student's objects runs.
        """
        t = type(value)
        if t is types.MethodType:
            value, t = value.__func__, type(value.__func__)
        if t is types.FunctionType:
            return not self._trusted_file(value.__code__.co_filename)
        if issubclass(t, type):
            return self._untrusted_class(value)
        if issubclass(t, functools.partial) and depth < 5:
            return t is not functools.partial or self._untrusted_code(functools.partial.func.__get__(value), depth + 1)
        if depth == 0 and callable(value):
            return self._untrusted_class(t)  # an object of the student's class (its __module__ may say anything)
        return False

    def _untrusted_class(self, cls: type) -> bool:
        """Whether ``cls`` or a class it inherits from, not one the snapshot holds, was defined in the
        student's cells or has a method (plain, static, class or property) written there."""
        for klass in type.__dict__["__mro__"].__get__(cls):
            if id(klass) in self.classes and self.classes[id(klass)][0] is klass:
                continue
            d = type.__dict__["__dict__"].__get__(klass)
            if _text(d.get("__module__")) == "__main__":
                return True
            for v in list(d.values()):
                tv = type(v)
                if tv is staticmethod or tv is classmethod:
                    found = (tv.__dict__["__func__"].__get__(v),)
                elif tv is property:
                    found = tuple(property.__dict__[a].__get__(v) for a in ("fget", "fset", "fdel"))
                else:
                    found = (v,)
                for f in found:
                    if type(f) is types.FunctionType and not self._trusted_file(f.__code__.co_filename):
                        return True
        return False

    def _check_dict(
        self, label: str, live: dict, snap: dict, quiet: bool, restore: bool, blocks: frozenset = frozenset()
    ) -> None:
        if len(live) == len(snap) and all(live.get(k, _MISSING) is v for k, v in snap.items()):
            return
        kernel_keys = _KERNEL_BUILTINS if label == "builtins" else ()
        for key, old in list(snap.items()):
            new = live.get(key, _MISSING)
            if new is old or _is_block(new, blocks):
                continue
            if key in kernel_keys and not self._untrusted_code(new):
                snap[key] = new
                continue
            if _is_code(old) or label in _FROZEN_MODULES:
                if (
                    isinstance(old, types.ModuleType)
                    and isinstance(new, types.ModuleType)
                    and _module(getattr(new, "__name__", None)) is new
                    and not quiet
                ):
                    snap[key] = new  # a lazy loader replaced by its module
                    continue
                if quiet and not self._untrusted_code(new):
                    snap[key] = new
                    continue
                self.findings.append(f"{label}.{key} {'deleted' if new is _MISSING else 'replaced'}")
                if restore:
                    live[key] = old
                else:
                    snap[key] = new
            elif new is not _MISSING and self._untrusted_code(new):
                self.findings.append(f"{label}.{key} set to the student's {type(new).__name__}")
                if restore:
                    live[key] = old
                else:
                    snap[key] = new
            else:
                snap[key] = new
        for key in [k for k in live if k not in snap]:
            new = live[key]
            if not quiet and self._untrusted_code(new):
                self.findings.append(f"{label}.{key} added by the student's code")
                if restore:
                    del live[key]
                    continue
            snap[key] = new

    def check(self, full: bool, restore: bool = True) -> None:
        """Compare the libraries and builtins with the snapshot; put back what student code changed."""
        if full:
            mods = list(self.mods.items())
            mods = [mods[i] for i in self.changed("test modules", len(mods))]
        else:
            mods = [(n, (m, s)) for n, m, s in self.hot]
        for name, (module, snap) in mods:
            if name == "__main__":
                continue  # the student's own namespace
            quiet = name.split(".")[0] in _QUIET_MODULES
            self._check_dict(name, module.__dict__, snap, quiet, restore and not quiet)
        if full:
            classes = list(self.classes.values())
            for i in self.changed("test classes", len(classes)):
                cls, snap = classes[i]
                live = cls.__dict__
                if len(live) == len(snap) and all(live.get(k, _MISSING) is v for k, v in snap.items()):
                    continue
                quiet = getattr(cls, "__module__", "").split(".")[0] in _QUIET_MODULES
                self._check_classdict(cls, snap, quiet, restore and not quiet)
            self.check_sys_modules(restore)
        self.check_state(restore)

    def check_types(self, restore: bool = True) -> None:
        """Every library module and class still of its own type, every class with its own bases.

        A module's class decides how its names are found, a class's metaclass how it is called, its
        bases what it inherits. Changing them while a student's code runs is refused; this also
        catches what got past. Only a module turned back into a plain module is a library's doing
        (importlib's lazy modules do that when first used).
        """
        if not all(map(operator.is_, map(type, self.typed), self.types)):
            for i, (obj, old) in enumerate(zip(self.typed, self.types)):
                new = type(obj)
                if new is old:
                    continue
                if new is types.ModuleType:
                    self.types[i] = new
                    continue
                self.findings.append(f"the {self.typed_names[i]}: its type replaced")
                if restore:
                    try:
                        object.__dict__["__class__"].__set__(obj, old)
                    except (TypeError, AttributeError) as exc:
                        self.compromised = f"not reached: a library's type could not be put back ({exc})"
        if not all(map(operator.is_, map(_BASES.__get__, self.typed_classes), self.bases)):
            for cls, old in zip(self.typed_classes, self.bases):
                if _BASES.__get__(cls) is old:
                    continue
                self.findings.append(f"the bases of {type.__dict__['__qualname__'].__get__(cls)} replaced")
                if restore:
                    try:
                        _BASES.__set__(cls, old)
                    except (TypeError, AttributeError) as exc:
                        self.compromised = f"not reached: a library class's bases could not be put back ({exc})"

    def check_import_system(self, restore: bool = True) -> None:
        """``sys.modules``, ``sys.meta_path`` and ``sys.path_hooks`` are the interpreter's own objects,
        and hold no finder or hook of the student's (one would be asked about every later import)."""
        for name, original in (("modules", _MODULES), *_IMPORT_LISTS.items()):
            if dict.get(_SYS, name) is not original:
                self.findings.append(f"sys.{name} replaced")
                if restore:
                    _SYS[name] = original
        for name, hooks in _IMPORT_LISTS.items():
            held = self.import_hooks[name]
            for i in range(len(hooks) - 1, -1, -1):
                hook = list.__getitem__(hooks, i)
                if id(hook) in held:
                    continue
                if self._untrusted_code(hook) or self._untrusted_class(type(hook)):
                    self.findings.append(f"sys.{name} holds the student's {_type_name(hook)}")
                    if restore:
                        del hooks[i]

    def check_state(self, restore: bool = True) -> None:
        """What lives outside the libraries' dicts: their types, keyword defaults, tracing, the collector, threads."""
        self.check_import_system(restore)
        self.check_types(restore)
        for func, defaults in self.kwdefaults:
            live = func.__kwdefaults__
            if live != defaults:
                self.findings.append(f"keyword defaults of {func.__module__}.{func.__qualname__} changed")
                if restore:
                    with self.internal():
                        func.__kwdefaults__ = dict(defaults)
        if sys.gettrace() is not None or sys.getprofile() is not None:
            self.findings.append("a trace or profile function was set")
            with self.internal():
                sys.settrace(None)
                sys.setprofile(None)
        if self.test_running:
            if gc.isenabled():
                self.findings.append("the garbage collector was switched back on during a test")
                gc.disable()
            self.check_threads()
        elif not gc.isenabled():
            gc.enable()

    def check_threads(self) -> None:
        """During a test no thread may run the student's code but the test's own."""
        me = threading.get_ident()
        with self.internal():
            frames = sys._current_frames()
            for ident, frame in frames.items():
                if ident in (me, self.main_ident):
                    continue
                if frame.f_code is _RUNNER["run"].__code__:
                    continue  # a barrier thread whose call has returned, not yet ended (a busy machine)
                while frame is not None:
                    if not self._trusted_file(frame.f_code.co_filename):
                        self.findings.append("a thread running the student's code was alive during a test")
                        return
                    frame = frame.f_back

    def _check_classdict(
        self, cls: type, snap: dict, quiet: bool, restore: bool, blocks: frozenset = frozenset()
    ) -> None:
        live = cls.__dict__
        label = f"{cls.__module__}.{cls.__qualname__}"
        for key, old in list(snap.items()):
            new = live.get(key, _MISSING)
            if new is old or _is_block(new, blocks):
                continue
            if (_is_code(old) and not quiet) or (new is not _MISSING and self._untrusted_code(new)):
                self.findings.append(f"{label}.{key} {'deleted' if new is _MISSING else 'replaced'}")
                if restore:
                    try:
                        type.__setattr__(cls, key, old)
                        continue
                    except (TypeError, AttributeError):
                        pass
            snap[key] = new
        for key in [k for k in live if k not in snap]:
            new = live[key]
            if self._untrusted_code(new):
                self.findings.append(f"{label}.{key} added by the student's code")
                if restore:
                    try:
                        type.__delattr__(cls, key)
                        continue
                    except (TypeError, AttributeError):
                        pass
            snap[key] = new

    def attach(self, shell) -> None:
        """Remember the kernel's shell and how its machinery looks before any cell runs."""
        self.shell = shell
        self.shell_seen: set[str] = set()
        self.user_ns = shell.user_ns
        self.machinery = {
            "input_transformers_cleanup": list(shell.input_transformers_cleanup),
            "input_transformers_post": list(shell.input_transformers_post),
            "ast_transformers": list(shell.ast_transformers),
        }
        self.snapshot_modules()  # after IPython and the kernel have set themselves up

    def check_shell(self) -> None:
        """Note what the student changed in IPython's machinery (once each). Tests never run through it."""
        shell = self.shell
        if shell is None:
            return
        before = len(self.findings)
        self._check_shell(shell)
        new = [f for f in self.findings[before:] if f not in self.shell_seen]
        self.shell_seen.update(new)
        del self.findings[before:]
        self.findings += new

    def _check_shell(self, shell) -> None:
        for attr, baseline in self.machinery.items():
            for item in getattr(shell, attr, []):
                if item not in baseline:
                    self.findings.append(f"IPython's {attr} changed")
                    baseline.append(item)
        for key, value in list(vars(shell).items()):
            if callable(value) and self._untrusted_code(value):
                self.findings.append(f"IPython's shell.{key} replaced by the student's code")
        for event, callbacks in getattr(shell.events, "callbacks", {}).items():
            if any(self._untrusted_code(cb) for cb in callbacks):
                self.findings.append(f"an IPython {event!r} callback registered")
        if getattr(shell, "custom_exceptions", ()):
            self.findings.append("IPython's custom exception handler set")
        if sys.excepthook is not sys.__excepthook__ and self._untrusted_code(sys.excepthook):
            self.findings.append("sys.excepthook replaced")

    def _trusted_file(self, filename: str) -> bool:
        filename = _text(filename)
        return (
            filename.startswith(self.trusted)
            or filename == self.own_file
            or filename.startswith(("<frozen ", *_PLAN_CODE))
        )

    def _protected_file(self, filename: str) -> bool:
        """The referee's own code and the plan's cells: frames whose locals hold the key or the tests."""
        filename = _text(filename)
        return filename == self.own_file or filename.startswith(_PLAN_CODE)

    def reaches_protected(self, event: str, args: tuple) -> bool:
        """Whether the frames a frame-reading event hands out could lead to a protected frame.

        Only such reads are refused: a library that looks at the student's own stack (TensorFlow
        tracing a function, namedtuple naming its module) is left alone.
        """
        with self.internal():
            if event == "sys._getframe":
                starts = [sys._getframe(2)]
            else:
                obj, name = args
                if name == "tb_frame":
                    starts, tb = [], obj
                    while tb is not None:
                        starts.append(tb.tb_frame)
                        tb = tb.tb_next
                else:
                    starts = [getattr(obj, name, None)]
                    code = (
                        getattr(obj, "gi_code", None) or getattr(obj, "cr_code", None) or getattr(obj, "ag_code", None)
                    )
                    if code is not None and self._protected_file(code.co_filename):
                        return True
            for frame in starts:
                while frame is not None:
                    code = frame.f_code
                    # main() started the kernel and dropped the plan and the referee: it holds nothing.
                    if self._protected_file(code.co_filename) and _text(code.co_name) not in _LAUNCH_FRAMES:
                        return True
                    frame = frame.f_back
            return False

    def internal(self):
        """A region where the referee itself reads frames or calls ctypes; no student code may run in it."""
        return _Internal(self.local)

    # -- the audit hook ------------------------------------------------------------------
    def student_on_stack(self) -> tuple[bool, str] | None:
        """None if no untrusted frame is on the stack; else (whether untrusted code asked directly, the caller)."""
        if getattr(self.local, "internal", False):
            return None
        with self.internal():
            frame = sys._getframe(2)
            caller = f"{_text(frame.f_code.co_filename)}:{_text(frame.f_code.co_name)}"
            direct = not self._trusted_file(frame.f_code.co_filename)
            while frame is not None:
                if not self._trusted_file(frame.f_code.co_filename):
                    return direct, caller
                frame = frame.f_back
            return None

    def audit(self, event: str, args: tuple) -> None:
        if event == "dlcourse.test" or event == "dlcourse.check":
            if (
                threading.get_ident() == self.main_ident
                and not self.test_running
                and len(args) == 2
                and all(self.type(a) is str for a in args)
            ):
                (self.run_test if event == "dlcourse.test" else self.run_check)(*args)
            return
        if getattr(self.local, "internal", False):
            return
        refusal = self.refuse(event, args)
        if refusal and event in _FRAME_EVENTS and not self.reaches_protected(event, args):
            return
        where = refusal and self.student_on_stack()
        if where:
            direct, caller = where
            if direct or event not in _QUIET_REFUSALS or self.debug:
                self.findings.append(f"refused: {refusal}" + (f" (from {caller})" if self.debug else ""))
            if event == "sys.addaudithook":
                raise _AuditRefusal(refusal)
            if event == "sys._getframe":
                raise ValueError("call stack is not deep enough")  # what CPython says past the bottom
            if event == "object.__getattr__":
                raise AttributeError(f"{refusal} is not available while grading")
            raise Denied(f"{refusal}: not allowed while grading")

    def refuse(self, event: str, args: tuple) -> str | None:
        """Why the operation must be refused when a student's frame is on the stack (None: allow)."""
        if event in ("sys._getframe", "sys._current_frames"):
            return "looking at call frames"
        if event == "object.__getattr__":
            return f"reading {args[1]}" if args[1] in _FRAME_ATTRS else None
        if event == "object.__setattr__" or event == "object.__delattr__":
            target = args[0]
            if args[1] in ("__class__", "__bases__") and id(target) in self.guarded:
                # Whoever's frame does it (a library can be made to): a library module's or class's
                # type or bases, never while a student's code runs. A lazy module may turn plain.
                if args[1] == "__class__" and len(args) > 2 and args[2] is types.ModuleType:
                    return None
                return f"changing the {'type' if args[1] == '__class__' else 'bases'} of a library's module or class"
            if (
                args[1] in _CODE_ATTRS
                and type(target) is types.FunctionType
                and (self._trusted_file(target.__code__.co_filename) or _text(target.__module__) == "__referee__")
            ):
                with self.internal():
                    caller = _text(sys._getframe(2).f_code.co_filename)
                if self._trusted_file(caller) and not self._in_snapshot(target):
                    return None  # a library setting up a function it just made (pyparsing does, on import)
                return f"changing {args[1]} of {target.__qualname__}"
            return None
        if event in ("sys.settrace", "sys.setprofile") or event.startswith("sys.monitoring"):
            return "tracing or profiling"
        if event == "sys.addaudithook":
            return "adding an audit hook"
        if event in ("gc.get_objects", "gc.get_referrers", "gc.get_referents"):
            return f"{event}()"
        if event in (
            "ctypes.cdata",
            "ctypes.string_at",
            "ctypes.wstring_at",
            "ctypes.call_function",
            "ctypes.dlsym",
            "ctypes.dlsym/handle",
        ):
            return "raw memory access through ctypes"
        if event in (
            "os.fork",
            "os.forkpty",
            "os.posix_spawn",
            "os.spawn",
            "os.exec",
            "os.system",
            "subprocess.Popen",
            "pty.spawn",
            "os.startfile",
        ):
            return "starting a process"
        if (
            event == "open"
            and args
            and type(args[0]) is str
            and args[0].startswith("/proc/")
            and args[0].endswith(_PROC_MEM)
        ):
            return f"opening {args[0]}"
        if event in ("compile", "code.__new__"):
            filename = args[1]
            if type(filename) is str and self._trusted_file(filename):
                return "compiling code that claims to be a library's"
        return None

    # -- records -------------------------------------------------------------------------
    def write_record(self, nonce: str, record: dict) -> None:
        """Sign ``record`` with the key and leave it where the grader reads it."""
        record["nonce"] = nonce
        record["findings"], self.findings = self.findings, []
        body = json.dumps(record, sort_keys=True)
        mac = hmac.new(self.key, body.encode(), hashlib.sha256).hexdigest()
        path = os.path.join(self.results, f"{nonce}.json")
        fd = os.open(path + ".part", os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(json.dumps({"body": body, "mac": mac}))
        os.replace(path + ".part", path)

    def run_check(self, nonce: str, label: str) -> None:
        """After a student cell: what it changed in the libraries or IPython (put back, and noted)."""
        self.check_modules_quickly()
        self.check(full=False)
        self.check_shell()
        self.write_record(nonce, {"kind": "check", "label": label})

    def check_modules_quickly(self) -> None:
        """After a student's cell: every library module as the snapshot has it (keys and objects)."""
        for i in self.changed("cell modules", len(self.watched_modules)):
            name, live, snap = self.watched_modules[i]
            if not _same_entries(live, snap):
                self._check_dict(name, live, snap, False, True)

    def check_after_call(self) -> None:
        """After each call of a student's function from a test: the libraries as the snapshot has them.

        A function could patch a library (a module's name, a class's method) for the test's next
        call into it to see, and have the patch remove itself when used, so that a check at the
        end of the test finds nothing: every module, class and ``sys.modules`` entry changed since
        the last call is compared here with the snapshot, and what changed is put back. Which
        dicts changed comes from their version tags (about 1 ms with TensorFlow loaded); without
        them every dict is compared by identity, in C-level loops (about 25 ms). The blockers of
        ``dlcourse.checks.assert_numpy_only``, in place while it calls the function, are the
        test's own doing.
        """
        blocks = self.block_codes
        if self.versions is None:
            self.check(full=False)
            for name, live, snap in self.watched_modules:
                if not _same_objects(live, snap):
                    self._check_dict(name, live, snap, False, True, blocks)
            for cls, snap in self.watched_classes:
                if not _same_objects(cls.__dict__, snap):
                    self._check_classdict(cls, snap, False, True, blocks)
            self.check_sys_modules(restore=True)
            self.check_containers("call containers")
            self.reset_keras_config()
            return
        # The hot modules are among the watched ones: check(full=False) would compare them again.
        for i in self.versions["call modules"].changed():
            name, live, snap = self.watched_modules[i]
            self._check_dict(name, live, snap, False, True, blocks)
        for i in self.versions["call classes"].changed():
            cls, snap = self.watched_classes[i]
            if not _same_entries(cls.__dict__, snap):
                self._check_classdict(cls, snap, False, True, blocks)
        if self.versions["call sys.modules"].changed():
            self.check_sys_modules(restore=True)
        self.check_containers("call containers")
        self.reset_keras_config()
        self.check_state()

    def check_containers(self, which: str) -> list[tuple[dict, object, object]]:
        """Take the student's classes and functions out of the libraries' module-level dicts (noted).

        Returns what was taken out, (dict, key, value), for ``run_test`` to put back once the test
        is over: the student's own cells may go on using what they registered. Values are told
        apart by identity from what the snapshot held; no method of the student's objects runs
        but a key's hash when one is taken out.
        """
        taken = []
        for i in self.changed(which, len(self.containers)):
            label, live, held = self.containers[i]
            for key, value in list(live.items()):
                if id(value) in held or not self._untrusted_code(value):
                    continue
                name = repr(key) if type(key) in (str, int) else f"<a {_type_name(key)}>"
                self.findings.append(f"{label}[{name}] set to the student's {_type_name(value)}")
                if live.get(key, _MISSING) is value:
                    del live[key]
                    taken.append((live, key, value))
        return taken

    def check_sys_modules(self, restore: bool) -> None:
        for name, module in self.sys_modules.items():
            if _module(name) is not module and name.split(".")[0] not in _QUIET_MODULES:
                self.findings.append(f"sys.modules[{name!r}] replaced")
                if restore:
                    _MODULES[name] = module

    # -- running a test ------------------------------------------------------------------
    def run_test(self, grade_id: str, nonce: str) -> None:
        start = time.perf_counter()
        record = {"kind": "test", "grade_id": grade_id, "passed": False, "output": ""}
        try:
            if grade_id not in self.tests:
                record["error"] = ["GradingError", f"no test cell {grade_id} in the plan", []]
            elif self.compromised:
                record.update(not_reached=True, error=["NotReached", self.compromised, []])
            else:
                gc.collect()  # finalizers of the student's garbage run now, before the check
                self.check(full=True)
                self.check_shell()
                self._reset_state()
                if self.ns is None:
                    self.ns = self.make_namespace()
                if self.setup_error:
                    record["error"] = ["SetupError", self.setup_error, []]
                else:
                    taken = self.check_containers("test containers")
                    seen = len(self.findings)
                    try:
                        self.check_threads()
                        self.bind_student_names()
                        passed, error, output, made = self.execute(self.tests[grade_id], f"<test {grade_id}>", grade_id)
                        self.check(full=True)
                        self.check_containers("test containers")
                        self.check_threads()
                    finally:
                        for live, key, value in taken:  # the student's registrations, for their own cells
                            live.setdefault(key, value)
                    tampered = self.findings[seen:]
                    if tampered and passed:
                        passed, error = (
                            False,
                            [
                                "Tampering",
                                "the grading machinery was changed while the test ran: " + "; ".join(tampered[:5]),
                                [],
                            ],
                        )
                    self.export(made)
                    record.update(passed=passed, error=error, output=output)
        except KeyboardInterrupt:
            record["error"] = ["KeyboardInterrupt", "the test was interrupted (time limit)", []]
        except BaseException as exc:  # the referee itself failed: say so, never pass
            record["error"] = ["GradingError", f"{type(exc).__name__}: {exc}", []]
        record["seconds"] = round(time.perf_counter() - start, 3)
        self.write_record(nonce, record)

    def _reset_state(self) -> None:
        """Settings the student may have changed that the tests' arithmetic depends on."""
        sys.setrecursionlimit(self.recursion_limit)
        np = _module("numpy")
        if np is not None:
            np.seterr(**self.np_errstate)
        self.reset_keras_config(always=True)
        try:
            os.chdir(self.workdir)
        except OSError:
            pass

    def reset_keras_config(self, always: bool = False) -> None:
        """Keras's global settings as recorded (a student's function may change them for itself, and
        the test's next layers must not be built channels-first or in float16 for it)."""
        keras = _module("keras")
        if keras is None or not self.keras_config:
            return
        floatx, epsilon, fmt, policy = self.keras_config
        c = keras.config
        if always or (c.floatx(), c.epsilon(), c.image_data_format()) != (floatx, epsilon, fmt):
            c.set_floatx(floatx)
            c.set_epsilon(epsilon)
            c.set_image_data_format(fmt)
        if always or c.dtype_policy() is not policy:
            c.set_dtype_policy(policy)

    def make_namespace(self) -> dict:
        """Run the setup cells in the referee's own namespace (once, before the first test).

        Only here does ``dlcourse.data`` read the real data files the sandbox withholds.
        """
        ns = {"__name__": "__referee__", "__builtins__": self.builtins_copy}
        data = _module("dlcourse.data")
        if data is not None and self.withheld:
            data._originals = self.withheld
        try:
            for i, source in enumerate(self.setup):
                passed, error, _, _ = self.execute(source, f"<setup {i + 1}>", None, ns=ns)
                if not passed:
                    self.setup_error = f"the setup cell failed: {error[0]}: {error[1]}"
                    break
        finally:
            if data is not None:
                data._originals = None
        self.freeze_arrays(ns)
        return ns

    def freeze_arrays(self, ns: dict) -> None:
        """Make the setup data read-only for good: views of immutable bytes."""
        np = _module("numpy")
        if np is None:
            return
        for name, value in list(ns.items()):
            if type(value) is np.ndarray and value.dtype != object:
                ns[name] = np.frombuffer(value.tobytes(), dtype=value.dtype).reshape(value.shape)

    def bind_student_names(self) -> None:
        """Put the exercises' functions into the test namespace, each behind a barrier."""
        user_ns = self.user_ns
        for name in self.student_names:
            value = dict.get(user_ns, name, _MISSING)
            if value is _MISSING:
                self.ns.pop(name, None)
            elif callable(value):
                self.ns[name] = _barrier(self, name, value)
            else:
                try:
                    self.ns[name] = _plain(self, value, name)
                except Exception:
                    self.ns.pop(name, None)

    def execute(self, source: str, filename: str, grade_id: str | None, ns: dict | None = None):
        """Run ``source`` in a fresh thread; (passed, error, output, names it assigned)."""
        ns = self.ns if ns is None else ns
        try:
            with self.internal():  # the name marks it as the plan's code: student code may not compile under it
                tree = ast.parse(source, filename)
        except SyntaxError as exc:
            return False, ["SyntaxError", str(exc), []], "", {}
        token = secrets.token_hex(16)
        done, failed = set(), []
        lock = _thread.allocate_lock()
        lock.acquire()
        with self.internal():
            code = self.compile(_wrap(tree, token), filename, "exec")
        helpers = {"__referee_done__": done.add, "__referee_fail__": failed.append, "__referee_release__": lock.release}
        before = dict(ns)
        ns.update(helpers)
        capture = _Capture()
        saved = (sys.stdout, sys.stderr)
        handlers = _quiet_signals()
        gc.disable()
        self.test_running = True
        ident = None
        try:
            sys.stdout = sys.stderr = capture
            ident = _thread.start_new_thread(functools.partial(self.exec, code, ns), ())
            while not lock.acquire(timeout=0.05):
                pass
        except KeyboardInterrupt:
            if ident is not None:
                with self.internal():
                    _async_raise(ident, KeyboardInterrupt)
                if not lock.acquire(timeout=10):
                    self.compromised = "not reached (time limit): an earlier test did not stop when interrupted"
            failed.insert(0, KeyboardInterrupt("the test was interrupted (time limit)"))
        finally:
            self.test_running = False
            sys.stdout, sys.stderr = saved
            gc.enable()
            _restore_signals(handlers)
        for key in helpers:
            ns.pop(key, None)
        passed = token in done and not failed
        error = None if passed else self.describe(failed[0] if failed else None, grade_id)
        made = {
            k: v
            for k, v in ns.items()
            if before.get(k, _MISSING) is not v and not k.startswith("__") and k not in self.student_names
        }
        return passed, error, capture.text(), made

    def describe(self, exc, grade_id: str | None) -> list:
        """[ename, evalue, traceback lines] of a failure, without the hidden tests' code."""
        if exc is None:
            return ["Incomplete", "the test did not run to its end", []]
        cls = type(exc)
        ename = type.__dict__["__name__"].__get__(cls)
        if not issubclass(cls, BaseException):
            return [ename, "", []]
        evalue = _plain_message(BaseException.__dict__["args"].__get__(exc))[:4000]
        source = self.tests.get(grade_id, "") if grade_id else ""
        lines_of = source.splitlines()
        hidden_from = _hidden_start(source)
        lines = []
        with self.internal():
            tb = BaseException.__dict__["__traceback__"].__get__(exc)
            while tb is not None:
                frame = tb.tb_frame
                filename, lineno, name = _text(frame.f_code.co_filename), tb.tb_lineno, _text(frame.f_code.co_name)
                if filename.startswith("<test "):
                    if hidden_from and lineno >= hidden_from:
                        lines.append(f"in a hidden test (line {lineno} of the test cell)")
                    elif 0 < lineno <= len(lines_of):
                        lines.append(f"line {lineno} of the test cell: {lines_of[lineno - 1].strip()}")
                elif filename.startswith("<setup "):
                    lines.append(f"line {lineno} of the setup cell")
                elif not self._trusted_file(filename):
                    lines.append(f"in your code: {name}(), line {lineno}")
                tb = tb.tb_next
        return [ename, evalue, lines[-8:]]

    def export(self, names: dict) -> None:
        """Copy models, arrays and numbers a test made into the student's namespace, for the demos after it."""
        np = _module("numpy")
        keras = _module("keras")
        for name, value in names.items():
            if np is not None and type(value) is np.ndarray:
                self.user_ns[name] = value.copy()
            elif type(value) in (int, float, bool, str) or (keras is not None and isinstance(value, keras.Model)):
                self.user_ns[name] = value


class _Internal:
    def __init__(self, local):
        self.local = local

    def __enter__(self):
        self.previous = getattr(self.local, "internal", False)
        self.local.internal = True

    def __exit__(self, *exc):
        self.local.internal = self.previous
        return False


def _plain_message(args: tuple) -> str:
    return "; ".join(a if type(a) is str else repr(a) if type(a) in (int, float, bool) else "..." for a in args)


def _hidden_start(source: str) -> int | None:
    for i, line in enumerate(source.splitlines(), 1):
        if line.strip().startswith("### BEGIN HIDDEN TESTS"):
            return i
    return None


def _wrap(tree: ast.Module, token: str) -> ast.Module:
    """try: <test> / except BaseException as e: fail(e) / else: done(token) / finally: release()."""
    wrapper = ast.parse(
        "try:\n"
        "    try:\n"
        "        pass\n"
        "    except BaseException as __referee_exc__:\n"
        "        __referee_fail__(__referee_exc__)\n"
        "    else:\n"
        f"        __referee_done__({token!r})\n"
        "finally:\n"
        "    __referee_release__()\n"
    )
    wrapper.body[0].body[0].body = tree.body or [ast.Pass()]
    return ast.fix_missing_locations(wrapper)


class _Capture(io.TextIOBase):
    """stdout/stderr of a test: kept up to a size, the rest dropped with a note."""

    def __init__(self):
        self.parts, self.size, self.dropped = [], 0, 0

    def write(self, text):
        text = text if type(text) is str else str.__str__(text) if isinstance(text, str) else "?"
        room = _MAX_OUTPUT - self.size
        if room > 0:
            self.parts.append(text[:room])
            self.size += min(len(text), room)
        self.dropped += max(0, len(text) - max(room, 0))
        return len(text)

    def writable(self):
        return True

    def text(self) -> str:
        out = "".join(self.parts)
        return out + (f"\n... {self.dropped} characters of output dropped\n" if self.dropped else "")


def _quiet_signals() -> dict:
    """While a test runs only Ctrl-C (the grader's time limit) interrupts it, and no handler of the student's runs."""
    saved = {}
    for name in ("SIGINT", "SIGALRM", "SIGVTALRM", "SIGPROF", "SIGUSR1", "SIGUSR2", "SIGHUP", "SIGWINCH"):
        sig = getattr(signal, name, None)
        if sig is None:
            continue
        try:
            saved[sig] = signal.getsignal(sig)
            signal.signal(sig, signal.default_int_handler if sig == signal.SIGINT else signal.SIG_IGN)
        except (ValueError, OSError, TypeError):
            pass
    return saved


def _restore_signals(saved: dict) -> None:
    for sig, handler in saved.items():
        try:
            if handler is not None:
                signal.signal(sig, handler)
        except (ValueError, OSError, TypeError):
            pass


def _async_raise(ident: int, exc_type: type) -> None:
    import ctypes

    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(ident), ctypes.py_object(exc_type))


# -- the barrier between a test and the student's functions -------------------------------
_BUILTIN_ERRORS = tuple(v for v in vars(builtins).values() if isinstance(v, type) and issubclass(v, BaseException))


# The student's function runs in a thread whose stack holds no frame of the referee or of the
# test: whatever it (or a library it calls) finds by walking frames is its own. The runner is
# compiled under a name of its own so that it is not a protected frame; it holds nothing secret.
_RUNNER = {}
exec(
    compile(
        "def run(target, args, kwargs, box, release):\n"
        "    try:\n"
        "        box.append((True, target(*args, **kwargs)))\n"
        "    except BaseException as exc:\n"
        "        box.append((False, exc))\n"
        "    finally:\n"
        "        release()\n",
        "<barrier>",
        "exec",
    ),
    _RUNNER,
)


def _call_apart(referee: Referee, target, args: tuple, kwargs: dict):
    """``target(*args, **kwargs)`` in a fresh thread; its result, or its exception raised here.

    The thread runs in a copy of the test's context: NumPy's error state (``np.errstate``, a
    context variable) holds there as it does for a direct call, and what the function sets stays
    in its copy.
    """
    box: list = []
    lock = _thread.allocate_lock()
    lock.acquire()
    run = contextvars.copy_context().run
    ident = _thread.start_new_thread(_RUNNER["run"], (run, (target, *args), kwargs, box, lock.release))
    try:
        while not lock.acquire(timeout=0.05):
            pass
    except KeyboardInterrupt:  # the time limit: pass it on to the student's thread
        with referee.internal():
            _async_raise(ident, KeyboardInterrupt)
        if not lock.acquire(timeout=10):
            referee.compromised = "not reached (time limit): an earlier test did not stop when interrupted"
        raise
    ok, value = box[0] if box else (False, RuntimeError("the function's thread ended without a result"))
    if ok:
        return value
    raise value


def _barrier(referee: Referee, name: str, target):
    """A stand-in for the student's function: copies in, plain data out, a check after every call."""

    def call(*args, **kwargs):
        args = tuple(_copy_arg(name, a) for a in args)
        kwargs = {k: _copy_arg(name, v) for k, v in kwargs.items()}
        try:
            result = _call_apart(referee, target, args, kwargs)
        except KeyboardInterrupt:
            raise
        except BaseException as exc:
            error = _plain_error(name, exc)
            del exc
            referee.check_after_call()
            raise error from None
        try:
            value = _plain(referee, result, name)
        finally:
            del result
            referee.check_after_call()
        return value

    call.__name__ = call.__qualname__ = name
    return call


def _plain_error(name: str, exc: BaseException) -> BaseException:
    """The same kind of error the student's code raised, made of plain parts (no student method runs later)."""
    cls = type(exc)
    base = next((c for c in type.__dict__["__mro__"].__get__(cls) if c in _BUILTIN_ERRORS), RuntimeError)
    message = _plain_message(BaseException.__dict__["args"].__get__(exc))
    if base is not cls:
        message = f"{type.__dict__['__name__'].__get__(cls)}: {message}"
    try:
        return base(message)
    except Exception:
        return RuntimeError(f"{name} raised {base.__name__}: {message}")


def _copy_arg(name: str, value):
    """What the student's function receives: copies, so that nothing the test holds can be changed."""
    np = _module("numpy")
    t = type(value)
    if np is not None and issubclass(t, np.ndarray):
        return np.array(value, copy=True)
    if t in (list, tuple):
        return t(_copy_arg(name, v) for v in value)
    if t is dict:
        return {k: _copy_arg(name, v) for k, v in value.items()}
    keras = _module("keras")
    if keras is not None and isinstance(value, keras.Model):
        clone = keras.models.clone_model(value)
        clone.set_weights(value.get_weights())
        return clone
    if t is types.FunctionType or t is types.MethodType:
        raise TypeError(
            f"a test passes a Python function to {name}: pass NumPy or builtin functions "
            "(or functools.partial of them), whose globals expose nothing"
        )
    if t is functools.partial:
        _copy_arg(name, value.func)
    return value


_SCALARS = (bool, int, float, complex, str, bytes, type(None))


def _plain(referee: Referee, value, name: str, depth: int = 0):
    """``value`` as plain data the test can trust, or TypeError naming what was returned."""
    if depth > 20:
        raise TypeError(f"{name} returned data nested too deeply")
    t = type(value)
    if t in _SCALARS:
        return value
    np = _module("numpy")
    if np is not None:
        if issubclass(t, np.generic) and t.__module__ == "numpy":
            return np.asarray(value).copy()[()]
        if issubclass(t, np.ndarray):
            array = np.array(value, copy=True, subok=False)
            if array.dtype.kind not in "biufc":
                raise TypeError(
                    f"{name} returned an array of dtype {array.dtype}: the grader reads numeric arrays only"
                )
            return array
    if issubclass(t, bool):
        return bool(int.__index__(value))
    if issubclass(t, int):
        return int.__index__(value) + 0
    if issubclass(t, float):
        return float.__float__(value)
    if issubclass(t, str):
        return str.__str__(value)
    module, tname = t.__module__, t.__name__
    if (module.startswith("tensorflow") and tname in ("EagerTensor", "ResourceVariable")) or (
        module.startswith("keras") and tname == "Variable"
    ):
        return _plain(referee, np.asarray(value), name, depth + 1)
    if issubclass(t, tuple):
        return tuple(_plain(referee, v, name, depth + 1) for v in tuple.__iter__(value))
    if issubclass(t, list):
        return [_plain(referee, v, name, depth + 1) for v in list.__iter__(value)]
    if issubclass(t, dict):
        return {_plain(referee, k, name, depth + 1): _plain(referee, v, name, depth + 1) for k, v in dict.items(value)}
    keras = _module("keras")
    if keras is not None and issubclass(t, keras.Model):
        return _rebuild_model(referee, value, name)
    raise TypeError(
        f"{name} returned a {type.__dict__['__name__'].__get__(t)}, which the grader cannot read: "
        "return numbers, strings, NumPy arrays, lists/tuples/dicts of them, or a Keras model"
    )


def _json_only(value, depth=0):
    """A Keras config as pure JSON data (dict/list/str/number/bool/None), or TypeError."""
    t = type(value)
    if t in (str, int, float, bool, type(None)):
        return value
    if depth > 60:
        raise TypeError("model config nested too deeply")
    if t in (list, tuple):
        return [_json_only(v, depth + 1) for v in value]
    if t is dict:
        return {str(k) if type(k) is str else _json_only(k): _json_only(v, depth + 1) for k, v in dict.items(value)}
    raise TypeError(f"the model's config holds a {t.__name__}")


def _rebuild_model(referee: Referee, model, name: str):
    """The same network rebuilt from its config and weights with Keras's own layer classes only."""
    import keras

    try:
        config = _json_only(keras.saving.serialize_keras_object(model))
        rebuilt = keras.saving.deserialize_keras_object(config, safe_mode=True)
    except Exception as exc:
        raise TypeError(
            f"{name} returned a model the grader cannot rebuild from its config ({type(exc).__name__}: "
            f"{str(exc)[:200]}): use keras.Sequential or the functional API with Keras's built-in layers"
        ) from None
    for layer in _all_layers(rebuilt):
        cls = type(layer)
        if not cls.__module__.startswith("keras.src."):
            raise TypeError(
                f"{name} returned a model with a {cls.__name__} layer: only Keras's built-in layers are graded"
            )
    weights = [_plain(referee, w, name) for w in model.get_weights()]
    rebuilt.set_weights(weights)
    if getattr(model, "compiled", False):
        try:
            compile_config = _json_only(model.get_compile_config())
            if compile_config:
                rebuilt.compile_from_config(compile_config)
        except Exception as exc:
            raise TypeError(
                f"{name}: the grader cannot rebuild the model's compile settings ({str(exc)[:200]})"
            ) from None
    return rebuilt


def _all_layers(model):
    stack = list(getattr(model, "layers", []))
    seen = []
    while stack:
        layer = stack.pop()
        seen.append(layer)
        stack.extend(getattr(layer, "layers", []) or [])
        inner = getattr(layer, "layer", None) or getattr(layer, "forward_layer", None)
        if inner is not None:
            stack.append(inner)
        back = getattr(layer, "backward_layer", None)
        if back is not None:
            stack.append(back)
    return seen


# -- start-up --------------------------------------------------------------------------------
def _read_fd(fd: int) -> bytes:
    with os.fdopen(fd, "rb") as f:
        return f.read()


def _read_plan(fd: int) -> dict:
    with os.fdopen(fd, "rb") as f:
        return json.loads(f.read().decode("utf-8"))


# Imported by a preloaded module for a feature grading never uses: TensorFlow's TFLite helpers
# import JAX where it is installed (0.7 s of every kernel's start) to convert JAX functions.
_NOT_PRELOADED = ("jax",)


def _preload(modules: list[str]) -> None:
    """Import what the tests use, with TensorFlow's start-up chatter kept out of every output.

    The packages in ``_NOT_PRELOADED`` are held back meanwhile (unless a test imports them);
    the student's code can still import them.
    """
    held = [
        name
        for name in _NOT_PRELOADED
        if name not in sys.modules and not any(m == name or m.startswith(name + ".") for m in modules)
    ]
    for name in held:
        sys.modules[name] = None  # `import name` raises ImportError, as where it is not installed
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        for name in modules:
            try:
                __import__(name)
            except Exception:
                pass
        keras = _module("keras")
        if keras is not None:
            keras.config.disable_traceback_filtering()
        tf = _module("tensorflow")
        if tf is not None:
            tf.debugging.disable_traceback_filtering()
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
        for name in held:
            if _module(name, ...) is None:
                del sys.modules[name]


def _arm(plan: dict):
    referee = Referee(plan)
    sys.addaudithook(referee.audit)
    return referee


def main(argv: list[str]) -> None:
    if len(argv) < 2 or argv[0] != "--plan-fd":
        sys.exit("usage: referee.py --plan-fd FD KERNEL-ARGS... (started by the grader's sandbox)")
    plan = _read_plan(int(argv[1]))
    sys.path.insert(0, plan["root"])
    # Until the student's first cell, everything made lives as long as the kernel: collecting
    # it costs about a sixth of TensorFlow's import, and the collections before each test (and
    # the student's own) need not scan it again (TensorFlow's objects: 170 ms per collection).
    gc.disable()
    _preload(plan.get("preload", []))
    referee = _arm(plan)
    del plan
    from ipykernel.kernelapp import IPKernelApp

    app = IPKernelApp.instance()
    app.initialize(argv[2:])
    referee.attach(app.shell)
    del referee
    gc.freeze()
    gc.enable()
    app.start()


if __name__ == "__main__":
    main(sys.argv[1:])
