"""Settings that do not fit are one clear error, whichever command reads them."""

from __future__ import annotations

import pytest

from mloop.config import get_settings
from mloop.errors import ConfigError
from tests.unit.cli.helpers import one_error_line, run_cli


def test_a_bad_environment_value_names_the_variable_and_the_choices(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MLOOP_RATE_LIMIT_ON_REDIS_ERROR", "bogus")
    with pytest.raises(ConfigError) as caught:
        get_settings()
    message = caught.value.message
    assert "MLOOP_RATE_LIMIT_ON_REDIS_ERROR" in message
    assert "'bogus'" in message
    assert "'local', 'closed' or 'open'" in message


def test_a_bad_keyword_names_the_keyword() -> None:
    with pytest.raises(ConfigError, match=r"server_auth='maybe'"):
        get_settings(server_auth="maybe")


def test_the_cli_says_it_in_one_line_with_exit_code_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MLOOP_SERVER_AUTH", "maybe")
    code, _out, err = run_cli(capsys, "experiments", "list")
    assert code == 2
    assert one_error_line(err).startswith("error: invalid setting: MLOOP_SERVER_AUTH")
