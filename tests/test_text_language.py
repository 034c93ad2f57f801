"""Which languages a text is in, and what the studio does when the engine does not speak them."""

import pytest

from voxmith.errors import VoxmithError
from voxmith.studio.language_check import check_text_language
from voxmith.text.language import detect_languages


@pytest.mark.parametrize("text,main,others", [
    ("Hello world, this is a test.", "en", ()),
    ("Привет, мир! Как дела?", "ru", ()),
    ("你好，世界。今天天气很好。", "zh", ()),
    ("こんにちは、世界。", "ja", ()),
    ("日本語です", "ja", ()),  # more kanji than kana in one run: was called Chinese
    ("東京都に行きます。", "ja", ()),
    ("안녕하세요 세계", "ko", ()),
    ("مرحبا بالعالم", "ar", ()),
    ("Ich bin nicht sicher, ob das heute geht.", "de", ()),
    ("Der Hund und die Katze schlafen.", "de", ()),
    ("Grüße aus München", "de", ()),
    ("Herr Müller went to the shop.", "en", ()),  # a German name is not German text
    ("I die, they hat a war bin.", "en", ()),  # English words that look German
    ("Please say Привет and 你好 to everyone here today.", "en", ("ru", "zh")),
    ("42 + 7 = 49", "und", ()),
])
def test_detect_languages(text, main, others):
    found = detect_languages(text)
    assert found.main == main
    assert set(found.languages) - {main} == set(others)


def engines():
    return {"piper-vc": ("en",), "tortoise": ("en",), "polyglot": ("en", "ru", "de")}


def test_text_in_another_script_is_refused_naming_words_and_an_engine():
    with pytest.raises(VoxmithError) as err:
        check_text_language("Привет, мир! Как дела?", "piper-vc", ("en",), engines)
    message = str(err.value)
    assert "Russian" in message and "'Привет'" in message and "speaks only English" in message
    assert "--engine polyglot" in message
    with pytest.raises(VoxmithError, match="No installed engine speaks Chinese"):
        check_text_language("你好，世界。", "piper-vc", ("en",), engines)


def test_mixed_text_warns_about_the_words_that_will_not_be_spoken():
    warnings = check_text_language("Please say Привет and 你好 to everyone here today.", "piper-vc", ("en",), engines)
    assert len(warnings) == 2
    assert any("'Привет'" in w and "Russian" in w for w in warnings)
    assert any("'你好'" in w and "Chinese" in w for w in warnings)


def test_german_is_spoken_with_a_warning_and_english_without():
    warnings = check_text_language("Ich bin nicht sicher, ob das heute geht.", "piper-vc", ("en",), engines)
    assert len(warnings) == 1 and "German" in warnings[0] and "'nicht'" in warnings[0]
    assert "English pronunciation" in warnings[0] and "--engine polyglot" in warnings[0]
    assert check_text_language("Ich bin nicht sicher.", "polyglot", ("en", "ru", "de"), engines) == []
    assert check_text_language("The quick brown fox.", "piper-vc", ("en",), engines) == []


def test_the_studio_refuses_before_any_work_and_engines_declare_languages(studio):
    from voxmith.engines import engine_class
    from voxmith.studio.speech import SpeakRequest

    assert engine_class("piper-vc").languages == ("en",)
    # No voice exists: the language is checked first, with its own message, not "no text to speak".
    with pytest.raises(VoxmithError, match="This text is Russian"):
        studio.speak(SpeakRequest("Привет, мир!", voice="nobody"))
    with pytest.raises(VoxmithError, match="no text to speak"):
        studio.speak(SpeakRequest("!!! ...", voice="nobody"))


def test_mixed_text_is_spoken_and_the_warning_reaches_the_sidecar_and_the_cli(studio, demo_files, tone_engine):
    from click.testing import CliRunner

    from voxmith.cli.main import cli

    studio.voices.add("demo", demo_files)
    home = str(studio.workspace.home)
    result = CliRunner().invoke(cli, ["--home", home, "-q", "speak", "-v", "demo", "--engine", "tone", "--no-rank",
                                      "Please say Привет to everyone here."])
    assert result.exit_code == 0, result.output
    assert "warning: 1 word(s) in Russian" in result.output and "'Привет'" in result.output
    import json
    from pathlib import Path

    sidecar = json.loads(Path(result.output.strip().splitlines()[-1]).with_suffix(".json").read_text())
    assert "'Привет'" in sidecar["warnings"][0]
