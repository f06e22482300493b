"""The search filter / order_by grammar: valid text → AST, invalid text → a pointed error."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mloop.errors import FilterSyntaxError, InvalidInput
from mloop.tracking._filter_parser import (
    NULLABLE_ATTRIBUTES,
    NUMERIC_ATTRIBUTES,
    NUMERIC_OPS,
    STRING_ATTRIBUTES,
    STRING_OPS,
    Entity,
)
from mloop.tracking._search import And, Comparison, Node, Or, OrderKey, parse_filter, parse_order_by

C = Comparison

VALID: list[tuple[str, Node]] = [
    ("metrics.acc > 0.9", C("metrics", "acc", ">", 0.9)),
    ("metric.acc>=1", C("metrics", "acc", ">=", 1)),
    ("metrics.acc<-1.5e-3", C("metrics", "acc", "<", -1.5e-3)),
    ("metrics.acc <= +2E10", C("metrics", "acc", "<=", 2e10)),
    ("metrics.acc != .5", C("metrics", "acc", "!=", 0.5)),
    ("metrics.acc = 3.", C("metrics", "acc", "=", 3.0)),
    ("metrics.train/loss < 1", C("metrics", "train/loss", "<", 1)),
    ("metrics.`val loss` < 1", C("metrics", "val loss", "<", 1)),
    ('metrics."val-loss" < 1', C("metrics", "val-loss", "<", 1)),
    ("metrics.`a\\`b` < 1", C("metrics", "a`b", "<", 1)),
    ("params.model = 'rf'", C("params", "model", "=", "rf")),
    ('param.model = "rf"', C("params", "model", "=", "rf")),
    ('params."lr.decay" = \'0.9\'', C("params", "lr.decay", "=", "0.9")),
    ("params.lr.decay = '0.9'", C("params", "lr.decay", "=", "0.9")),
    ("params.m != 'it\\'s'", C("params", "m", "!=", "it's")),
    ("params.m != 'it''s'", C("params", "m", "!=", "it's")),
    ('params.m = "say \\"hi\\""', C("params", "m", "=", 'say "hi"')),
    ("params.m LIKE 'rf%'", C("params", "m", "LIKE", "rf%")),
    ("params.m like '50\\%'", C("params", "m", "LIKE", "50\\%")),
    ("params.m = 'a\\\\b'", C("params", "m", "=", "a\\b")),
    ("params.m ILike '%RF%'", C("params", "m", "ILIKE", "%RF%")),
    ("params.m in ('a', \"b\",'c')", C("params", "m", "IN", ("a", "b", "c"))),
    ("params.m NOT IN ('a')", C("params", "m", "NOT IN", ("a",))),
    ("params.m is null", C("params", "m", "IS NULL", None)),
    ("params.m IS NOT NULL", C("params", "m", "IS NOT NULL", None)),
    ("tags.team != 'x'", C("tags", "team", "!=", "x")),
    ("tag.mlflow.runName = 'x'", C("tags", "mlflow.runName", "=", "x")),
    ("tags.team IS NULL", C("tags", "team", "IS NULL", None)),
    ("attributes.status = 'FINISHED'", C("attributes", "status", "=", "FINISHED")),
    ("attribute.run_name LIKE 'a%'", C("attributes", "run_name", "LIKE", "a%")),
    ("attr.user_id = 'ana'", C("attributes", "user_id", "=", "ana")),
    ("run.START_TIME > 10", C("attributes", "start_time", ">", 10)),
    ("attributes.end_time IS NULL", C("attributes", "end_time", "IS NULL", None)),
    ("attributes.run_id IN ('a', 'b')", C("attributes", "run_id", "IN", ("a", "b"))),
    ("attributes.experiment_id = '1'", C("attributes", "experiment_id", "=", "1")),
    ("attributes.parent_run_id IS NOT NULL", C("attributes", "parent_run_id", "IS NOT NULL", None)),
    ("attributes.lifecycle_stage = 'active'", C("attributes", "lifecycle_stage", "=", "active")),
    (
        "metrics.acc > 0.9 and params.model = 'rf' and tags.team != 'x'",
        And((C("metrics", "acc", ">", 0.9), C("params", "model", "=", "rf"), C("tags", "team", "!=", "x"))),
    ),
    (
        "metrics.a > 1 or metrics.b > 2 AND metrics.c > 3",
        Or((C("metrics", "a", ">", 1), And((C("metrics", "b", ">", 2), C("metrics", "c", ">", 3))))),
    ),
    (
        "(metrics.a > 1 OR metrics.b > 2) and metrics.c > 3",
        And((Or((C("metrics", "a", ">", 1), C("metrics", "b", ">", 2))), C("metrics", "c", ">", 3))),
    ),
    ("((metrics.a > 1))", C("metrics", "a", ">", 1)),
    (
        "(metrics.a > 1 and metrics.b > 2) and metrics.c > 3",
        And((And((C("metrics", "a", ">", 1), C("metrics", "b", ">", 2))), C("metrics", "c", ">", 3))),
    ),
    ("  \n metrics.a\t>\t1  ", C("metrics", "a", ">", 1)),
]  # fmt: skip


@pytest.mark.parametrize(("text", "expected"), VALID)
def test_valid(text: str, expected: Node) -> None:
    assert parse_filter(text) == expected


@pytest.mark.parametrize("text", ["", "   ", "\n\t"])
def test_empty_filter_is_no_filter(text: str) -> None:
    assert parse_filter(text) is None


def test_comparison_records_its_column() -> None:
    node = parse_filter("metrics.a > 1 and  tags.b = 'x'")
    assert isinstance(node, And)
    assert [item.column for item in node.items if isinstance(item, Comparison)] == [1, 20]


# Each case: the filter, a caret under where the error must point, words of the message.
INVALID: list[tuple[str, str, str]] = [
    ("metrics.acc > 0.9 and params.model = 'rf",
     "                                     ^", "unterminated string"),
    ('params."lr > 1',
     "       ^", "unterminated"),
    ("metrics.`val loss > 1",
     "        ^", "unterminated backtick-quoted key"),
    ("metrics.acc >",
     "             ^", "expected a number after metrics.acc >, found end of filter"),
    ("metrics.acc > and",
     "              ^", "expected a number"),
    ("params.model = ",
     "               ^", "expected a quoted string"),
    ("metrics.acc foo 1",
     "            ^", "expected a comparison operator after metrics.acc, found 'foo'"),
    ("metrics.acc == 1",
     "             ^", "expected a number"),
    ("metrics.acc LIKE 'a%'",
     "            ^", "compares as numbers"),
    ("metrics.acc IS NULL",
     "            ^", "IS NULL is not supported for metrics.acc"),
    ("params.x > 1",
     "         ^", "params are strings"),
    ("params.x = 1",
     "           ^", "quote it"),
    ("attributes.status = FINISHED",
     "                    ^", "expected a quoted string"),
    ("attributes.start_time > '5'",
     "                        ^", "expected a number after attributes.start_time >, found a string"),
    ("attributes.status IS NULL",
     "                  ^", "IS NULL is not supported"),
    ("foo.acc > 1",
     "^", "unknown entity 'foo'"),
    ("acc > 0.9",
     "^", "needs an entity prefix: did you mean metrics.acc"),
    ("status = 'FINISHED'",
     "^", "did you mean attributes.status"),
    ("metrics > 1",
     "        ^", "expected '.' and a key after 'metrics'"),
    ("metrics. > 1",
     "         ^", "expected a key after 'metrics.'"),
    ("metrics.'acc' > 1",
     "        ^", "not single quotes"),
    ("metrics.`` > 1",
     "        ^", "empty key"),
    ("attributes.colour = 'red'",
     "^", "unknown attribute 'colour'"),
    ("metrics.a > 1 metrics.b > 2",
     "              ^", "expected 'and', 'or' or end of filter, found 'metrics.b'"),
    ("metrics.a > 1 and",
     "                 ^", "expected an identifier"),
    ("metrics.a > 1 and and metrics.b > 1",
     "                  ^", "keyword 'and'"),
    ("(metrics.a > 1",
     "^", "'(' is never closed"),
    ("metrics.a > 1)",
     "             ^", "')' without a matching '('"),
    ("(metrics.a > 1 metrics.b > 1)",
     "               ^", "expected ')'"),
    ("()",
     " ^", "expected an identifier"),
    ("params.m IN 'a'",
     "            ^", "expected '('"),
    ("params.m IN ('a' 'b')",
     "                 ^", "expected ',' or ')'"),
    ("params.m IN ()",
     "             ^", "expected a quoted string"),
    ("params.m NOT 'a'",
     "             ^", "expected 'in' after 'not'"),
    ("params.m IS 'a'",
     "            ^", "expected 'null' or 'not null'"),
    ("params.m IS NOT 'a'",
     "                ^", "expected 'null' or 'not null'"),
    ("metrics.a > 1.2.3",
     "            ^", "malformed number '1.2.3'"),
    ("metrics.a > 1e999",
     "            ^", "out of range"),
    ("metrics.a > 1 && metrics.b > 1",
     "              ^", "unexpected character '&'"),
    ("metrics.a ~ 1",
     "          ^", "unexpected character '~'"),
    ("metrics.a > 1 and " + "(" * 60 + "metrics.a > 1" + ")" * 60,
     " " * 68 + "^", "nested deeper"),
]  # fmt: skip


@pytest.mark.parametrize(("text", "caret", "message"), INVALID)
def test_invalid(text: str, caret: str, message: str) -> None:
    with pytest.raises(FilterSyntaxError) as info:
        parse_filter(text)
    error = info.value
    assert error.column == caret.index("^") + 1, str(error)
    assert message in error.message
    assert isinstance(error, InvalidInput)
    assert error.details == {"column": error.column, "filter": text}


def test_error_message_shows_where() -> None:
    with pytest.raises(FilterSyntaxError) as info:
        parse_filter("metrics.acc foo 1")
    assert info.value.pointer.splitlines() == ["metrics.acc foo 1", "            ^"]
    assert "column 13" in str(info.value)


# -- order_by -----------------------------------------------------------------------------------


def test_order_by() -> None:
    assert parse_order_by(
        ["metrics.acc DESC", "params.model", "attributes.start_time asc", "tags.`a b` desc",
         "attr.RUN_NAME", 'metric."val loss" ASC']
    ) == [
        OrderKey("metrics", "acc", ascending=False),
        OrderKey("params", "model"),
        OrderKey("attributes", "start_time"),
        OrderKey("tags", "a b", ascending=False),
        OrderKey("attributes", "run_name"),
        OrderKey("metrics", "val loss"),
    ]  # fmt: skip
    assert parse_order_by([]) == []


@pytest.mark.parametrize(
    ("item", "caret", "message"),
    [
        ("metrics.acc sideways", "            ^", "expected ASC, DESC or end of item"),
        ("metrics.acc DESC DESC", "                 ^", "expected ASC, DESC or end of item"),
        ("acc DESC", "^", "did you mean metrics.acc"),
        ("attributes.nope", "^", "unknown attribute"),
        ("", "^", "empty order_by item"),
        ("DESC", "^", "needs an entity prefix"),
    ],
)
def test_order_by_invalid(item: str, caret: str, message: str) -> None:
    with pytest.raises(FilterSyntaxError) as info:
        parse_order_by([item])
    assert info.value.column == caret.index("^") + 1
    assert message in info.value.message


# -- properties ---------------------------------------------------------------------------------

_BARE_KEY = re.compile(r"[\w./-]+")
_PREFIX = {"metrics": "metrics", "params": "params", "tags": "tags", "attributes": "attributes"}


def _quote(text: str, quote: str) -> str:
    return quote + text.replace("\\", "\\\\").replace(quote, "\\" + quote) + quote


def render(node: Node) -> str:
    """Filter text for an AST, the inverse of parse_filter."""
    if isinstance(node, And | Or):
        word = " and " if isinstance(node, And) else " OR "
        return word.join(
            f"({render(item)})" if isinstance(item, And | Or) else render(item)
            for item in node.items
        )
    key = node.key if _BARE_KEY.fullmatch(node.key) else _quote(node.key, "`")
    left = f"{_PREFIX[node.entity]}.{key}"
    value = node.value
    if value is None:
        return f"{left} {node.op}"
    if isinstance(value, tuple):
        text = "(" + ", ".join(_quote(v, "'") for v in value) + ")"
    elif isinstance(value, str):
        text = _quote(value, '"' if "'" in value else "'")
    else:
        text = repr(value)
    return f"{left} {node.op} {text}"


_keys = st.text(st.characters(exclude_categories=["Cs"]), min_size=1, max_size=12)
_strings = st.text(st.characters(exclude_categories=["Cs"]), max_size=12)
_numbers = st.integers(-(10**12), 10**12) | st.floats(allow_nan=False, allow_infinity=False)


def _string_value(op: str) -> st.SearchStrategy[str | tuple[str, ...] | None]:
    if op in ("IN", "NOT IN"):
        return st.lists(_strings, min_size=1, max_size=3).map(tuple)
    if op in ("IS NULL", "IS NOT NULL"):
        return st.none()
    return _strings


_metric = st.builds(
    lambda key, op, value: C("metrics", key, op, value),
    _keys, st.sampled_from(NUMERIC_OPS), _numbers,
)  # fmt: skip
_STRING_ENTITIES: list[Entity] = ["params", "tags"]
_param_or_tag = st.tuples(
    st.sampled_from(_STRING_ENTITIES),
    _keys,
    st.sampled_from([*STRING_OPS, "IS NULL", "IS NOT NULL"]),
).flatmap(lambda t: _string_value(t[2]).map(lambda v: C(t[0], t[1], t[2], v)))
_numeric_attr = st.tuples(
    st.sampled_from(sorted(NUMERIC_ATTRIBUTES)), st.sampled_from(NUMERIC_OPS)
).flatmap(lambda t: _numbers.map(lambda v: C("attributes", t[0], t[1], v)))
_string_attr = st.tuples(
    st.sampled_from(sorted(STRING_ATTRIBUTES)), st.sampled_from(STRING_OPS)
).flatmap(lambda t: _string_value(t[1]).map(lambda v: C("attributes", t[0], t[1], v)))
_null_attr = st.tuples(
    st.sampled_from(sorted(NULLABLE_ATTRIBUTES)), st.sampled_from(["IS NULL", "IS NOT NULL"])
).map(lambda t: C("attributes", t[0], t[1], None))
comparisons = _metric | _param_or_tag | _numeric_attr | _string_attr | _null_attr
nodes = st.recursive(
    comparisons,
    lambda children: st.lists(children, min_size=2, max_size=4).flatmap(
        lambda items: st.sampled_from([And(tuple(items)), Or(tuple(items))])
    ),
    max_leaves=12,
)  # fmt: skip


@given(nodes)
@settings(max_examples=300, deadline=None)
def test_render_then_parse_is_identity(node: Node) -> None:
    assert parse_filter(render(node)) == node


_TOKENS = [
    "metrics.a", "params.b", "tags.c", "attributes.status", "attr.start_time", "x", "metrics.",
    "`k`", '"k"', "'v'", "'", '"', "`", "1", "-2.5e3", "1.2.3", ".", "(", ")", ",", "=", "!=",
    "<", "<=", ">", ">=", "==", "and", "or", "not", "in", "is", "null", "like", "ilike",
    "asc", "desc", "\\", " ", "",
]  # fmt: skip
_soup = st.lists(st.sampled_from(_TOKENS), max_size=12).map(" ".join) | st.lists(
    st.sampled_from(_TOKENS), max_size=12
).map("".join)


def _column_if_error(parse: Callable[[], object]) -> int | None:
    try:
        parse()
    except FilterSyntaxError as error:
        return error.column
    return None


@given(st.text(max_size=60) | _soup)
@settings(max_examples=500, deadline=None)
def test_arbitrary_text_only_raises_filter_syntax_error(text: str) -> None:
    for column in (
        _column_if_error(lambda: parse_filter(text)),
        _column_if_error(lambda: parse_order_by([text])),
    ):
        assert column is None or 1 <= column <= len(text) + 1
