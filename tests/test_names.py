import pytest

from voxmith.errors import VoxmithError
from voxmith.paths import sanitize_filename, validate_name


@pytest.mark.parametrize("name", ["alice", "Narrator 2", "tom_v2", "émile", "a.b"])
def test_valid_names(name):
    assert validate_name(name) == name


@pytest.mark.parametrize("name,reason", [
    ("", "empty"), ("   ", "empty"), ("../etc", "separator"), ("a/b", "separator"), ("a\\b", "separator"),
    ("..", "'.'"), (".hidden", "'.'"), ("a..b", "'..'"), ("bad\x00name", "control"), ("tab\tname", "control"),
    ("new\nline", "control"), (" padded", "spaces"), ("x" * 65, "64"), ("con", "reserved"), ("what?", "forbid"),
])
def test_invalid_names_explain_why(name, reason):
    with pytest.raises(VoxmithError) as info:
        validate_name(name)
    assert reason in str(info.value)


def test_a_name_has_one_unicode_spelling():
    """'Zoë' typed as one character (NFC) or as 'e' + a combining diaeresis (NFD: macOS file
    dialogs, some keyboards) was two names, so two folders that look alike in every listing."""
    assert validate_name("Zoe\u0308") == validate_name("Zo\u00eb") == "Zo\u00eb"
    assert validate_name("e\u0301" * 40) == "\u00e9" * 40  # the length counted as spelt on disk (NFC)


@pytest.mark.parametrize("name,named", [
    ("de\u200bmo", "U+200B (ZERO WIDTH SPACE)"), ("demo\u202eevil", "U+202E (RIGHT-TO-LEFT OVERRIDE)"),
    ("\ufeffdemo", "U+FEFF"), ("Zoë\u00a0Smith", "U+00A0 (NO-BREAK SPACE)"), ("a\u3000b", "U+3000"),
    ("two\u2028lines", "U+2028 (LINE SEPARATOR)"), ("tab\tname", "control character U+0009"),
])
def test_characters_that_hide_or_fake_part_of_a_name_are_refused_and_named(name, named):
    """Invisible characters, text-direction overrides and look-alike spaces make one name look like
    another; the refusal names the character, which the user cannot see."""
    with pytest.raises(VoxmithError) as info:
        validate_name(name)
    assert named in str(info.value)


@pytest.mark.parametrize("raw,clean", [
    ("My Clip (1).WAV", "My_Clip_1.wav"),
    ("../../etc/passwd", "passwd"),
    ("C:\\Users\\me\\voice.mp3", "voice.mp3"),
    ("..wav", "clip.wav"),
    ("naïve café.flac", "naive_cafe.flac"),
    ("\x00\x01.wav", "clip.wav"),
    ("noext", "noext"),
])
def test_sanitize_filename(raw, clean):
    assert sanitize_filename(raw) == clean
