"""Part-of-speech tags for the English G2P, which needs them only to read homographs.

The official front end tags every sentence with NLTK's averaged-perceptron tagger and uses the tag
of a homograph ("refuse", "read", "live", "object"...: g2p_en's table, about 370 words) to pick its
pronunciation: the first one when the tag starts with the table's tag (almost always "V", a verb).
NLTK does not ship the tagger's weights: they are NLTK data, downloaded from the internet (and
NLTK >= 3.9 reads only its JSON form, `taggers/averaged_perceptron_tagger_eng/`). No PyPI package
carries them, so voxmith:

1. uses NLTK's tagger when its data is found: in NLTK's own data path (`NLTK_DATA`, ~/nltk_data,
   ...) or in the folder `voxmith models download gpt-sovits` fills (`<models>/gpt-sovits/nltk_data`);
2. otherwise tags only what the G2P asks about with a small rule (`RuleTagger`): a word right after
   "to", a modal verb or a subject pronoun is a verb ("VB"); a word ending in -ed that does not
   follow a determiner is a past verb ("VBD"); anything else a noun ("NN"). It reads "I refuse to
   collect the refuse" and "I will read it" right, and misses what needs more context ("the live
   show": noun, wrong — an adjective). On the 59 speeches of NLTK's inaugural corpus it picks the
   pronunciation NLTK's tagger picks for 90 % of the homographs (benchmarks/gpt_sovits_homographs.py).

Words that are not homographs never depend on the tags, so every other word is read exactly as the
official code reads it whichever tagger is used.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import List, Optional, Protocol, Sequence, Tuple

TAGGER_RESOURCE = "taggers/averaged_perceptron_tagger_eng"
_VERB_CONTEXT = frozenset("""to will would can could shall should may might must do does did don't
doesn't didn't won't wouldn't can't couldn't shouldn't i you we they he she it not""".split())
_DETERMINERS = frozenset("the a an this that these those his her their our my your its no every each any some".split())


class Tagger(Protocol):
    name: str

    def tag(self, tokens: Sequence[str]) -> List[Tuple[str, str]]:
        """(token, Penn Treebank tag) for every token."""


class RuleTagger:
    """The fallback without NLTK's tagger data (see the module docstring)."""

    name = "rule"

    def tag(self, tokens: Sequence[str]) -> List[Tuple[str, str]]:
        tags = []
        for index, token in enumerate(tokens):
            before = tokens[index - 1].lower() if index else ""
            if before in _VERB_CONTEXT:
                tag = "VB"
            elif token.lower().endswith("ed") and before not in _DETERMINERS:
                tag = "VBD"
            else:
                tag = "NN"
            tags.append((token, tag))
        return tags


class NltkTagger:
    """NLTK's averaged-perceptron tagger loaded from a data folder."""

    name = "nltk-averaged-perceptron"

    def __init__(self, folder: Path):
        from nltk.tag.perceptron import PerceptronTagger

        # Read here rather than by `load_from_json`, whose path checks refuse folders outside
        # NLTK's own data path (such as voxmith's models folder).
        self._tagger = PerceptronTagger(load=False)
        self._tagger.decode_json_params(
            json.loads((folder / f"averaged_perceptron_tagger_eng.{part}.json").read_text(encoding="utf-8"))
            for part in ("weights", "tagdict", "classes"))

    def tag(self, tokens: Sequence[str]) -> List[Tuple[str, str]]:
        return self._tagger.tag(list(tokens))


def find_tagger_folder(extra_dirs: Sequence[Path] = ()) -> Optional[Path]:
    """The folder holding the tagger's JSON files: `extra_dirs` (each an nltk_data-style root)
    first, then NLTK's own search path."""
    roots = [Path(d) for d in extra_dirs]
    try:
        import nltk.data

        roots += [Path(p) for p in nltk.data.path if isinstance(p, (str, os.PathLike))]
    except ImportError:
        pass
    for root in roots:
        folder = root / TAGGER_RESOURCE
        if (folder / "averaged_perceptron_tagger_eng.weights.json").is_file():
            return folder
    return None


def load_tagger(extra_dirs: Sequence[Path] = ()) -> Tagger:
    """NLTK's tagger when its data is there, else the rule (a damaged data folder counts as absent)."""
    folder = find_tagger_folder(extra_dirs)
    if folder is not None:
        try:
            return NltkTagger(folder)
        except Exception:  # unreadable or refused by NLTK's path checks: the rule still works
            pass
    return RuleTagger()
