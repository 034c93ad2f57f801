"""How often the gpt-sovits English front end's homograph rule (used when NLTK's tagger data is not
installed) picks the pronunciation NLTK's averaged-perceptron tagger picks.

    NLTK_DATA=/tmp/gsv_front/nltk_data python benchmarks/gpt_sovits_homographs.py /tmp/gsv_front/inaugural

Needs NLTK's English tagger data (`taggers/averaged_perceptron_tagger_eng/` in NLTK_DATA; see
tests/fixtures/gpt_sovits/prepare_reference_nltk.py to build it offline) and a folder of plain-text
English, here the 59 speeches of NLTK's `inaugural` corpus (packages/corpora/inaugural.zip of the
nltk_data repository, unzipped). Writes benchmarks/results/gpt_sovits_homographs.json.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections import Counter
from pathlib import Path

from voxmith.engines.gpt_sovits.english import _homograph, _tokenizer, homograph_table
from voxmith.engines.gpt_sovits.english_normalize import normalize_english
from voxmith.engines.gpt_sovits.pos_tags import NltkTagger, RuleTagger, load_tagger

OUT = Path(__file__).resolve().parent / "results" / "gpt_sovits_homographs.json"


def main(folder: Path) -> None:
    nltk_tagger = load_tagger([Path(p) for p in os.environ.get("NLTK_DATA", "").split(os.pathsep) if p])
    if not isinstance(nltk_tagger, NltkTagger):
        sys.exit("NLTK's English tagger data was not found: set NLTK_DATA.")
    rule, table = RuleTagger(), homograph_table()
    files = sorted(folder.glob("*.txt"))
    agree = total = 0
    misses: Counter = Counter()
    for path in files:
        for sentence in re.split(r"(?<=[.!?])\s+", path.read_text(encoding="utf-8", errors="ignore")):
            tokens = _tokenizer().tokenize(normalize_english(sentence))
            for (word, nltk_tag), (_, rule_tag) in zip(nltk_tagger.tag(tokens), rule.tag(tokens)):
                entry = table.get(word.lower())
                if entry is None or len(word) < 2:
                    continue
                total += 1
                same = _homograph(entry, nltk_tag) == _homograph(entry, rule_tag)
                agree += same
                misses[word.lower()] += not same
    result = {"texts": f"{len(files)} files of {folder.name}", "homograph_tokens": total,
              "rule_agrees_with_nltk": round(agree / max(total, 1), 4),
              "most_missed": misses.most_common(10)}
    OUT.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
