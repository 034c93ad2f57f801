"""The shells' one NAME=VALUE reader (`--set`, `--loss-weight`, the web UI's settings box)."""

import pytest

from voxmith.assignments import split_assignments
from voxmith.errors import VoxmithError


def test_names_and_values_are_stripped_and_dashes_read_as_underscores():
    assert split_assignments([" length-scale = 1.1", "reference_text= Hello, there. ", "stage=vocoder"], "--set") == {
        "length_scale": "1.1", "reference_text": "Hello, there.", "stage": "vocoder"}
    assert split_assignments(["a=1", "a=2", "empty="], "--set") == {"a": "2", "empty": ""}  # the later wins
    assert split_assignments(["text=a=b"], "--set") == {"text": "a=b"}  # only the first '=' splits


@pytest.mark.parametrize("item", ["stage", "=1", " = x"])
def test_an_item_without_a_name_or_equals_sign_is_refused_in_one_wording(item):
    with pytest.raises(VoxmithError, match=rf"^--set '{item.strip()}' is not NAME=VALUE\.$"):
        split_assignments(["ok=1", item], "--set")
    with pytest.raises(VoxmithError, match=r"^Loss weight .* is not NAME=VALUE; tortoise's losses are text, mel\.$"):
        split_assignments([item], "Loss weight", "tortoise's losses are text, mel.")
