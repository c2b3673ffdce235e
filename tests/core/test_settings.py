from __future__ import annotations

import pytest

from connector.errors import ConfigError
from connector.settings import ENV_VARS, Secret, Settings


def test_defaults_without_environment() -> None:
    s = Settings.from_env({})
    assert s.redis_url is None
    assert s.afas_getconnector == "Spotler_Contacts"
    assert s.afas_max_parallel == 4
    assert s.poll_interval_s == 30.0
    assert (s.forget_after_days, s.retention_days) == (30.0, 30.0)


def test_secrets_never_in_repr() -> None:
    token = "<token><version>1</version><data>" + "AB" * 32 + "</data></token>"
    s = Settings.from_env({"AFAS_TOKEN": token, "SPOTLER_SECRET": "s3cr3t-value", "SPOTLER_KEY": "k"})
    text = repr(s) + str(s)
    assert "AB" * 32 not in text
    assert "s3cr3t-value" not in text
    assert isinstance(s.afas_token, Secret)
    assert s.afas_token.reveal() == token


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"POLL_INTERVAL_S": "soon"}, "POLL_INTERVAL_S"),
        ({"AFAS_MAX_PARALLEL": "0"}, "AFAS_MAX_PARALLEL"),
        ({"AFAS_BASE_URL": "ftp://x"}, "AFAS_BASE_URL"),
        ({"REDIS_URL": "localhost:6379"}, "REDIS_URL"),
        ({"LOG_LEVEL": "chatty"}, "LOG_LEVEL"),
        ({"FORGET_AFTER_DAYS": "-1"}, "FORGET_AFTER_DAYS"),
        ({"RETENTION_DAYS": "a month"}, "RETENTION_DAYS"),
    ],
)
def test_bad_values_name_their_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Settings.from_env(env)


def test_require_lists_every_missing_variable() -> None:
    s = Settings.from_env({"AFAS_BASE_URL": "https://12345.rest.afas.online/ProfitRestServices"})
    with pytest.raises(ConfigError) as info:
        s.require("AFAS_BASE_URL", "AFAS_TOKEN", "SPOTLER_KEY")
    assert "AFAS_TOKEN" in str(info.value)
    assert "SPOTLER_KEY" in str(info.value)
    assert "AFAS_BASE_URL" not in str(info.value)


def test_every_setting_is_documented_in_the_readme() -> None:
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    missing = [name for name in ENV_VARS if f"`{name}`" not in readme]
    assert missing == []
