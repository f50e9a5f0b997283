"""mlport.toml: profiles, MLPORT_PROFILE, routing, and errors naming file, profile and key."""

from __future__ import annotations

from pathlib import Path

import pytest

import mlport
from mlport import ConfigError, ProviderNotFoundError
from mlport.config import resolve

GOOD = """
default_profile = "main"

[profiles.main]
provider = "dummy"
world = "w1"

[profiles.other]
provider = "dummy-limited"
world = "w2"
poll_interval = 0.5

[profiles.hybrid]
provider = "dummy"
services = { training = "other", storage = "main" }
"""


def test_default_profile(write_config) -> None:  # type: ignore[no-untyped-def]
    write_config(GOOD)
    ml = mlport.connect()
    assert (ml.profile, ml.provider) == ("main", "dummy")
    assert ml.training.provider.config.world == "w1"  # type: ignore[attr-defined]


def test_profile_argument_then_env_var(write_config, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    write_config(GOOD)
    monkeypatch.setenv("MLPORT_PROFILE", "other")
    assert mlport.connect().profile == "other"
    assert mlport.connect(profile="main").profile == "main"


def test_config_found_through_env_var(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    elsewhere = tmp_path / "conf" / "team.toml"
    elsewhere.parent.mkdir()
    elsewhere.write_text(GOOD)
    monkeypatch.setenv("MLPORT_CONFIG", str(elsewhere))
    assert mlport.connect().config_file == elsewhere.resolve()
    monkeypatch.setenv("MLPORT_CONFIG", str(tmp_path / "nope.toml"))
    with pytest.raises(ConfigError, match=r"MLPORT_CONFIG=.*nope\.toml"):
        mlport.connect()


def test_kwargs_override_profile_keys(write_config) -> None:  # type: ignore[no-untyped-def]
    write_config(GOOD)
    ml = mlport.connect(profile="other", poll_interval=0.01)
    assert ml.training.provider.poll_policy.initial == 0.01


def test_routing_mixes_providers(write_config) -> None:  # type: ignore[no-untyped-def]
    write_config(GOOD)
    ml = mlport.connect(profile="hybrid")
    assert ml.routes["training"] == "dummy-limited"
    assert ml.routes["registry"] == "dummy"
    assert ml.training.provider_name == "dummy-limited"
    assert ml.registry.provider_name == "dummy"
    assert "training" in repr(ml)
    described = ml.describe()
    assert described["services"]["training"] == {"profile": "other", "provider": "dummy-limited"}


def test_runtime_objects_are_never_persisted(write_config) -> None:  # type: ignore[no-untyped-def]
    write_config(GOOD)
    session = object()
    ml = mlport.connect(session=session, credentials="tok-should-not-appear")
    assert ml.training.provider.runtime["session"] is session
    assert "tok-should-not-appear" not in repr(ml)
    assert "tok-should-not-appear" not in str(ml.describe())


@pytest.mark.parametrize(
    ("text", "profile", "culprits"),
    [
        ("[profiles.a\nprovider = 1", None, ["not valid TOML", "line"]),
        ("colour = 'red'", None, ["'colour'"]),
        (
            "default_profile = 'ghost'\n[profiles.a]\nprovider='dummy'",
            None,
            ["'ghost'", "profiles: a"],
        ),
        ("[profiles.a]\nprovider='dummy'\nwrold='x'", "a", ["profile 'a'", "'wrold'", "world"]),
        ("[profiles.a]\nprovider='dummy'\nsteps='many'", "a", ["profile 'a'", "'steps'"]),
        ("[profiles.a]\nprovider='dummy'\npoll_interval=-1", "a", ["'poll_interval'"]),
        ("[profiles.a]\nworld='x'", "a", ["profile 'a'", "'provider' is missing"]),
        ("[profiles.a]\nprovider='dummy'", "b", ["profile 'b' does not exist", "profiles: a"]),
        (
            "[profiles.a]\nprovider='dummy'\nservices={training='b'}",
            "a",
            ["services.training", "'b'"],
        ),
        (
            "[profiles.a]\nprovider='dummy'\nservices={trainer='a'}",
            "a",
            ["unknown service 'trainer'"],
        ),
        (
            "[profiles.a]\nprovider='dummy'\nservices={training='b'}\n"
            "[profiles.b]\nprovider='dummy'\nservices={training='a'}",
            "a",
            ["routing loop", "a -> b -> a"],
        ),
        ("profiles = 3", None, ["'profiles' must be a table"]),
    ],
)
def test_config_errors_name_file_profile_and_key(
    write_config,
    text: str,
    profile: str | None,
    culprits: list[str],  # type: ignore[no-untyped-def]
) -> None:
    path = write_config(text)
    with pytest.raises(ConfigError) as info:
        resolve(profile)
    for culprit in culprits:
        assert culprit in str(info.value)
    assert str(path) in str(info.value)


def test_unknown_provider_lists_installed(write_config) -> None:  # type: ignore[no-untyped-def]
    path = write_config("[profiles.a]\nprovider='nimbus'")
    with pytest.raises(ProviderNotFoundError) as info:
        resolve("a")
    message = str(info.value)
    assert str(path) in message and "'provider'" in message and "dummy" in message


def test_no_file_means_the_onprem_default(tmp_path: Path) -> None:
    resolved = resolve()
    assert resolved.source is None
    assert resolved.profile.spec.name == "onprem"
    assert resolved.profile.config.root == str(tmp_path / ".mlport")  # type: ignore[attr-defined]


def test_relative_paths_resolve_against_the_file() -> None:
    from mlport.providers import ProviderConfig, config_path_validator

    class RootConfig(ProviderConfig):
        root: str = ".mlport"
        _rebase = config_path_validator("root")

    config = RootConfig.model_validate(
        {"provider": "x", "root": "state"}, context={"base_dir": Path("/team")}
    )
    assert config.root == "/team/state"
    assert (
        RootConfig.model_validate(
            {"provider": "x", "root": "/abs"}, context={"base_dir": Path("/t")}
        ).root
        == "/abs"
    )


def test_relative_path_defaults_resolve_against_the_file_too() -> None:
    from mlport.providers import ProviderConfig, config_path_validator

    class RootConfig(ProviderConfig):
        root: str = ".mlport"
        _rebase = config_path_validator("root")

    config = RootConfig.model_validate({"provider": "x"}, context={"base_dir": Path("/team")})
    assert config.root == "/team/.mlport"
