"""How many Chinese syllables the gpt-sovits front end reads differently without the G2PW model
(pypinyin's word dictionary, the official path with G2PW switched off) than with it.

    python benchmarks/gpt_sovits_chinese_g2pw.py [G2PW_FOLDER [ROBERTA_FOLDER]]

Needs `voxmith[zh]` and the official G2PW model (`voxmith models download gpt-sovits` with the zh
extra installed, or an install's GPT_SoVITS/text/G2PWModel) with the chinese-roberta-wwm-ext-large
tokenizer; both are looked for where the engine looks when not given. The sentence table is the
golden table of the tests (tests/fixtures/gpt_sovits/chinese_golden.json: numbers, dates,
polyphones, sandhi) plus POLYPHONE_SENTENCES below, everyday sentences with common polyphones.
Both readings have the same syllables in the same places (2 phones per character, 1 per mark), so
they are compared syllable by syllable. Writes benchmarks/results/gpt_sovits_chinese_g2pw.json
(with --stand-in, the tests' tiny stand-in model: a dry run of this script, nothing written).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from voxmith.engines.gpt_sovits import weights
from voxmith.engines.gpt_sovits.chinese import chinese_available, chinese_phones
from voxmith.engines.gpt_sovits.g2pw import G2PW

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "gpt_sovits_chinese_g2pw.json"
POLYPHONE_SENTENCES = [
    "他长得很高，是我们班的班长。",
    "这首曲子的音乐很好听，大家都很快乐。",
    "我还要还你上次借的书。",
    "他在银行工作，每天步行上班。",
    "这件事情很重要，请重新做一遍。",
    "我觉得今天睡了一个好觉。",
    "你为什么不为自己想一想？",
    "这个地方的地道小吃都很好吃。",
    "他得了第一名，大家都得去祝贺他。",
    "请把门关上，我们要开会了。",
    "这家店的生意好得不得了。",
    "她弹琴弹得很好，是个有名的琴师。",
    "数一数这里有多少人，数量不能错。",
    "今天的作业我已经做完了，了解了很多。",
    "那个和尚和我们一起吃饭。",
    "他给我看了一张发票，头发都白了。",
]


def syllables(phones, word2ph):
    out, position = [], 0
    for count in word2ph:
        out.append(" ".join(phones[position:position + count]))
        position += count
    return out


def main(arguments) -> None:
    if not chinese_available():
        sys.exit("Install the Chinese front end first: pip install 'voxmith[zh]'.")
    stand_in = "--stand-in" in arguments
    arguments = [a for a in arguments if a != "--stand-in"]
    fixtures = ROOT / "tests" / "fixtures" / "gpt_sovits"
    if stand_in:
        folder, tokenizer = fixtures / "tiny_g2pw", fixtures / "tiny_roberta" / "tokenizer.json"
    else:
        folder = Path(arguments[0]) if arguments else weights.find_g2pw()
        bert = Path(arguments[1]) if len(arguments) > 1 else weights.require_chinese()
        tokenizer = bert / "tokenizer.json"
        if folder is None:
            sys.exit("The G2PW model was not found: run `voxmith models download gpt-sovits --only G2PWModel.zip` "
                     "or give its folder.")
    g2pw = G2PW(folder, tokenizer)
    golden = json.loads((fixtures / "chinese_golden.json").read_text(encoding="utf-8"))
    table = [row["text"] for row in golden["sentences"]] + POLYPHONE_SENTENCES
    differing, total, rows = 0, 0, []
    seconds = {"pypinyin": 0.0, "g2pw": 0.0}
    for text in table:
        start = time.perf_counter()
        plain = chinese_phones(text)
        seconds["pypinyin"] += time.perf_counter() - start
        start = time.perf_counter()
        with_model = chinese_phones(text, g2pw)
        seconds["g2pw"] += time.perf_counter() - start
        a, b = syllables(plain[0], plain[1]), syllables(with_model[0], with_model[1])
        changes = [(plain[2][i], x, y) for i, (x, y) in enumerate(zip(a, b)) if x != y]
        differing += len(changes)
        total += sum(1 for count in plain[1] if count == 2)
        rows.append({"text": text, "normalized": plain[2], "differences": changes})
    result = {"model": str(folder), "sentences": len(table), "syllables": total, "syllables_differing": differing,
              "percent_differing": round(100.0 * differing / max(total, 1), 2),
              "seconds": {k: round(v, 3) for k, v in seconds.items()}, "rows": rows}
    print(json.dumps({k: v for k, v in result.items() if k != "rows"}, ensure_ascii=False))
    if not stand_in:
        OUT.write_text(json.dumps(result, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
        print(f"wrote {OUT}")


if __name__ == "__main__":
    main(sys.argv[1:])
