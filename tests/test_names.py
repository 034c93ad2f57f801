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
