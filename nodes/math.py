"""Math nodes: arithmetic on FLOAT ports, a safe expression evaluator and random numbers.

Every result is a finite float: a node that would produce infinity, NaN or a complex
number fails with a message instead, so bad numbers never travel silently downstream.
"""

from __future__ import annotations

import ast
import math
import operator
import random
import secrets
from collections.abc import Callable
from decimal import ROUND_HALF_UP, Context, Decimal
from typing import Any

from engine.sdk import ALWAYS, Input, Node, NodeContext, NodeOutputs, node
from nodes.primitive import FLOAT_LIMIT, FLOAT_STEP

# Enough digits for any finite float (at most 309 before the point) with 15 decimals.
_DECIMALS = Context(prec=400)


def _finite(value: float, what: str) -> float:
    if isinstance(value, complex) or not math.isfinite(value):
        raise ValueError(f"{what} is not a finite real number ({value})")
    return float(value)


def _power(base: float, exponent: float) -> float:
    try:
        return math.pow(base, exponent)
    except OverflowError as exc:
        raise ValueError(f"{base:g} ** {exponent:g} is too large") from exc
    except ValueError as exc:  # math.pow says "math domain error"
        raise ValueError(f"{base:g} ** {exponent:g} is not a real number") from exc


def number(default: float, description: str = "") -> float:
    """A FLOAT input that takes any finite value (the editor needs the bounds stated)."""
    result: float = Input(default, min=-FLOAT_LIMIT, max=FLOAT_LIMIT, step=FLOAT_STEP,
                          description=description)
    return result


def _divide(a: float, b: float, op: Callable[[float, float], float] = operator.truediv) -> float:
    if b == 0:
        raise ValueError(f"division by zero: cannot divide {a:g} by 0")
    return op(a, b)


class _Binary(Node):
    """Shared shape of the two-operand nodes: ``a``, ``b`` in, ``result`` out."""

    a: float = number(0.0, "first operand")
    b: float = number(0.0, "second operand")

    class Outputs(NodeOutputs):
        result: float

    def compute(self) -> float:
        raise TypeError(f"{type(self).__name__} must define compute()")

    def run(self, ctx: NodeContext) -> Outputs:
        return self.Outputs(result=_finite(self.compute(), f"{type(self).__name__} result"))


@node("math.Add", category="math", display_name="Add")
class Add(_Binary):
    """Add two numbers: a + b."""

    def compute(self) -> float:
        return self.a + self.b


@node("math.Subtract", category="math", display_name="Subtract")
class Subtract(_Binary):
    """Subtract b from a: a - b."""

    def compute(self) -> float:
        return self.a - self.b


@node("math.Multiply", category="math", display_name="Multiply")
class Multiply(_Binary):
    """Multiply two numbers: a × b."""

    b: float = number(1.0, "second operand")

    def compute(self) -> float:
        return self.a * self.b


@node("math.Divide", category="math", display_name="Divide")
class Divide(_Binary):
    """Divide a by b: a ÷ b.

    Dividing by zero fails the node rather than producing infinity.
    """

    b: float = number(1.0, "the divisor; never 0")

    def compute(self) -> float:
        return _divide(self.a, self.b)


@node("math.Power", category="math", display_name="Power")
class Power(_Binary):
    """Raise a to the power b: a ** b.

    Real results only: (-8) ** 0.5 fails.
    """

    b: float = number(1.0, "the exponent")

    def compute(self) -> float:
        return _power(self.a, self.b)


@node("math.Min", category="math", display_name="Minimum")
class Min(_Binary):
    """The smaller of a and b."""

    def compute(self) -> float:
        return min(self.a, self.b)


@node("math.Max", category="math", display_name="Maximum")
class Max(_Binary):
    """The larger of a and b."""

    def compute(self) -> float:
        return max(self.a, self.b)


@node("math.Clamp", category="math", display_name="Clamp")
class Clamp(Node):
    """Keep a value within [low, high].

    A guard before a node whose input has a narrower range.
    """

    value: float = number(0.0, "the number to keep in range")
    low: float = number(0.0, "the smallest result")
    high: float = number(1.0, "the largest result")

    class Outputs(NodeOutputs):
        result: float

    @classmethod
    def check(cls, inputs: dict[str, Any]) -> list[tuple[str | None, str]]:
        low, high = inputs.get("low"), inputs.get("high")
        if isinstance(low, (int, float)) and isinstance(high, (int, float)) and low > high:
            return [("high", f"high ({high:g}) must not be smaller than low ({low:g})")]
        return []

    def run(self, ctx: NodeContext) -> Outputs:
        if self.low > self.high:
            raise ValueError(f"high ({self.high:g}) must not be smaller than low ({self.low:g})")
        return self.Outputs(result=float(min(max(self.value, self.low), self.high)))


@node("math.Round", category="math", display_name="Round")
class Round(Node):
    """Round to ``digits`` decimals, halves away from zero (2.5 → 3, as people expect).

    ``integer`` is the value rounded to a whole number, for INT inputs such as sizes.
    """

    value: float = number(0.0, "the number to round")
    digits: int = Input(0, min=-10, max=15, description="decimals; negative rounds to tens...")

    class Outputs(NodeOutputs):
        result: float
        integer: int

    def run(self, ctx: NodeContext) -> Outputs:
        value = _finite(self.value, "value")
        # repr() is the shortest text that reads back as the float: 2.675, not 2.67499...
        number = Decimal(repr(value))
        rounded = number.quantize(Decimal(1).scaleb(-self.digits), ROUND_HALF_UP, _DECIMALS)
        whole = number.quantize(Decimal(1), ROUND_HALF_UP, _DECIMALS)
        return self.Outputs(result=float(rounded), integer=int(whole))


# -- math.Expression ------------------------------------------------------------------

_VARIABLES = ("a", "b", "c")
_MAX_EXPRESSION = 500
_BINARY: dict[type[ast.operator], Callable[[float, float], float]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
    ast.Div: _divide, ast.FloorDiv: lambda a, b: _divide(a, b, operator.floordiv),
    ast.Mod: lambda a, b: _divide(a, b, operator.mod), ast.Pow: _power,
}
_UNARY: dict[type[ast.unaryop], Callable[[float], float]] = {
    ast.USub: operator.neg, ast.UAdd: operator.pos}


def _round(value: float, digits: float = 0) -> float:
    if digits != int(digits):
        raise ValueError(f"round() takes a whole number of digits, not {digits:g}")
    return float(round(value, int(digits)))


_FUNCTIONS: dict[str, tuple[Callable[..., float], int, int]] = {
    # name -> (function, fewest arguments, most arguments)
    "abs": (abs, 1, 1), "round": (_round, 1, 2), "min": (min, 2, 16), "max": (max, 2, 16)}


def parse_expression(text: str) -> ast.Expression:
    """Parse and vet an expression; only arithmetic on a, b, c and a few functions pass."""
    if len(text) > _MAX_EXPRESSION:
        raise ValueError(f"expression is {len(text)} characters; the limit is {_MAX_EXPRESSION}")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except (SyntaxError, RecursionError, MemoryError) as exc:
        reason = exc.msg if isinstance(exc, SyntaxError) else "nested too deeply"
        raise ValueError(f"expression {text!r} is not valid: {reason}") from exc
    for item in ast.walk(tree):
        _vet(item)
    return tree


def _vet(item: ast.AST) -> None:
    if isinstance(item, (ast.Expression, ast.Load, ast.operator, ast.unaryop)):
        if isinstance(item, ast.operator) and type(item) not in _BINARY:
            raise ValueError(f"operator {type(item).__name__} is not allowed; "
                             "use + - * / // % **")
        if isinstance(item, ast.unaryop) and type(item) not in _UNARY:
            raise ValueError(f"operator {type(item).__name__} is not allowed")
    elif isinstance(item, ast.Constant):
        if isinstance(item.value, bool) or not isinstance(item.value, (int, float)):
            raise ValueError(f"{item.value!r} is not a number; only numbers are allowed")
        if isinstance(item.value, int) and item.value.bit_length() > 1000:
            raise ValueError("a number in the expression is too large")
    elif isinstance(item, ast.Name):
        if item.id not in _VARIABLES and item.id not in _FUNCTIONS:
            raise ValueError(f"unknown name {item.id!r}; the variables are a, b and c")
    elif isinstance(item, ast.Call):
        name = item.func.id if isinstance(item.func, ast.Name) else None
        if name not in _FUNCTIONS:
            raise ValueError("only abs(), min(), max() and round() may be called")
        _, fewest, most = _FUNCTIONS[name]
        if item.keywords or not fewest <= len(item.args) <= most:
            raise ValueError(f"{name}() takes {fewest}" + (f" to {most}" if most > fewest else "")
                             + " positional argument(s)")
    elif not isinstance(item, (ast.BinOp, ast.UnaryOp)):
        raise ValueError(f"{type(item).__name__} is not allowed in an arithmetic expression")


def _evaluate(item: ast.AST, variables: dict[str, float]) -> float:
    if isinstance(item, ast.Expression):
        return _evaluate(item.body, variables)
    if isinstance(item, ast.Constant):
        return float(item.value)
    if isinstance(item, ast.Name):
        if item.id not in variables:
            raise ValueError(f"{item.id} is a function; call it, e.g. {item.id}(a, b)")
        return variables[item.id]
    if isinstance(item, ast.UnaryOp):
        return _UNARY[type(item.op)](_evaluate(item.operand, variables))
    if isinstance(item, ast.BinOp):
        left, right = _evaluate(item.left, variables), _evaluate(item.right, variables)
        return _finite(_BINARY[type(item.op)](left, right), "an intermediate result")
    assert isinstance(item, ast.Call) and isinstance(item.func, ast.Name)
    function = _FUNCTIONS[item.func.id][0]
    return float(function(*(_evaluate(arg, variables) for arg in item.args)))


@node("math.Expression", category="math", display_name="Math Expression")
class Expression(Node):
    """Evaluate an arithmetic formula over a, b and c, e.g. ``(a + b) * c / 2``.

    Allowed: numbers, a, b, c, + - * / // % **, unary minus, parentheses and abs(),
    min(), max(), round(). The formula is parsed with ``ast`` and walked; nothing is
    passed to ``eval``, so a graph file cannot run code through it.
    """

    expression: str = Input("a + b", description="formula over a, b and c")
    a: float = number(0.0, "variable a")
    b: float = number(0.0, "variable b")
    c: float = number(0.0, "variable c")

    class Outputs(NodeOutputs):
        result: float

    @classmethod
    def check(cls, inputs: dict[str, Any]) -> list[tuple[str | None, str]]:
        expression = inputs.get("expression")
        if isinstance(expression, str):
            try:
                parse_expression(expression)
            except ValueError as exc:
                return [("expression", str(exc))]
        return []

    def run(self, ctx: NodeContext) -> Outputs:
        tree = parse_expression(self.expression)
        variables = {"a": float(self.a), "b": float(self.b), "c": float(self.c)}
        try:
            value = _evaluate(tree, variables)
        except ValueError as exc:
            raise ValueError(f"cannot evaluate {self.expression!r}: {exc}") from exc
        return self.Outputs(result=_finite(value, "the expression's result"))


# -- math.Random ------------------------------------------------------------------------

@node("math.Random", category="math", display_name="Random Number")
class Random(Node):
    """A uniform random number between low and high.

    Seed -1 draws a fresh seed on every run (reported as ``seed_used``, so a result can be
    reproduced); any other seed always gives the same number and is cached like any node.
    """

    seed: int = Input(-1, min=-1, max=2**63 - 1, description="-1: a new random seed each run")
    low: float = number(0.0, "the smallest value")
    high: float = number(1.0, "the largest value")

    class Outputs(NodeOutputs):
        value: float
        seed_used: int

    @classmethod
    def fingerprint(cls, inputs: dict[str, Any]) -> Any:
        # A linked seed is not known until run time; it might be -1, so never cache it.
        return ALWAYS if inputs.get("seed", -1) == -1 else None

    def run(self, ctx: NodeContext) -> Outputs:
        seed = self.seed if self.seed != -1 else secrets.randbelow(2**32)
        value = random.Random(seed).uniform(self.low, self.high)
        return self.Outputs(value=value, seed_used=seed)
