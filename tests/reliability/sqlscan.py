"""Find SQL built by string formatting: calls that execute SQL (execute, sql, query,
...) whose SQL argument is an f-string with placeholders, a %-format, a .format(),
a str.join or a concatenation, directly or through a local variable assigned so.

Values must reach DuckDB as bound parameters ($name), and SQL text must come from
warehouse/*.sql or a literal. Paths of SQL files chosen with an f-string (run_sql's
file argument) are not SQL and are not flagged.
"""
from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

SQL_METHODS = {"execute", "executemany", "sql", "query", "from_query", "table", "view"}
SQL_KEYWORDS = ("query", "sql")


@dataclass(frozen=True)
class Violation:
    file: str
    line: int
    call: str
    how: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.call}(...) gets SQL built by {self.how}"


def _is_text(node: ast.AST) -> bool:
    return isinstance(node, ast.Constant) and isinstance(node.value, str)


FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)


def own_nodes(scope: ast.AST):
    """The nodes of a function (or module), not those of functions nested in it."""
    stack = list(ast.iter_child_nodes(scope))
    while stack:
        node = stack.pop()
        yield node
        if not isinstance(node, FUNCTIONS):
            stack.extend(ast.iter_child_nodes(node))


class _Scope:
    """Assignments to plain names within one function (or the module)."""

    def __init__(self, body: ast.AST):
        self.assigned: dict[str, list[ast.AST]] = {}
        for node in own_nodes(body):
            targets = []
            if isinstance(node, ast.Assign):
                targets, value = node.targets, node.value
            elif isinstance(node, (ast.AnnAssign, ast.AugAssign)) and node.value is not None:
                targets, value = [node.target], node.value
                if isinstance(node, ast.AugAssign):
                    value = ast.BinOp(left=node.target, op=node.op, right=node.value)
            for target in targets:
                if isinstance(target, ast.Name):
                    self.assigned.setdefault(target.id, []).append(value)


def _stringy(node: ast.AST, scope: "_Scope", seen: frozenset) -> bool:
    """Text, or a name bound to text somewhere in the scope."""
    if _is_text(node) or isinstance(node, ast.JoinedStr) or built_how(node, scope, seen):
        return True
    if isinstance(node, ast.Name):
        values = scope.assigned.get(node.id, [])
        if any(_is_text(v) or isinstance(v, ast.JoinedStr) for v in values):
            return True  # also for `text += name` after `text = "..."`
        if node.id not in seen:
            return any(_stringy(value, scope, seen | {node.id}) for value in values)
    return False


def built_how(node: ast.AST, scope: _Scope, seen: frozenset = frozenset()) -> str | None:
    """How `node` builds a string from pieces, or None when it does not."""
    if isinstance(node, ast.JoinedStr):
        return "an f-string" if any(isinstance(v, ast.FormattedValue) for v in node.values) else None
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod):
        if _is_text(node.left) or built_how(node.left, scope, seen):
            return "%-formatting"
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        if any(_stringy(side, scope, seen) for side in (node.left, node.right)):
            return "concatenation"
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        if node.func.attr == "format":
            return ".format()"
        if node.func.attr == "join" and _is_text(node.func.value):
            return "str.join"
    if isinstance(node, ast.Name) and node.id not in seen:
        for value in scope.assigned.get(node.id, []):
            how = built_how(value, scope, seen | {node.id})
            if how:
                return f"{how} (via '{node.id}')"
    if isinstance(node, ast.IfExp):
        return built_how(node.body, scope, seen) or built_how(node.orelse, scope, seen)
    return None


def scan_source(source: str, file: str) -> list[Violation]:
    tree = ast.parse(source, filename=file)
    violations = []
    scopes = [tree] + [n for n in ast.walk(tree) if isinstance(n, FUNCTIONS)]
    for body in scopes:
        scope = _Scope(body)
        for node in own_nodes(body):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr in SQL_METHODS):
                continue
            sql = node.args[0] if node.args else next(
                (k.value for k in node.keywords if k.arg in SQL_KEYWORDS), None)
            how = built_how(sql, scope) if sql is not None else None
            if how:
                violations.append(Violation(file, node.lineno, node.func.attr, how))
    return sorted(set(violations), key=lambda v: (v.file, v.line))


def scan_tree(root: Path, folders=("flows", "tasks", "schemas")) -> tuple[list[Violation], int]:
    violations, files = [], 0
    for folder in folders:
        for path in sorted((root / folder).rglob("*.py")):
            files += 1
            violations += scan_source(path.read_text(encoding="utf-8"), str(path.relative_to(root)))
    return violations, files
