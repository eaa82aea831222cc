from __future__ import annotations

import math

import pytest

from engine.sdk import ALWAYS
from nodes.math import (
    Add,
    Clamp,
    Divide,
    Expression,
    Max,
    Min,
    Multiply,
    Power,
    Random,
    Round,
    Subtract,
)
from tests.nodes.conftest import RunNode


@pytest.mark.parametrize(("cls", "a", "b", "expected"), [
    (Add, 2, 3.5, 5.5), (Subtract, 2, 3.5, -1.5), (Multiply, 4, 2.5, 10.0),
    (Divide, 7, 2, 3.5), (Power, 2, 10, 1024.0), (Power, 9, 0.5, 3.0),
    (Min, 3, -1, -1.0), (Max, 3, -1, 3.0),
])
def test_binary_operations(run_node: RunNode, cls: type, a: float, b: float,
                           expected: float) -> None:
    result = run_node(cls, a=a, b=b)["result"]
    assert result == expected and isinstance(result, float)


def test_multiply_and_divide_default_to_the_identity(run_node: RunNode) -> None:
    assert run_node(Multiply, a=6)["result"] == 6.0
    assert run_node(Divide, a=6)["result"] == 6.0


def test_divide_by_zero_names_the_problem(run_node: RunNode) -> None:
    with pytest.raises(ValueError, match="division by zero: cannot divide 5 by 0"):
        run_node(Divide, a=5, b=0)


def test_power_refuses_complex_and_overflowing_results(run_node: RunNode) -> None:
    with pytest.raises(ValueError, match="is not a real number"):
        run_node(Power, a=-8, b=0.5)
    with pytest.raises(ValueError, match="too large"):
        run_node(Power, a=10, b=400)


def test_overflow_to_infinity_fails_the_node(run_node: RunNode) -> None:
    with pytest.raises(ValueError, match="not a finite real number"):
        run_node(Multiply, a=1e308, b=10)


def test_clamp_keeps_values_within_bounds(run_node: RunNode) -> None:
    assert run_node(Clamp, value=5, low=0, high=2)["result"] == 2.0
    assert run_node(Clamp, value=-5, low=0, high=2)["result"] == 0.0
    assert run_node(Clamp, value=1.5, low=0, high=2)["result"] == 1.5


def test_clamp_with_swapped_bounds_is_reported(run_node: RunNode) -> None:
    assert Clamp.check({"low": 3, "high": 1}) == [
        ("high", "high (1) must not be smaller than low (3)")]
    with pytest.raises(ValueError, match="must not be smaller than low"):
        run_node(Clamp, value=2, low=3, high=1)


@pytest.mark.parametrize(("value", "digits", "result", "integer"), [
    (2.5, 0, 3.0, 3), (-2.5, 0, -3.0, -3), (2.675, 2, 2.68, 3), (1234.5, -2, 1200.0, 1235),
    (0.1 + 0.2, 1, 0.3, 0), (1e20, 3, 1e20, 10**20),
])
def test_round_goes_half_away_from_zero(run_node: RunNode, value: float, digits: int,
                                        result: float, integer: int) -> None:
    ran = run_node(Round, value=value, digits=digits)
    assert ran["result"] == result and ran["integer"] == integer


@pytest.mark.parametrize(("expression", "expected"), [
    ("a + b * c", 2 + 3 * 4), ("(a + b) * c", 20), ("-a ** 2", -4), ("b // a", 1),
    ("c % b", 1), ("c / a", 2), ("abs(a - c)", 2), ("min(a, b, c)", 2), ("max(a, 10)", 10),
    ("round(b / c, 2)", 0.75), ("round(7.6)", 8), ("2 ** 0.5 * 2 ** 0.5", 2.0000000000000004),
])
def test_expression_evaluates_arithmetic(run_node: RunNode, expression: str,
                                         expected: float) -> None:
    assert run_node(Expression, expression=expression, a=2, b=3, c=4)["result"] == expected


@pytest.mark.parametrize(("expression", "message"), [
    ("__import__('os').system('true')", "may be called"),
    ("a.real", "Attribute is not allowed"),
    ("x + 1", "unknown name 'x'"),
    ("'a' * 3", "not a number"),
    ("a if b else c", "IfExp is not allowed"),
    ("a < b", "Compare is not allowed"),
    ("a & b", "operator BitAnd is not allowed"),
    ("abs(a, b)", "abs() takes 1 positional"),
    ("max(a=1)", "max() takes 2 to 16"),
    ("[a for a in (1,)]", "not allowed"),
    ("a +", "is not valid"),
    ("(" * 300 + "a" + ")" * 300, "limit is 500"),
])
def test_expression_refuses_anything_but_arithmetic(run_node: RunNode, expression: str,
                                                    message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        run_node(Expression, expression=expression)


def test_expression_bounds_huge_powers_instead_of_hanging(run_node: RunNode) -> None:
    with pytest.raises(ValueError, match="too large"):
        run_node(Expression, expression="9 ** 9 ** 9")


def test_expression_division_by_zero_names_the_expression(run_node: RunNode) -> None:
    with pytest.raises(ValueError, match=r"cannot evaluate 'a / b': division by zero"):
        run_node(Expression, expression="a / b", a=1, b=0)


def test_expression_check_validates_constant_formulas() -> None:
    assert Expression.check({"expression": "a + b"}) == []
    problems = Expression.check({"expression": "open('x')"})
    assert problems and problems[0][0] == "expression"


def test_random_with_a_seed_is_reproducible_and_within_bounds(run_node: RunNode) -> None:
    first = run_node(Random, seed=7, low=10, high=20)
    second = run_node(Random, seed=7, low=10, high=20)
    assert first.outputs == second.outputs
    assert 10 <= first["value"] <= 20 and first["seed_used"] == 7


def test_random_seed_minus_one_draws_and_reports_a_new_seed(run_node: RunNode) -> None:
    runs = [run_node(Random, seed=-1) for _ in range(5)]
    seeds = {ran["seed_used"] for ran in runs}
    assert len(seeds) > 1 and -1 not in seeds
    replay = run_node(Random, seed=runs[0]["seed_used"])
    assert replay["value"] == runs[0]["value"]


def test_random_is_only_uncacheable_without_a_fixed_seed() -> None:
    assert Random.fingerprint({"seed": -1}) is ALWAYS
    assert math.isnan(Random.fingerprint({}))  # a linked seed might be -1
    assert Random.fingerprint({"seed": 3}) is None
    assert Random.__node_def__.spec.deterministic


def test_round_handles_huge_values_with_negative_digits(run_node: RunNode) -> None:
    ran = run_node(Round, value=1.5e300, digits=-3)
    assert ran["result"] == 1.5e300 and ran["integer"] == 15 * 10**299
