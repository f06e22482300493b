"""Model URIs: every string parses to one kind of URI or a clear InvalidInput."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from mloop.errors import InvalidInput
from mloop.models._uris import ModelsUri, PathUri, RunsUri, parse_model_uri


@pytest.mark.parametrize(
    ("uri", "parsed"),
    [
        ("runs:/0a1b/model", RunsUri("0a1b", "model")),
        ("runs:/abc/deep/er/model/", RunsUri("abc", "deep/er/model")),
        ("models:/iris/3", ModelsUri("iris", "3")),
        ("models:/iris@champion", ModelsUri("iris", "@champion")),
        ("models:/fraud-v2@canary.eu", ModelsUri("fraud-v2", "@canary.eu")),
        ("some/folder", PathUri(Path("some/folder"))),
        ("/abs/folder", PathUri(Path("/abs/folder"))),
        ("file:///abs/my%20model", PathUri(Path("/abs/my model"))),
        ("C:/models/x", PathUri(Path("C:/models/x"))),
    ],
)
def test_valid_uris(uri: str, parsed: object) -> None:
    assert parse_model_uri(uri) == parsed


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("", "empty"),
        ("runs:/abc", "names no artifact path"),
        ("runs://abc/model", "not a runs URI"),
        ("runs:/abc/../../x", "climbs out"),
        ("runs:/a b/model", "no valid run id"),
        ("models:/iris", "no version number"),
        ("models:/iris/0", "no version number"),
        ("models:/iris/latest!", "no version number"),
        ("models:/iris@", "invalid alias"),
        ("models:/a/b/3", "invalid model name"),
        ("models:/@x", "invalid model name"),
        ("s3://bucket/model", "unknown scheme 's3'"),
        ("file://host/x", "not a local file URI"),
    ],
)
def test_invalid_uris_say_what_is_wrong(uri: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        parse_model_uri(uri)


run_ids = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_-]{0,40}", fullmatch=True)
segments = st.from_regex(r"[A-Za-z0-9_.-]{1,10}", fullmatch=True).filter(
    lambda s: s not in (".", "..")
)
names = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,20}", fullmatch=True)


@given(run_ids, st.lists(segments, min_size=1, max_size=4))
def test_runs_uris_round_trip(run_id: str, parts: list[str]) -> None:
    uri = f"runs:/{run_id}/{'/'.join(parts)}"
    parsed = parse_model_uri(uri)
    assert parsed == RunsUri(run_id, "/".join(parts))
    assert parse_model_uri(str(parsed)) == parsed


@given(names, st.one_of(st.integers(1, 10**6).map(str), names.map(lambda a: f"@{a}")))
def test_models_uris_round_trip(name: str, ref: str) -> None:
    parsed = parse_model_uri(ModelsUri(name, ref).__str__())
    assert parsed == ModelsUri(name, ref)


@given(st.text(max_size=60))
@example("runs:/")
@example("models:/")
@example("runs:/x/\x00")
def test_any_text_parses_or_is_refused_as_invalid_input(text: str) -> None:
    try:
        parsed = parse_model_uri(text)
    except InvalidInput:
        return
    assert isinstance(parsed, RunsUri | ModelsUri | PathUri)
