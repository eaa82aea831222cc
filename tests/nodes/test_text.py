from __future__ import annotations

import json

import pytest

from nodes.text import (
    Case,
    Concat,
    Join,
    JsonFormat,
    JsonParse,
    Length,
    Regex,
    Split,
    Template,
)
from tests.nodes.conftest import RunNode


def test_template_fills_named_placeholders(run_node: RunNode) -> None:
    ran = run_node(Template, template="Hi {name}, {n:.1f} {{braces}}",
                   values={"name": "Ada", "n": 2})
    assert ran["text"] == "Hi Ada, 2.0 {braces}"


def test_template_names_a_placeholder_without_value(run_node: RunNode) -> None:
    with pytest.raises(ValueError, match=r"\{age\} has no value \(values has: name\)"):
        run_node(Template, template="{name} is {age}", values={"name": "Ada"})


@pytest.mark.parametrize("template", ["{x.__class__}", "{x[0]}", "{}"])
def test_template_refuses_attribute_index_and_positional_fields(run_node: RunNode,
                                                                template: str) -> None:
    with pytest.raises(ValueError, match="cannot fill template"):
        run_node(Template, template=template, values={"x": "abc"})


def test_template_wants_an_object_of_values(run_node: RunNode) -> None:
    with pytest.raises(ValueError, match="values must be a JSON object, not list"):
        run_node(Template, template="{a}", values=["a"])


def test_template_check_reports_unbalanced_braces() -> None:
    problems = Template.check({"template": "oops {"})
    assert problems and problems[0][0] == "template"
    assert Template.check({"template": "fine {a}"}) == []


def test_concat_puts_the_separator_between(run_node: RunNode) -> None:
    assert run_node(Concat, a="left", b="right", separator=" | ")["text"] == "left | right"
    assert run_node(Concat, a="ab", b="cd")["text"] == "abcd"


def test_split_strips_parts_and_counts_them(run_node: RunNode) -> None:
    ran = run_node(Split, text=" a, b ,,c ", separator=",")
    assert ran["parts"] == ["a", "b", "c"] and ran["count"] == 3


def test_split_keeps_empty_parts_when_not_stripping(run_node: RunNode) -> None:
    assert run_node(Split, text="a,,b", separator=",", strip=False)["parts"] == ["a", "", "b"]


def test_split_with_empty_separator_splits_on_whitespace(run_node: RunNode) -> None:
    assert run_node(Split, text="one  two\nthree", separator="")["parts"] == [
        "one", "two", "three"]


def test_join_writes_numbers_plainly_and_objects_as_json(run_node: RunNode) -> None:
    ran = run_node(Join, items=["a", 1, 2.5, True, None, {"k": 1}], separator=";")
    assert ran["text"] == 'a;1;2.5;true;null;{"k": 1}'


def test_join_rejects_a_non_list(run_node: RunNode) -> None:
    with pytest.raises(ValueError, match="items must be a JSON list, not str"):
        run_node(Join, items="abc")


def test_regex_search_reports_the_match_and_its_groups(run_node: RunNode) -> None:
    ran = run_node(Regex, pattern=r"(?P<word>\w+)@(\w+)", text="mail ada@home now")
    assert ran["matched"] is True
    assert ran["result"] == {"text": "ada@home", "groups": ["ada", "home"],
                             "named": {"word": "ada"}, "start": 5, "end": 13}


def test_regex_match_only_matches_at_the_start(run_node: RunNode) -> None:
    ran = run_node(Regex, pattern=r"\d+", text="abc 123", mode="match")
    assert ran["matched"] is False and ran["result"] is None


def test_regex_findall_returns_strings_or_group_lists(run_node: RunNode) -> None:
    assert run_node(Regex, pattern=r"\d+", text="1 22 333", mode="findall")["result"] == [
        "1", "22", "333"]
    pairs = run_node(Regex, pattern=r"(\w)=(\d)", text="a=1 b=2", mode="findall")["result"]
    assert pairs == [["a", "1"], ["b", "2"]]
    assert json.dumps(pairs)


def test_regex_sub_replaces_with_group_references(run_node: RunNode) -> None:
    ran = run_node(Regex, pattern=r"(\w+) (\w+)", text="hello world", mode="sub",
                   replacement=r"\2 \1")
    assert ran["result"] == "world hello" and ran["matched"] is True
    unchanged = run_node(Regex, pattern="x", text="abc", mode="sub", replacement="y")
    assert unchanged["result"] == "abc" and unchanged["matched"] is False


def test_regex_ignore_case(run_node: RunNode) -> None:
    assert run_node(Regex, pattern="HELLO", text="hello", ignore_case=True)["matched"] is True


def test_bad_regex_names_the_pattern(run_node: RunNode) -> None:
    with pytest.raises(ValueError, match=r"regular expression '\(ab' is not valid"):
        run_node(Regex, pattern="(ab", text="ab")


def test_bad_replacement_is_a_clear_error(run_node: RunNode) -> None:
    with pytest.raises(ValueError, match="replacement"):
        run_node(Regex, pattern="a", text="a", mode="sub", replacement=r"\9")


def test_regex_check_reports_a_bad_constant_pattern() -> None:
    assert Regex.check({"pattern": "[a-"})[0][0] == "pattern"
    assert Regex.check({"pattern": "[a-z]"}) == []


def test_json_parse_reads_objects(run_node: RunNode) -> None:
    assert run_node(JsonParse, text='{"a": [1, 2]}')["value"] == {"a": [1, 2]}


def test_json_parse_says_where_the_text_is_broken(run_node: RunNode) -> None:
    with pytest.raises(ValueError, match="not valid JSON: .* line 2 column"):
        run_node(JsonParse, text='{"a": 1,\n }')


def test_json_format_indents_or_writes_one_line(run_node: RunNode) -> None:
    value = {"b": 1, "a": "é"}
    assert run_node(JsonFormat, value=value, indent=0)["text"] == '{"b": 1, "a": "é"}'
    assert run_node(JsonFormat, value=value, indent=2, sort_keys=True)["text"] == (
        '{\n  "a": "é",\n  "b": 1\n}')


def test_json_format_refuses_values_that_are_not_json(run_node: RunNode) -> None:
    with pytest.raises(ValueError, match="cannot be written as JSON"):
        run_node(JsonFormat, value={"x": float("nan")})


def test_length_counts_characters(run_node: RunNode) -> None:
    assert run_node(Length, text="héllo")["length"] == 5


@pytest.mark.parametrize(("mode", "expected"), [
    ("upper", "HELLO WORLD"), ("lower", "hello world"), ("title", "Hello World")])
def test_case_changes_letter_case(run_node: RunNode, mode: str, expected: str) -> None:
    assert run_node(Case, text="hELLo world", mode=mode)["text"] == expected
