"""Pure rules for entries: number parsing, limit classes (green/amber/red) and recipe calculations."""
from __future__ import annotations

import ast
import functools
import math
import re
from typing import Any, Mapping

from app import numbers
from app.errors import ValidationFailed

GREEN, AMBER, RED, NONE = "green", "amber", "red", "none"


def parse_number(text: str | None, label: str = "value") -> float:
    """A number as typed ('37.5', '1.2e10', '1.2x10^10'), read the site's way (app.numbers)."""
    try:
        return numbers.parse_number(text)
    except numbers.NumberFormatError as exc:
        raise ValidationFailed(f"{label}: {exc}") from None


def classify(value: float, spec: Mapping[str, Any]) -> str:
    """Green inside the alert limits, amber between alert and hard limits, red outside the hard limits."""
    hard_low, hard_high = spec.get("hard_low"), spec.get("hard_high")
    alert_low, alert_high = spec.get("alert_low"), spec.get("alert_high")
    if all(limit is None for limit in (hard_low, hard_high, alert_low, alert_high)):
        return NONE
    if (hard_low is not None and value < hard_low) or (hard_high is not None and value > hard_high):
        return RED
    if (alert_low is not None and value < alert_low) or (alert_high is not None and value > alert_high):
        return AMBER
    return GREEN


def limits_text(spec: Mapping[str, Any]) -> str:
    """The limits of an entry in words, for the screen and the printed record."""
    from app.web import format_number as n

    unit = spec.get("unit") or ""
    parts = []
    if spec.get("target") is not None:
        parts.append(f"target {n(spec['target'])} {unit}".strip())
    for low, high, name in (("alert_low", "alert_high", "alert"), ("hard_low", "hard_high", "hard")):
        lo, hi = spec.get(low), spec.get(high)
        if lo is not None and hi is not None:
            parts.append(f"{name} {n(lo)}–{n(hi)}")
        elif lo is not None:
            parts.append(f"{name} ≥ {n(lo)}")
        elif hi is not None:
            parts.append(f"{name} ≤ {n(hi)}")
    return "; ".join(parts)


_OPERATORS = {"*": "×", "/": "÷", "**": "^"}


def readable_formula(expression: str, labels: Mapping[str, str]) -> str:
    """A calculation as the operator reads it: entry labels instead of keys, × and ÷ instead of * and /."""
    tokens = re.findall(r"\*\*|[A-Za-z_][A-Za-z0-9_]*|\d+(?:\.\d+)?(?:[eE][+-]?\d+)?|\S", expression)
    words = []
    for token in tokens:
        if token in labels:
            words.append(labels[token])
        elif token in _OPERATORS:
            words.append(_OPERATORS[token])
        elif re.fullmatch(r"\d+(?:\.\d+)?(?:[eE][+-]?\d+)?", token):
            from app.web import format_number

            words.append(format_number(float(token)))
        else:
            words.append(token)
    text = " ".join(words)
    return re.sub(r"\( ", "(", re.sub(r" \)", ")", re.sub(r" ,", ",", text)))


# --- calculations ---------------------------------------------------------------------------------
# Expressions are arithmetic over other entries' keys: + - * / ** ( ), numbers, min(), max(), abs().
# Timer entries enter a calculation as hours since the epoch, so 'stop - start' is a duration in hours.

_ALLOWED_FUNCS = {"min": min, "max": max, "abs": abs}
_BINARY = {ast.Add: lambda a, b: a + b, ast.Sub: lambda a, b: a - b, ast.Mult: lambda a, b: a * b,
           ast.Div: lambda a, b: a / b, ast.Pow: lambda a, b: a ** b}


def expression_names(expression: str) -> set[str]:
    """The entry keys an expression reads; raises ValueError for anything but plain arithmetic."""
    tree = _parse(expression)
    return {node.id for node in ast.walk(tree) if isinstance(node, ast.Name) and node.id not in _ALLOWED_FUNCS}


@functools.lru_cache(maxsize=1024)
def _parse(expression: str) -> ast.Expression:
    try:
        tree = ast.parse(expression, mode="eval")
    except SyntaxError as exc:
        raise ValueError(f"calculation {expression!r} is not valid arithmetic: {exc.msg}") from None
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            if not isinstance(node.func, ast.Name) or node.func.id not in _ALLOWED_FUNCS or node.keywords:
                raise ValueError(f"calculation {expression!r}: only min(), max() and abs() may be called")
        elif not isinstance(node, (ast.Expression, ast.BinOp, ast.UnaryOp, ast.Name, ast.Load, ast.Constant,
                                   ast.USub, ast.UAdd, *_BINARY)):
            raise ValueError(f"calculation {expression!r}: {type(node).__name__} is not allowed")
        if isinstance(node, ast.Constant) and not isinstance(node.value, (int, float)):
            raise ValueError(f"calculation {expression!r}: only numbers may appear as constants")
    return tree


def evaluate(expression: str, values: Mapping[str, float]) -> float | None:
    """The value of a calculation, or None while any input is missing or the result is undefined."""
    tree = _parse(expression)

    def ev(node: ast.AST) -> float:
        if isinstance(node, ast.Expression):
            return ev(node.body)
        if isinstance(node, ast.Constant):
            return float(node.value)
        if isinstance(node, ast.Name):
            if node.id not in values or values[node.id] is None:
                raise LookupError(node.id)
            return float(values[node.id])
        if isinstance(node, ast.UnaryOp):
            operand = ev(node.operand)
            return -operand if isinstance(node.op, ast.USub) else operand
        if isinstance(node, ast.BinOp):
            return _BINARY[type(node.op)](ev(node.left), ev(node.right))
        if isinstance(node, ast.Call):
            return float(_ALLOWED_FUNCS[node.func.id](*[ev(arg) for arg in node.args]))  # type: ignore[union-attr]
        raise ValueError(type(node).__name__)

    try:
        result = ev(tree)
    except (LookupError, ZeroDivisionError, OverflowError):
        return None
    return result if math.isfinite(result) else None
