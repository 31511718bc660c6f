"""Every error code the package and the shipped skills use is in the one catalogue (ErrorCode)."""

from __future__ import annotations

import ast
from pathlib import Path

from assistant.errors import AssistantError, ErrorCode

ROOT = Path(__file__).resolve().parents[2]


def _literal_codes(tree: ast.AST) -> set[str]:
    """String literals used as error codes: code=/error_code= arguments, ``code = "..."`` class
    attributes, comparisons with ``.code``, and the conditional ``code="a" if ... else "b"``."""
    found: set[str] = set()

    def strings(node: ast.AST | None) -> list[str]:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return [node.value]
        if isinstance(node, ast.IfExp):
            return strings(node.body) + strings(node.orelse)
        return []

    for node in ast.walk(tree):
        if isinstance(node, ast.keyword) and node.arg in ("code", "error_code"):
            found.update(strings(node.value))
        elif isinstance(node, ast.ClassDef):
            for statement in node.body:
                if isinstance(statement, ast.Assign) and any(
                    isinstance(t, ast.Name) and t.id == "code" for t in statement.targets
                ):
                    found.update(strings(statement.value))
        elif isinstance(node, ast.Compare) and isinstance(node.left, ast.Attribute) and node.left.attr in (
            "code", "error_code"
        ):
            for comparator in node.comparators:
                found.update(strings(comparator))
    return found


def _codes_in(folder: str) -> dict[str, list[str]]:
    where: dict[str, list[str]] = {}
    for path in sorted((ROOT / folder).rglob("*.py")):
        for code in _literal_codes(ast.parse(path.read_text(encoding="utf-8"))):
            where.setdefault(code, []).append(str(path.relative_to(ROOT)))
    return where


def test_every_code_used_is_in_the_catalogue() -> None:
    used = {**_codes_in("skills"), **_codes_in("assistant")}
    assert len(used) > 40  # the scan finds the codes (a broken scan would pass vacuously)
    unknown = {code: files for code, files in used.items() if code not in set(ErrorCode)}
    assert unknown == {}, "add these to assistant.errors.ErrorCode (or use one that exists)"


def test_the_scan_sees_a_code_it_does_not_know() -> None:
    tree = ast.parse('raise ToolError("x", code="made_up_code")\nif err.code == "other_made_up": pass')
    assert _literal_codes(tree) == {"made_up_code", "other_made_up"}


def test_every_error_class_default_code_is_in_the_catalogue() -> None:
    classes = [AssistantError, *AssistantError.__subclasses__()]
    assert {cls.code for cls in classes} <= set(ErrorCode)
