"""Mandarin tone sandhi, as the official GPT-SoVITS front end applies it (`text/tone_sandhi.py`,
itself from PaddleSpeech).

Words come from jieba's part-of-speech segmentation as (word, tag) pairs. `merge_words` first
regroups them so the rules see the right units (不 + the next word; 一 + the next word, or "听一听";
reduplications; neighbouring third-tone words up to three characters; 儿 onto the word before).
`sandhi(word, tag, finals)` then changes the tones of a word's finals (pinyin finals with the tone
digit last, 5 = neutral) in the official order:
- 不: neutral in "V不V" words, second tone before a fourth tone;
- 一: unchanged in number strings, neutral in "V一V", first tone in ordinals (第一), second
  tone before a fourth tone, fourth tone before other tones (not before punctuation);
- neutral tone: reduplicated nouns/verbs/adjectives, sentence particles, 的地得, aspect particles
  了着过, plural 们/子, locatives 上下里, directional 来去, the measure word 个, and a word list;
- third tone: 3-3 becomes 2-3 within words (two- and three-character words split by jieba's
  search mode, four-character words as two pairs).
The word lists are data (data/chinese.json.gz).
"""

from __future__ import annotations

from typing import Callable, List, Sequence, Tuple

from voxmith.engines.gpt_sovits.chinese_normalize import chinese_data

PUNCTUATION = "：，；。？！“”‘’':,;.?!"
PARTICLES = "吧呢哈啊呐噻嘛吖嗨呐哦哒额滴哩哟喽啰耶喔诶"
Word = List[str]  # [word, tag]


class ToneSandhi:
    """The official rules over one segmenter: `search_cut(word)` (jieba's `cut_for_search`) and
    `finals_of(word)` (pypinyin finals with tone 1-5 per character)."""

    def __init__(self, search_cut: Callable[[str], Sequence[str]], finals_of: Callable[[str], List[str]]):
        self.search_cut = search_cut
        self.finals_of = finals_of
        data = chinese_data()
        self.neutral_words = frozenset(data["neutral_tone_words"])
        self.not_neutral_words = frozenset(data["not_neutral_tone_words"])

    # -- regrouping jieba's words -------------------------------------------------------------

    def merge_words(self, words: Sequence[Tuple[str, str]]) -> List[Word]:
        merged = [list(w) for w in _merge_bu(words)]
        # A failing step leaves the words as they were (the official code catches and goes on).
        for step in (_merge_yi, _merge_reduplication, self._merge_third_tones, self._merge_third_tone_edges):
            try:
                merged = step(merged)
            except IndexError:
                pass
        return _merge_er(merged)

    def _merge_third_tones(self, words: List[Word]) -> List[Word]:
        """Two neighbouring words all in the third tone, together at most 3 characters."""
        finals = [self.finals_of(w) for w, _ in words]
        return _merge_pairs(words, lambda i: _all_third(finals[i - 1]) and _all_third(finals[i]))

    def _merge_third_tone_edges(self, words: List[Word]) -> List[Word]:
        """A word ending and the next starting in the third tone, together at most 3 characters."""
        finals = [self.finals_of(w) for w, _ in words]
        return _merge_pairs(words, lambda i: finals[i - 1][-1][-1] == "3" and finals[i][0][-1] == "3")

    # -- tones of one word ----------------------------------------------------------------------

    def sandhi(self, word: str, tag: str, finals: List[str]) -> List[str]:
        finals = _bu(word, finals)
        finals = _yi(word, finals)
        finals = self._neutral(word, tag, finals)
        return self._third(word, finals)

    def _split(self, word: str) -> List[str]:
        """The word in two: its shortest search-mode sub-word and the rest."""
        shortest = sorted(self.search_cut(word), key=len)[0]
        if word.find(shortest) == 0:
            return [shortest, word[len(shortest):]]
        return [word[:-len(shortest)], shortest]

    def _neutral(self, word: str, tag: str, finals: List[str]) -> List[str]:
        for j in range(1, len(word)):
            if word[j] == word[j - 1] and tag[0] in "nva" and word not in self.not_neutral_words:
                finals[j] = _tone(finals[j], "5")
        measure = word.find("个")
        if word and word[-1] in PARTICLES:
            finals[-1] = _tone(finals[-1], "5")
        elif word and word[-1] in "的地得":
            finals[-1] = _tone(finals[-1], "5")
        elif len(word) == 1 and word in "了着过" and tag in {"ul", "uz", "ug"}:
            finals[-1] = _tone(finals[-1], "5")
        elif len(word) > 1 and word[-1] in "们子" and tag in {"r", "n"} and word not in self.not_neutral_words:
            finals[-1] = _tone(finals[-1], "5")
        elif len(word) > 1 and word[-1] in "上下里" and tag in {"s", "l", "f"}:
            finals[-1] = _tone(finals[-1], "5")
        elif len(word) > 1 and word[-1] in "来去" and word[-2] in "上下进出回过起开":
            finals[-1] = _tone(finals[-1], "5")
        elif (measure >= 1 and (word[measure - 1].isnumeric() or word[measure - 1] in "几有两半多各整每做是")) \
                or word == "个":
            finals[measure] = _tone(finals[measure], "5")
        elif word in self.neutral_words or word[-2:] in self.neutral_words:
            finals[-1] = _tone(finals[-1], "5")
        parts = self._split(word)
        halves = [finals[:len(parts[0])], finals[len(parts[0]):]]
        for part, half in zip(parts, halves):
            if part in self.neutral_words or part[-2:] in self.neutral_words:
                half[-1] = _tone(half[-1], "5")
        return halves[0] + halves[1]

    def _third(self, word: str, finals: List[str]) -> List[str]:
        if len(word) == 2 and _all_third(finals):
            finals[0] = _tone(finals[0], "2")
        elif len(word) == 3:
            parts = self._split(word)
            if _all_third(finals):
                if len(parts[0]) == 2:  # 蒙古/包
                    finals[0], finals[1] = _tone(finals[0], "2"), _tone(finals[1], "2")
                elif len(parts[0]) == 1:  # 纸/老虎
                    finals[1] = _tone(finals[1], "2")
            else:
                halves = [finals[:len(parts[0])], finals[len(parts[0]):]]
                for i, half in enumerate(halves):
                    if _all_third(half) and len(half) == 2:  # 所有/人
                        half[0] = _tone(half[0], "2")
                    elif i == 1 and not _all_third(half) and half[0][-1] == "3" and halves[0][-1][-1] == "3":
                        halves[0][-1] = _tone(halves[0][-1], "2")  # 好/喜欢
                finals = halves[0] + halves[1]
        elif len(word) == 4:  # an idiom: two pairs
            pairs = [finals[:2], finals[2:]]
            for pair in pairs:
                if _all_third(pair):
                    pair[0] = _tone(pair[0], "2")
            finals = pairs[0] + pairs[1]
        return finals


def _tone(final: str, tone: str) -> str:
    return final[:-1] + tone


def _all_third(finals: Sequence[str]) -> bool:
    return all(f[-1] == "3" for f in finals)


def _bu(word: str, finals: List[str]) -> List[str]:
    if len(word) == 3 and word[1] == "不":  # 看不懂
        finals[1] = _tone(finals[1], "5")
    else:
        for i, char in enumerate(word):
            if char == "不" and i + 1 < len(word) and finals[i + 1][-1] == "4":  # 不怕
                finals[i] = _tone(finals[i], "2")
    return finals


def _yi(word: str, finals: List[str]) -> List[str]:
    if "一" in word and all(c.isnumeric() for c in word if c != "一"):  # 一零零
        return finals
    if len(word) == 3 and word[1] == "一" and word[0] == word[-1]:  # 看一看
        finals[1] = _tone(finals[1], "5")
    elif word.startswith("第一"):
        finals[1] = _tone(finals[1], "1")
    else:
        for i, char in enumerate(word):
            if char == "一" and i + 1 < len(word):
                if finals[i + 1][-1] == "4":  # 一段
                    finals[i] = _tone(finals[i], "2")
                elif word[i + 1] not in PUNCTUATION:  # 一天
                    finals[i] = _tone(finals[i], "4")
    return finals


def _merge_bu(words: Sequence[Tuple[str, str]]) -> List[Tuple[str, str]]:
    merged, last = [], ""
    for word, tag in words:
        if last == "不":
            word = last + word
        if word != "不":
            merged.append((word, tag))
        last = word
    if last == "不":
        merged.append((last, "d"))
    return merged


def _merge_yi(words: List[Word]) -> List[Word]:
    merged: List[Word] = []
    i = 0
    while i < len(words):
        word, tag = words[i]
        if i >= 1 and word == "一" and i + 1 < len(words):
            before = merged[-1] if merged else words[i - 1]
            after = words[i + 1]
            if before[0] == after[0] and before[1] == "v" and after[1] == "v":  # 听 一 听
                merged[-1] = [before[0] + "一" + after[0], before[1]]
                i += 2
                continue
        merged.append([word, tag])
        i += 1
    joined: List[Word] = []
    for word, tag in merged:
        if joined and joined[-1][0] == "一":
            joined[-1][0] += word
        else:
            joined.append([word, tag])
    return joined


def _merge_reduplication(words: List[Word]) -> List[Word]:
    merged: List[Word] = []
    for word, tag in words:
        if merged and word == merged[-1][0]:
            merged[-1][0] += word
        else:
            merged.append([word, tag])
    return merged


def _merge_pairs(words: List[Word], both_third: Callable[[int], bool]) -> List[Word]:
    merged: List[Word] = []
    joined_last = [False] * len(words)
    for i, (word, tag) in enumerate(words):
        previous = words[i - 1][0] if i else ""
        if i and both_third(i) and not joined_last[i - 1] and not _reduplication(previous) \
                and len(previous) + len(word) <= 3:
            merged[-1][0] += word
            joined_last[i] = True
        else:
            merged.append([word, tag])
    return merged


def _reduplication(word: str) -> bool:
    return len(word) == 2 and word[0] == word[1]


def _merge_er(words: List[Word]) -> List[Word]:
    merged: List[Word] = []
    for i, (word, tag) in enumerate(words):
        if i and word == "儿" and words[i - 1][0] != "#":
            merged[-1][0] += word
        else:
            merged.append([word, tag])
    return merged
