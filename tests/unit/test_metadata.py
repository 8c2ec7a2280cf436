"""Object metadata -> prompt and options: decoding, merging, and every validation rule."""

from __future__ import annotations

import pytest
from kontext_pipeline.core.errors import InvalidInputError
from kontext_pipeline.storage.metadata import (
    EditDefaults,
    Sidecar,
    build_edit_spec,
    decode_metadata_value,
    encode_metadata_value,
    parse_sidecar,
)


def test_prompt_and_options_are_read_with_dashes_or_underscores() -> None:
    # Given metadata as S3 returns it (lower-cased keys, string values)
    metadata = {
        "prompt": "Put a donut next to the flour.",
        "num-images": "4",
        "output_format": "png",
        "guidance-scale": "3.5",
        "seed": "42",
        "aspect-ratio": "16:9",
        "sync-mode": "false",
        "safety-tolerance": "2",
        "enhance_prompt": "true",
    }
    # When it is turned into an edit
    spec = build_edit_spec(metadata)
    # Then every option is typed and named as the model wants it
    assert spec.prompt == "Put a donut next to the flour."
    assert spec.options.model_dump(exclude_none=True) == {
        "num_images": 4,
        "output_format": "png",
        "guidance_scale": 3.5,
        "seed": 42,
        "aspect_ratio": "16:9",
        "sync_mode": False,
        "safety_tolerance": "2",
        "enhance_prompt": True,
    }
    assert spec.prompt_source == "metadata"


def test_non_ascii_prompt_is_rfc2047_decoded() -> None:
    # Given a non-ASCII prompt as S3 hands it back (RFC 2047 encoded-word)
    encoded = encode_metadata_value("Ajoute un café ☕ à côté de la farine")
    assert encoded.startswith("=?utf-8?")
    # When the metadata is parsed
    spec = build_edit_spec({"prompt": encoded})
    # Then the prompt is the original text
    assert spec.prompt == "Ajoute un café ☕ à côté de la farine"


def test_missing_prompt_names_the_ways_to_give_one() -> None:
    # Given metadata with options but no prompt, and no default
    # When it is parsed / Then the error says how to fix it
    with pytest.raises(InvalidInputError) as caught:
        build_edit_spec({"num-images": "2"})
    assert caught.value.reason == "missing_prompt"
    assert "x-amz-meta-prompt" in caught.value.message


def test_blank_prompt_is_missing() -> None:
    # Given a prompt of spaces only
    # When parsed / Then it counts as no prompt
    with pytest.raises(InvalidInputError) as caught:
        build_edit_spec({"prompt": "   "})
    assert caught.value.reason == "missing_prompt"


@pytest.mark.parametrize(
    ("name", "value", "needle"),
    [
        ("num-images", "5", "num-images='5'"),
        ("num-images", "0", "greater than or equal to 1"),
        ("num-images", "two", "valid integer"),
        ("guidance-scale", "25", "less than or equal to 20"),
        ("guidance-scale", "0.5", "greater than or equal to 1"),
        ("guidance-scale", "lots", "valid number"),
        ("seed", "-1", "greater than or equal to 0"),
        ("seed", "1.5", "valid integer"),
        ("output-format", "gif", "'jpeg' or 'png'"),
        ("aspect-ratio", "5:4", "aspect-ratio='5:4'"),
        ("safety-tolerance", "7", "safety-tolerance='7'"),
        ("sync-mode", "maybe", "valid boolean"),
        ("enhance-prompt", "often", "valid boolean"),
    ],
)
def test_every_option_out_of_range_or_of_the_wrong_type_is_refused(
    name: str, value: str, needle: str
) -> None:
    # Given a prompt and one bad option
    # When parsed / Then the error names the option, the value and the rule
    with pytest.raises(InvalidInputError) as caught:
        build_edit_spec({"prompt": "x", name: value})
    assert caught.value.reason == "invalid_option"
    assert needle in caught.value.message


def test_unknown_keys_are_ignored_and_reported() -> None:
    # Given metadata with keys that are neither the prompt nor an option
    # When parsed / Then they are ignored, and named for the warning
    spec = build_edit_spec({"prompt": "x", "colour": "blue", "uploaded-by": "ana"})
    assert spec.ignored_keys == ("colour", "uploaded_by")


def test_jpg_is_accepted_for_jpeg() -> None:
    # Given output-format JPG / When parsed / Then it is the model's jpeg
    assert build_edit_spec({"prompt": "x", "output-format": "JPG"}).options.output_format == "jpeg"


def test_defaults_sit_under_sidecar_under_metadata() -> None:
    # Given a default, a JSON sidecar and metadata that all set options
    name = "a.jpg.prompt.json"
    fields = parse_sidecar('{"prompt": "from sidecar", "num_images": 3, "seed": 7}', name=name)
    defaults = EditDefaults("default", {"num_images": 2, "output_format": "png"})
    # When merged
    spec = build_edit_spec({"seed": "9"}, sidecar=Sidecar(name, fields), defaults=defaults)
    # Then metadata wins over the sidecar, which wins over the defaults
    assert spec.prompt == "from sidecar"
    assert spec.prompt_source == "sidecar a.jpg.prompt.json"
    assert (spec.options.num_images, spec.options.seed, spec.options.output_format) == (3, 9, "png")


def test_default_prompt_is_used_when_the_upload_has_none() -> None:
    # Given an upload without a prompt, and a default prompt configured
    # When parsed / Then the default is the prompt, and says so
    spec = build_edit_spec({}, defaults=EditDefaults("Make it look like a watercolour"))
    assert (spec.prompt, spec.prompt_source) == ("Make it look like a watercolour", "default")


def test_text_sidecar_is_the_prompt() -> None:
    # Given a text sidecar / When read / Then its trimmed text is the prompt
    assert parse_sidecar("  a long prompt\n", name="k.prompt.txt") == {"prompt": "a long prompt"}


def test_broken_json_sidecar_is_an_input_error() -> None:
    # Given a JSON sidecar that is not JSON / When read / Then it is an invalid_sidecar error
    with pytest.raises(InvalidInputError) as caught:
        parse_sidecar("{not json", name="k.prompt.json")
    assert caught.value.reason == "invalid_sidecar"


def test_overlong_prompt_is_refused() -> None:
    # Given a prompt one character over the limit / When parsed / Then it is refused
    with pytest.raises(InvalidInputError) as caught:
        build_edit_spec({"prompt": "x" * 10_001})
    assert caught.value.reason == "prompt_too_long"


def test_encoded_word_with_unknown_charset_is_refused_clearly() -> None:
    # Given an encoded word in a charset Python does not know
    # When decoded / Then it is an input error naming the value
    with pytest.raises(InvalidInputError) as caught:
        decode_metadata_value("=?bogus-charset?b?aGVsbG8=?=")
    assert caught.value.reason == "invalid_metadata"
    assert "bogus-charset" in caught.value.message


def test_quoted_printable_encoded_word_is_decoded() -> None:
    # Given a Q-encoded word / When decoded / Then it is the UTF-8 text
    assert decode_metadata_value("=?utf-8?q?caf=C3=A9?=") == "café"
