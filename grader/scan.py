"""Read a submission's code for signs that it reaches into the grading machinery.

This is not the defence (the referee is: see ``grader/referee.py``); it makes attempts visible
to the instructor even when they fail, as ``review:`` in the status.  Each finding names what
was reached and the cell it is in.
"""

from __future__ import annotations

import ast
import threading

# Attributes of IPython's shell and of Python's runtime that an exercise never needs.
MACHINERY_ATTRS = {
    "input_transformers_cleanup": "IPython's input transformers",
    "input_transformers_post": "IPython's input transformers",
    "ast_transformers": "IPython's AST transformers",
    "run_cell": "IPython's cell runner",
    "run_cell_async": "IPython's cell runner",
    "run_ast_nodes": "IPython's cell runner",
    "run_code": "IPython's cell runner",
    "transform_cell": "IPython's cell runner",
    "showtraceback": "IPython's traceback display",
    "set_custom_exc": "IPython's exception handler",
    "custom_exceptions": "IPython's exception handler",
    "do_execute": "the kernel's execute handler",
    "execute_request": "the kernel's execute handler",
    "settrace": "a trace function",
    "setprofile": "a profile function",
    "_getframe": "call frames",
    "f_back": "call frames",
    "f_locals": "call frames",
    "f_globals": "call frames",
    "tb_frame": "call frames",
    "gi_frame": "call frames",
    "__code__": "a function's code",
    "__closure__": "a function's closure",
    "cell_contents": "a function's closure",
    "__kwdefaults__": "a function's defaults",
    "addaudithook": "an audit hook",
    "_current_frames": "call frames",
    "get_referrers": "the garbage collector",
    "get_objects": "the garbage collector",
    "get_referents": "the garbage collector",
    "register_callback": "the interpreter's monitoring",
    "use_tool_id": "the interpreter's monitoring",
}
GUARDED_MODULES = {
    "builtins",
    "__builtins__",
    "numpy",
    "np",
    "dlcourse",
    "dlc",
    "checks",
    "testing",
    "keras",
    "tensorflow",
    "tf",
    "sys",
    "math",
    "IPython",
    "ipykernel",
    "grader",
}
SUSPECT_IMPORTS = {
    "ctypes": "raw memory access (ctypes)",
    "gc": "the garbage collector",
    "grader": "the grader's own code",
    "inspect": "call frames (inspect)",
    "ipykernel": "the kernel's internals",
    "_thread": "low-level threads",
    "pdb": "a debugger",
    "bdb": "a debugger",
    "trace": "a trace function",
    "dis": "bytecode",
}
ALWAYS_EQUAL = {
    "__eq__",
    "__ne__",
    "__bool__",
    "__array__",
    "__array_ufunc__",
    "__array_function__",
    "__instancecheck__",
    "__subclasscheck__",
}


def findings_in(source: str, label: str) -> list[str]:
    """What ``source`` (one code cell, IPython syntax allowed) reaches into, as review notes."""
    tree = _parse(source)
    if tree is None:
        return []
    found: dict[str, None] = {}
    guarded = set(GUARDED_MODULES)
    for node in ast.walk(tree):  # aliases of guarded modules (import builtins as b)
        if isinstance(node, ast.Import):
            guarded |= {a.asname for a in node.names if a.asname and a.name.split(".")[0] in GUARDED_MODULES}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in GUARDED_MODULES:
            guarded |= {a.asname or a.name for a in node.names}

    def note(what: str) -> None:
        found.setdefault(f"{what} (cell {label})")

    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in MACHINERY_ATTRS:
            note(f"reaches {MACHINERY_ATTRS[node.attr]} (.{node.attr})")
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            for name in names:
                top = name.split(".")[0]
                if top in SUSPECT_IMPORTS:
                    note(f"imports {SUSPECT_IMPORTS[top]}")
                if (
                    name in ("numpy.testing", "dlcourse.checks")
                    and isinstance(node, ast.ImportFrom)
                    and node.level == 0
                ):
                    pass
        elif isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign, ast.Delete)):
            targets = node.targets if isinstance(node, (ast.Assign, ast.Delete)) else [node.target]
            for target in targets:
                root = _root_name(target)
                if isinstance(target, (ast.Attribute, ast.Subscript)) and root in guarded:
                    note(f"changes {_dotted(target)}")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("setattr", "delattr"):
            if node.args and _root_name(node.args[0]) in guarded:
                note(f"changes an attribute of {_dotted(node.args[0])} with {node.func.id}()")
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in ("__setattr__", "__delattr__")
            and isinstance(node.func.value, ast.Name)
            and node.func.value.id in ("type", "object")
            and node.args
            and (node.func.value.id == "type" or _root_name(node.args[0]) in guarded)
        ):
            note(f"changes an attribute of {_dotted(node.args[0])} with {node.func.value.id}.{node.func.attr}()")
        elif isinstance(node, ast.Call) and _dotted(node.func).endswith(("events.register", "events.unregister")):
            note("registers an IPython event callback")
        elif isinstance(node, ast.Constant) and node.value in ("__class__", "__bases__"):
            what = "an object's class" if node.value == "__class__" else "a class's bases"
            note(f"names {node.value} ({what}) as a string")
        elif (
            isinstance(node, ast.Attribute)
            and node.attr in ("__class__", "__bases__")
            and isinstance(node.ctx, ast.Store)
        ):
            note(f"changes an object's {node.attr}")
        elif isinstance(node, ast.ClassDef) and any(
            isinstance(b, ast.Name) and b.id in ("str", "dict") for b in node.bases
        ):
            note("defines a subclass of str or dict (its methods run wherever it is read)")
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name in ALWAYS_EQUAL:
            note(f"defines {node.name} (an object that can answer any comparison)")
        elif (
            isinstance(node, ast.Name) and node.id in ("__builtins__", "get_ipython") and isinstance(node.ctx, ast.Load)
        ):
            if node.id == "__builtins__":
                note("reaches __builtins__")
    return list(found)


# CPython (3.11 here) keeps the AST constructor's recursion depth in one global: two threads
# parsing at once (jobs grade in threads) can fail with "SystemError: AST constructor recursion
# depth mismatch" (python/cpython#106905).
_PARSE_LOCK = threading.Lock()


def _parse(source: str) -> ast.AST | None:
    with _PARSE_LOCK:
        return _parse_alone(source)


def _parse_alone(source: str) -> ast.AST | None:
    try:
        from IPython.core.inputtransformer2 import TransformerManager

        source = TransformerManager().transform_cell(source)
    except Exception:
        pass
    try:
        return ast.parse(source)
    except (SyntaxError, ValueError, RecursionError):
        return None


def _root_name(node: ast.AST) -> str | None:
    while isinstance(node, (ast.Attribute, ast.Subscript, ast.Call)):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in ("__import__", "import_module")
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            return node.args[0].value.split(".")[0]
        node = node.value if not isinstance(node, ast.Call) else node.func
    return node.id if isinstance(node, ast.Name) else None


def _dotted(node: ast.AST) -> str:
    parts = []
    while isinstance(node, (ast.Attribute, ast.Subscript, ast.Call)):
        if isinstance(node, ast.Attribute):
            parts.append(node.attr)
            node = node.value
        elif isinstance(node, ast.Subscript):
            parts.append("[...]")
            node = node.value
        else:
            parts.append("()")
            node = node.func
    if isinstance(node, ast.Name):
        parts.append(node.id)
    return ".".join(reversed(parts)).replace(".[", "[").replace(".()", "()")


def scan_notebook(nb: dict, locked_sources: set[str]) -> list[str]:
    """Review notes for every code cell the student wrote (cells identical to locked ones are skipped)."""
    notes = []
    for i, cell in enumerate(nb.get("cells", [])):
        if cell.get("cell_type") != "code":
            continue
        source = "".join(cell.get("source", "")) if isinstance(cell.get("source"), list) else cell.get("source", "")
        if source in locked_sources:
            continue
        meta = cell.get("metadata", {}).get("nbgrader", {})
        label = meta.get("grade_id") if isinstance(meta, dict) and meta.get("grade_id") else f"#{i + 1}"
        notes += findings_in(source, label)
    return notes
