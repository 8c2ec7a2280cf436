"""Settings: defaults, parsing from the environment, and the recursion guard at start-up."""

from __future__ import annotations

import pytest
from kontext_pipeline.core.config import PipelineSettings, load_settings
from kontext_pipeline.core.errors import ConfigurationError


def test_defaults_are_fals_own_values(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given no model settings in the environment
    for name in ("FAL_BASE_URL", "FAL_MODEL_PATH", "FAL_KEY", "OUTPUT_URL_HOSTS"):
        monkeypatch.delenv(name, raising=False)
    # When the settings are read
    settings = load_settings(PipelineSettings)
    # Then they are fal's own queue and the Kontext [max] model, with no key
    assert settings.fal_base_url == "https://queue.fal.run"
    assert settings.fal_model_path == "fal-ai/flux-pro/kontext/max"
    assert settings.fal_key is None


def test_environment_is_parsed(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given the variables template.yaml sets
    monkeypatch.setenv("INPUT_PREFIX", "uploads")
    monkeypatch.setenv("OUTPUT_URL_HOSTS", "fal.media, cdn.example.com")
    monkeypatch.setenv("DEFAULT_OPTIONS", '{"output_format": "png"}')
    monkeypatch.setenv("FAL_KEY", "")
    # When loaded
    settings = load_settings(PipelineSettings)
    # Then they are normalised
    assert settings.input_prefix == "uploads/"
    assert settings.output_url_hosts == ("fal.media", "cdn.example.com")
    assert settings.default_options == {"output_format": "png"}
    assert settings.fal_key is None


@pytest.mark.parametrize(
    ("inputs", "outputs"),
    [("inputs/", "inputs/"), ("inputs/", "inputs/out/"), ("data/", "data/inputs/")],
)
def test_overlapping_prefixes_are_refused_at_cold_start(inputs: str, outputs: str) -> None:
    # Given outputs that would land where the trigger listens
    # When the settings load / Then start-up fails, naming the loop
    with pytest.raises(ConfigurationError, match="re-trigger"):
        load_settings(PipelineSettings, input_prefix=inputs, output_prefix=outputs)


def test_a_request_never_waits_longer_than_its_presigned_input_lives() -> None:
    # Given a queue wait longer than an hour / When the settings load / Then start-up fails
    with pytest.raises(ConfigurationError, match="queue_wait_seconds"):
        load_settings(PipelineSettings, queue_wait_seconds=3601)
    # And an hour is the default and the most
    assert load_settings(PipelineSettings).queue_wait_seconds == 3600


def test_api_key_is_never_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given the API key in the environment (local runs only)
    monkeypatch.setenv("FAL_KEY", "sk-very-secret")
    # When the settings are read
    settings = load_settings(PipelineSettings)
    # Then neither their repr nor their dump shows it
    assert "sk-very-secret" not in repr(settings)
    assert "sk-very-secret" not in str(settings.model_dump())
