"""Building the DAG from step calls, the code digest, and the type checks at run time:
no store needed, nothing runs."""

from __future__ import annotations

from typing import Any, Literal

import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

import mloop
from mloop.errors import InvalidInput
from mloop.pipelines import Output, Resources, step
from mloop.pipelines._digest import code_digest
from mloop.pipelines._graph import build
from mloop.pipelines._values import check_type
from tests.unit.pipelines import pipes


def test_step_calls_build_nodes_and_edges_in_call_order() -> None:
    graph = build(pipes.simple, {"rows": 5})
    assert list(graph.nodes) == ["make_frame", "total", "double"]
    assert graph.nodes["make_frame"].params == {"rows": 5}
    assert graph.nodes["total"].inputs == {"frame": Output("make_frame")}
    assert graph.nodes["total"].params == {"column": "y"}  # defaults are parameters too
    assert graph.nodes["double"].upstream == ["make_frame"]
    assert graph.outputs == {"totals": Output("total"), "doubled": Output("double")}
    assert graph.downstream("make_frame") == {"total", "double"}
    assert graph.nodes["double"].step.resources == Resources(cpus=1, memory_mb=64)


def test_a_step_called_twice_gets_numbered_names_and_tuples_unpack() -> None:
    @mloop.pipeline
    def twice() -> Any:
        first, second = pipes.two_outputs(2)
        return pipes.rows_of(first), pipes.rows_of(second), pipes.rows_of(first)

    graph = build(twice, {})
    assert list(graph.nodes) == ["two_outputs", "rows_of", "rows_of_2", "rows_of_3"]
    assert graph.nodes["rows_of_2"].inputs == {"frame": Output("two_outputs", 1)}
    assert list(graph.outputs) == ["0", "1", "2"]


def test_items_of_an_output_are_references_too() -> None:
    @mloop.pipeline
    def picked() -> Any:
        return pipes.gate(pipes.total(pipes.make_frame(3))["sum"], 1.0)  # type: ignore[index]

    graph = build(picked, {})
    assert graph.nodes["gate"].inputs["metrics"] == Output("total", None, ("sum",))


def test_outside_a_pipeline_a_step_is_its_plain_function(tmp_path: Any) -> None:
    frame = pipes.make_frame(2)
    assert isinstance(frame, pd.DataFrame)
    assert pipes.total(frame) == {"sum": 2.0, "rows": 2.0}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (lambda: pipes.make_frame(pd.DataFrame()), "not a plain JSON value"),
        (lambda: pipes.make_frame(1, 2), "called with the wrong arguments"),
        (lambda: bool(pipes.make_frame(1)), "branch inside a step"),
        (lambda: list(pipes.make_frame(1)), "is one value"),
        (lambda: None, "calls no step"),
        (lambda: 42, "returned a int"),
    ],
)
def test_mistakes_in_a_pipeline_are_named(body: Any, message: str) -> None:
    @mloop.pipeline
    def broken() -> Any:
        return body()

    with pytest.raises(InvalidInput, match=message):
        build(broken, {})


def test_pipeline_parameters_are_checked() -> None:
    with pytest.raises(InvalidInput, match="has no parameter bogus"):
        build(pipes.simple, {"bogus": 1})

    @mloop.pipeline
    def needs(rows: int) -> Any:
        return pipes.make_frame(rows)

    with pytest.raises(InvalidInput, match="missing a required argument"):
        build(needs, {})


def test_step_options_are_checked() -> None:
    with pytest.raises(InvalidInput, match="must be >= 0"):
        step(retries=-1)(lambda: 1)
    with pytest.raises(InvalidInput, match="must be positive"):
        Resources(cpus=-1)


# -- the code digest ---------------------------------------------------------------------------


def test_the_code_digest_ignores_comments_and_sees_code_helpers_and_constants(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib
    import sys

    monkeypatch.syspath_prepend(str(tmp_path))

    def digest(source: str) -> str:
        (tmp_path / "probe_mod.py").write_text(source)
        sys.modules.pop("probe_mod", None)
        importlib.invalidate_caches()
        module = importlib.import_module("probe_mod")
        return code_digest(module.fn)

    base = "K = 2\ndef helper(x):\n    return x + 1\n\ndef fn(x):\n    return helper(x) * K\n"
    reference = digest(base)
    assert digest("# a comment\n" + base.replace("* K", "* K  # why")) == reference
    assert digest(base + "\n\ndef unrelated():\n    return 0\n") == reference
    assert digest(base.replace("return x + 1", "return x + 2")) != reference
    assert digest(base.replace("K = 2", "K = 3")) != reference
    assert digest(base.replace("* K", "* K * 1")) != reference


def test_the_decorator_line_is_not_part_of_the_digest(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib
    import sys

    monkeypatch.syspath_prepend(str(tmp_path))
    digests = []
    for decorator in ("@mloop.step", "@mloop.step(retries=3)"):
        (tmp_path / "deco_mod.py").write_text(
            f"import mloop\n{decorator}\ndef fn(x: int) -> int:\n    return x\n"
        )
        sys.modules.pop("deco_mod", None)
        importlib.invalidate_caches()
        digests.append(code_digest(importlib.import_module("deco_mod").fn))
    assert digests[0] == digests[1]


# -- type checks -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "hint", "ok"),
    [
        (1, int, True),
        (True, int, True),
        (1, float, True),
        (True, float, False),
        ("1", int, False),
        (None, int | None, True),
        (None, int, False),
        ({"a": 1.0}, dict[str, float], True),
        ({"a": "x"}, dict[str, float], False),
        ([1, 2], list[int], True),
        ([1, "2"], list[int], False),
        ((1, "a"), tuple[int, str], True),
        ((1, "a", 2), tuple[int, str], False),
        ((1, 2, 3), tuple[int, ...], True),
        ("a", Literal["a", "b"], True),
        ("c", Literal["a", "b"], False),
        (pd.DataFrame(), pd.DataFrame, True),
        ([], pd.DataFrame, False),
        (object(), Any, True),
    ],
)
def test_values_are_checked_against_hints(value: Any, hint: Any, ok: bool) -> None:
    if ok:
        check_type(value, hint, "x")
    else:
        with pytest.raises(InvalidInput, match="x expects"):
            check_type(value, hint, "x")


@given(st.dictionaries(st.text(), st.floats(allow_nan=False) | st.integers()))
def test_any_dict_of_numbers_passes_as_metrics(metrics: dict[str, Any]) -> None:
    check_type(metrics, dict[str, float], "metrics")
