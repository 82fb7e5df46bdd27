"""Read what a `model_manager.py` syntax tree says about its `ModelManager`, without running it."""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

__all__ = ["ModelManagerInspection", "inspect_model_manager"]

#: Bases known to implement none of the contract's methods (by import origin or bare name).
_EMPTY_BASES = frozenset(
    {
        "flops_utils.ml_repo_templates.ModelManagerTemplate",
        "ModelManagerTemplate",
        "abc.ABC",
        "ABC",
        "object",
        "typing.Generic",
        "typing.Protocol",
    }
)

#: A class in the method resolution order, or None for a base the checker cannot see.
_Entry = ast.ClassDef | None


@dataclass(frozen=True)
class ModelManagerInspection:
    """What a `model_manager.py` defines under the name `ModelManager`.

    Parameters
    ----------
    binding : str
        How the name is bound at the top level: `class`, `alias` (an assignment), `import`,
        `function`, `star_import` (not bound, but a `from x import *` could bind it) or
        `missing`.
    line : int | None
        The line of that binding.
    class_name : str | None
        The class that was inspected: `ModelManager`, or the same-file class it aliases.
    methods_known : bool
        False when a base the checker cannot see could supply methods or `__init__`.
    missing_methods : tuple[str, ...]
        Required methods defined neither on the class nor on its visible bases.
    init_line : int | None
        The line of the `__init__` (or dataclass) that needs `required_init_args`.
    required_init_args : tuple[str, ...]
        Constructor arguments without default values.
    star_imports : tuple[str, ...]
        Modules imported with `*`.
    """

    binding: str
    line: int | None = None
    class_name: str | None = None
    methods_known: bool = True
    missing_methods: tuple[str, ...] = ()
    init_line: int | None = None
    required_init_args: tuple[str, ...] = ()
    star_imports: tuple[str, ...] = ()


def inspect_model_manager(tree: ast.Module, required: Iterable[str]) -> ModelManagerInspection:
    """Find `ModelManager` in a parsed `model_manager.py` and check it against `required`.

    Parameters
    ----------
    tree : ast.Module
        The parsed file.
    required : Iterable[str]
        Method names the class must define (`REQUIRED_MODEL_MANAGER_METHODS`).

    Returns
    -------
    ModelManagerInspection
        How the name is bound and, for a class in this file, what it lacks.
    """
    classes: dict[str, ast.ClassDef] = {}
    imports: dict[str, str] = {}
    stars: list[str] = []
    binding: tuple[str, ast.stmt] | None = None
    for stmt in _statements(tree.body):
        if isinstance(stmt, ast.ClassDef):
            classes[stmt.name] = stmt
        elif isinstance(stmt, ast.Import | ast.ImportFrom):
            stars.extend(_record_imports(stmt, imports))
        if "ModelManager" in _bound_names(stmt):
            binding = (_binding_kind(stmt), stmt)
    if binding is None:
        kind = "star_import" if stars else "missing"
        return ModelManagerInspection(kind, star_imports=tuple(stars))
    kind, stmt = binding
    cls: ast.ClassDef | None = stmt if isinstance(stmt, ast.ClassDef) else None
    if isinstance(stmt, ast.Assign | ast.AnnAssign) and isinstance(stmt.value, ast.Name):
        cls = classes.get(stmt.value.id)
    if cls is None:
        return ModelManagerInspection(kind, stmt.lineno, star_imports=tuple(stars))
    order = _linearize(cls, classes, imports, seen=set())
    methods_known = None not in order
    defined = {name for entry in order if entry is not None for name in _member_names(entry)}
    missing = tuple(m for m in required if m not in defined) if methods_known else ()
    init_line, init_args = _constructor(order)
    return ModelManagerInspection(
        kind, stmt.lineno, cls.name, methods_known, missing, init_line, init_args, tuple(stars)
    )


def _statements(body: Iterable[ast.stmt]) -> Iterator[ast.stmt]:
    """Yield the statements of a body, including those inside `if` and `try` blocks."""
    for stmt in body:
        yield stmt
        if isinstance(stmt, ast.If):
            yield from _statements([*stmt.body, *stmt.orelse])
        elif isinstance(stmt, ast.Try | ast.TryStar):
            handlers = [s for h in stmt.handlers for s in h.body]
            yield from _statements([*stmt.body, *handlers, *stmt.orelse, *stmt.finalbody])


def _record_imports(stmt: ast.Import | ast.ImportFrom, imports: dict[str, str]) -> list[str]:
    """Record `bound name -> dotted origin` of an import; return star-imported modules."""
    if isinstance(stmt, ast.Import):
        for alias in stmt.names:
            bound = alias.asname or alias.name.split(".")[0]
            imports[bound] = alias.name if alias.asname else bound
        return []
    module = "." * stmt.level + (stmt.module or "")
    for alias in stmt.names:
        if alias.name != "*":
            imports[alias.asname or alias.name] = f"{module}.{alias.name}"
    return [module for alias in stmt.names if alias.name == "*"]


def _bound_names(stmt: ast.stmt) -> set[str]:
    """Return the names a top-level statement binds."""
    if isinstance(stmt, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
        return {stmt.name}
    if isinstance(stmt, ast.Import | ast.ImportFrom):
        return {a.asname or a.name.split(".")[0] for a in stmt.names if a.name != "*"}
    targets: list[ast.expr] = []
    if isinstance(stmt, ast.Assign):
        targets = stmt.targets
    elif isinstance(stmt, ast.AugAssign) or (
        isinstance(stmt, ast.AnnAssign) and stmt.value is not None
    ):
        targets = [stmt.target]
    return {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}


def _binding_kind(stmt: ast.stmt) -> str:
    if isinstance(stmt, ast.ClassDef):
        return "class"
    if isinstance(stmt, ast.Import | ast.ImportFrom):
        return "import"
    if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef):
        return "function"
    return "alias"


def _dotted(expr: ast.expr) -> str | None:
    """Return `a.b.C` for a base written as a name or attribute (`Generic[T]` -> `Generic`)."""
    if isinstance(expr, ast.Subscript):
        return _dotted(expr.value)
    if isinstance(expr, ast.Name):
        return expr.id
    if isinstance(expr, ast.Attribute):
        owner = _dotted(expr.value)
        return f"{owner}.{expr.attr}" if owner else None
    return None


def _linearize(
    cls: ast.ClassDef, classes: dict[str, ast.ClassDef], imports: dict[str, str], seen: set[str]
) -> list[_Entry]:
    """Approximate the method resolution order: same-file classes, None for unknown bases."""
    seen.add(cls.name)
    order: list[_Entry] = [cls]
    for base in cls.bases:
        dotted = _dotted(base)
        if dotted in classes and dotted not in seen:
            order.extend(_linearize(classes[dotted], classes, imports, seen))
            continue
        first = (dotted or "").split(".")[0]
        origin = imports[first] + (dotted or "")[len(first) :] if first in imports else dotted
        if origin not in _EMPTY_BASES:
            order.append(None)
    return order


def _member_names(cls: ast.ClassDef) -> set[str]:
    names: set[str] = set()
    for stmt in _statements(cls.body):
        if not isinstance(stmt, ast.ClassDef | ast.Import | ast.ImportFrom):
            names |= _bound_names(stmt)
    return names


def _constructor(order: list[_Entry]) -> tuple[int | None, tuple[str, ...]]:
    """Return the line and required arguments of the constructor `ModelManager()` calls."""
    for entry in order:
        if entry is None:
            return None, ()
        for stmt in _statements(entry.body):
            if isinstance(stmt, ast.FunctionDef) and stmt.name == "__init__":
                return stmt.lineno, _required_args(stmt.args)
        if _is_dataclass(entry):
            return entry.lineno, _required_fields(entry)
    return None, ()


def _required_args(args: ast.arguments) -> tuple[str, ...]:
    positional = [*args.posonlyargs, *args.args]
    without_default = positional[: len(positional) - len(args.defaults)][1:]  # skip self
    keyword_only = [a for a, d in zip(args.kwonlyargs, args.kw_defaults, strict=True) if d is None]
    return tuple(a.arg for a in [*without_default, *keyword_only])


def _is_dataclass(cls: ast.ClassDef) -> bool:
    for decorator in cls.decorator_list:
        call = decorator if isinstance(decorator, ast.Call) else None
        name = _dotted(call.func if call else decorator) or ""
        if name.split(".")[-1] == "dataclass":
            return not any(
                k.arg == "init" and isinstance(k.value, ast.Constant) and k.value.value is False
                for k in (call.keywords if call else [])
            )
    return False


def _required_fields(cls: ast.ClassDef) -> tuple[str, ...]:
    """Return a dataclass's own fields that have no default (so the constructor needs them)."""
    required: list[str] = []
    for stmt in cls.body:
        if not isinstance(stmt, ast.AnnAssign) or not isinstance(stmt.target, ast.Name):
            continue
        kind = (_dotted(stmt.annotation) or "").split(".")[-1]
        if kind in ("ClassVar", "KW_ONLY"):
            continue
        value = stmt.value
        if isinstance(value, ast.Call) and (_dotted(value.func) or "").endswith("field"):
            keywords = {k.arg: k.value for k in value.keywords}
            init = keywords.get("init")
            if isinstance(init, ast.Constant) and init.value is False:
                continue
            if "default" not in keywords and "default_factory" not in keywords:
                required.append(stmt.target.id)
        elif value is None:
            required.append(stmt.target.id)
    return tuple(required)
