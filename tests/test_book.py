"""`voxmith book`: chapters, pauses and pause markup, resume, --redo, review list, M4B chapters, EPUB.
Synthesis by the instant `tone` test engine: the book logic is what is under test here."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import av
import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

import voxmith.asr
import voxmith.quality
from voxmith.cli.main import cli
from voxmith.errors import VoxmithError
from voxmith.studio import Studio
from voxmith.studio.book import BookMaker, BookRequest
from voxmith.studio.fragments import fails_on_words_only, joins, short_joins
from voxmith.studio.ranking import RankingSettings, TakeScores
from voxmith.studio.speech import Speaker
from voxmith.text import word_errors_by_part
from voxmith.text.book import PauseSettings, parse_book

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "book" / "lighthouse.md"


def test_markdown_chapters_pauses_and_markup():
    pauses = PauseSettings(sentence_pause_s=0.3, paragraph_pause_s=0.9, chapter_pause_s=2.0)
    chapters = parse_book(FIXTURE.read_text(), markdown=True, pauses=pauses)
    assert [c.title for c in chapters] == ["The Keeper of Gull Rock", "Chapter One: The Storm",
                                           "Chapter Two: The Ship", "Chapter Three: Morning"]
    first = chapters[0].sentences
    assert first[0].text == "The Keeper of Gull Rock." and first[0].pause_after_s == 0.9  # the title, read
    assert first[1].text.startswith("A short story in three chapters")  # emphasis marks dropped
    counted = next(s for s in first if s.text == "Every evening he climbed the ninety steps.")
    assert counted.pause_after_s == 1.0  # [pause 1s]
    polished = next(s for s in chapters[1].sentences if s.text.startswith("Tomas trimmed"))
    assert polished.pause_after_s == 0.8  # <break time="800ms"/>
    assert chapters[1].sentences[1].pause_after_s == 0.3  # between sentences of a paragraph
    assert all(c.sentences[-1].pause_after_s == 0.0 for c in chapters)
    assert chapters[2].sentences[0].id == "c03-s0001"


def test_plain_text_chapters_and_bad_pauses():
    chapters = parse_book("A preface.\n\nCHAPTER I\n\nIt began. It went on.\n\nChapter 2. The End\n\nDone.",
                          markdown=False, pauses=PauseSettings())
    assert [c.title for c in chapters] == ["Opening", "CHAPTER I", "Chapter 2. The End"]
    assert [s.text for s in chapters[1].sentences] == ["CHAPTER I.", "It began.", "It went on."]
    assert len(parse_book("No headings at all. Just words.", False, PauseSettings())) == 1
    with pytest.raises(VoxmithError, match="longer than 30 s"):
        parse_book("Wait [pause 90s] here.", False, PauseSettings())
    with pytest.raises(VoxmithError, match="no words"):
        parse_book("\n\n  \n", False, PauseSettings())
    with pytest.raises(VoxmithError, match="chapter pause"):
        PauseSettings(chapter_pause_s=-1).validate()
    # Before: "chapter pause s must be between 0 and 30 s, got 1000000000.0."
    with pytest.raises(VoxmithError, match=r"^The chapter pause \(--chapter-pause\) must be between 0 and 30 seconds, "
                                           r"got 1e\+09\.$"):
        PauseSettings(chapter_pause_s=1e9).validate()


def _studio(path: Path) -> Studio:
    studio = Studio(path, device="cpu")
    studio.import_demo_voice()
    return studio


def _request(folder: Path, **kwargs) -> BookRequest:
    values = dict(source=FIXTURE, voice="demo", engine="tone", seed=3, rank=False, output_dir=folder)
    values.update(kwargs)
    return BookRequest(**values)


def _interrupted(studio: Studio, request: BookRequest, sentences: int, monkeypatch) -> None:
    """`request` stopped (KeyboardInterrupt) after `sentences` sentences, as a killed run leaves it."""
    made = []
    original = Speaker.speak_sentence

    def interrupted(self, text, seed):
        if len(made) == sentences:
            raise KeyboardInterrupt
        made.append(text)
        return original(self, text, seed)

    monkeypatch.setattr(Speaker, "speak_sentence", interrupted)
    with pytest.raises(KeyboardInterrupt):
        studio.book(request)
    monkeypatch.setattr(Speaker, "speak_sentence", original)


def test_book_chapters_m4b_and_manifest(tmp_path, tone_engine):
    studio = _studio(tmp_path / "ws")
    result = studio.book(_request(tmp_path / "book"))
    manifest = json.loads((result.folder / "manifest.json").read_text())
    assert [c["title"] for c in manifest["chapters"]][0] == "The Keeper of Gull Rock"
    assert result.book_path.name == "book.m4b" and manifest["review"] == []
    # the folder is the user's: what keeps two processes apart is hidden
    assert "lock" not in {p.name for p in result.folder.iterdir()}
    with av.open(str(result.book_path)) as container:
        chapters = container.chapters()
        assert [c["metadata"]["title"] for c in chapters] == [c["title"] for c in manifest["chapters"]]
        assert container.duration / 1e6 == pytest.approx(manifest["output"]["duration_s"], abs=0.2)
    rate = manifest["output"]["sample_rate_hz"]
    for chapter in manifest["chapters"]:
        audio, file_rate = sf.read(result.folder / chapter["file"], dtype="float32")
        assert file_rate == rate
        assert len(audio) / rate == pytest.approx(chapter["end_s"] - chapter["start_s"], abs=1e-3)
        assert chapter["start_s"] == pytest.approx(chapters[chapter["number"] - 1]["start"] / 1000, abs=2e-3)
    # the [pause 1s] after "...ninety steps." is silence in the chapter's audio
    counted = next(s for s in manifest["sentences"] if s["text"] == "Every evening he climbed the ninety steps.")
    audio, _ = sf.read(result.folder / manifest["chapters"][0]["file"], dtype="float32")
    gap = audio[int((counted["end_s"] + 0.05) * rate):int((counted["end_s"] + 0.95) * rate)]
    assert gap.size and np.abs(gap).max() < 1e-3
    spans = [(s["start_s"], s["end_s"]) for s in manifest["sentences"]]
    assert all(a < b <= c for (a, b), (c, _) in zip(spans, spans[1:]))

    # The manifest is a typed record with a schema; one written before it had one (schema 1) loads
    # with everything it said, and one from a newer voxmith is refused in words.
    from voxmith.studio.book import load_book
    from voxmith.studio.book_manifest import BOOK_SCHEMA_VERSION

    assert manifest["schema"] == BOOK_SCHEMA_VERSION and result.record.to_json() == manifest
    old = {k: v for k, v in manifest.items() if k != "schema"}
    (result.folder / "manifest.json").write_text(json.dumps(old))
    loaded = load_book(result.folder)
    assert loaded.record.schema == 1 and loaded.record.seed == manifest["seed"]
    assert loaded.record.chapters[0].title == "The Keeper of Gull Rock" and loaded.book_path == result.book_path
    assert {k: v for k, v in loaded.manifest.items() if k != "schema"} == old
    (result.folder / "manifest.json").write_text(json.dumps({**manifest, "schema": BOOK_SCHEMA_VERSION + 1}))
    with pytest.raises(VoxmithError, match="newer voxmith"):
        load_book(result.folder)


def test_interrupted_book_resumes_to_the_same_audio_and_redo_rebuilds_one_chapter(tmp_path, tone_engine,
                                                                                  monkeypatch):
    studio = _studio(tmp_path / "ws")
    reference = studio.book(_request(tmp_path / "reference", audio_format="wav"))

    _interrupted(studio, _request(tmp_path / "book", audio_format="wav"), 5, monkeypatch)
    events = []
    result = studio.book(_request(tmp_path / "book", audio_format="wav"), progress=events.append)
    total = len(reference.manifest["sentences"])
    assert any(e.stage == f"resuming: 5 of {total} sentences already done" for e in events)
    assert np.array_equal(sf.read(result.book_path)[0], sf.read(reference.book_path)[0])
    assert (result.folder / "book.cue").read_text().count("TRACK") == 4

    chapter_files = {c["number"]: result.folder / c["file"] for c in result.manifest["chapters"]}
    before = {n: (p.stat().st_mtime_ns, p.read_bytes()) for n, p in chapter_files.items()}
    redone = studio.book(_request(tmp_path / "book", audio_format="wav"), redo="c02-s0002")
    sentence = next(s for s in redone.manifest["sentences"] if s["id"] == "c02-s0002")
    assert sentence["redo"] == 1 and sentence["seed"] != next(
        s for s in reference.manifest["sentences"] if s["id"] == "c02-s0002")["seed"]
    after = {n: (p.stat().st_mtime_ns, p.read_bytes()) for n, p in chapter_files.items()}
    assert [n for n in before if before[n] != after[n]] == [2]  # only its chapter was rebuilt
    with pytest.raises(VoxmithError, match="no sentence 'c09-s0001'"):
        studio.book(_request(tmp_path / "book", audio_format="wav"), redo="c09-s0001")
    with pytest.raises(VoxmithError, match="other settings"):
        studio.book(_request(tmp_path / "book", audio_format="wav", candidates=2))


def test_sentences_that_fail_ranking_are_listed_for_review(tmp_path, tone_engine):
    """The tone engine says no words, so Whisper hears none: every sentence fails after its retries."""
    book = tmp_path / "short.txt"
    book.write_text("Chapter 1\n\nOne short line.\n", encoding="utf-8")
    studio = _studio(tmp_path / "ws")
    request = _request(tmp_path / "book", source=book, rank=True, audio_format="mp3")
    request.ranking = type(request.ranking)(regenerate_limit=1)
    result = studio.book(request)
    assert result.review == ["c01-s0001", "c01-s0002"]
    assert result.manifest["sentences"][0]["takes"] == 2  # the take and its one retry
    assert result.book_path.suffix == ".mp3"


class _HeardByLength:
    """Whisper stand-in: what it 'hears' depends on the audio's length (the tone engine says 0.2 s per
    word): short pieces of a sentence heard alone are misheard, as real Whisper does with a few words."""

    def __init__(self, script):
        self.script, self.heard = script, []

    def transcribe(self, samples, sample_rate_hz, **kwargs):
        seconds = len(samples) / sample_rate_hz
        text = self.script[min(self.script, key=lambda s: abs(s - seconds))]
        self.heard.append((round(seconds, 2), text))
        return SimpleNamespace(text=text)


def test_pieces_cut_by_a_pause_mark_are_judged_as_one_sentence(tmp_path, tone_engine, monkeypatch):
    # Before: "The keeper waited [pause 1s] and then ..." left "The keeper waited" alone, which Whisper
    # misheard, so it was on the review list every time.
    book = tmp_path / "cut.txt"
    book.write_text("The keeper waited [pause 1s] and then he climbed the stairs. The lamp was lit.\n\n"
                    "He slept well [pause 1s] until dawn.\n", encoding="utf-8")
    cut = [(s.text, s.continues) for s in parse_book("Wait [pause 1s] here. Done. [pause 1s] New [pause 2s]\n\nNext.",
                                                      False, PauseSettings())[0].sentences]
    assert cut == [("Wait", True), ("here.", False), ("Done.", False), ("New", False), ("Next.", False)]
    heard = _HeardByLength({
        0.6: "",  # "The keeper waited" / "He slept well" alone: nothing heard
        1.2: "and then he climbed the stairs",
        2.1: "The keeper waited and then he climbed the stairs.",  # the first sentence joined: right
        0.8: "The lamp was lost",  # an uncut sentence misheard: stays on the review list
        0.4: "until dawn",
        1.3: "He slipped until dawn",  # the second sentence joined: a word missing, stays for review
    })
    monkeypatch.setattr(voxmith.asr, "get_transcriber", lambda *a, **k: heard)
    studio = _studio(tmp_path / "ws")
    request = _request(tmp_path / "book", source=book, rank=True, audio_format="wav")
    request.ranking = RankingSettings(regenerate_limit=0, min_naturalness=0.0)
    result = studio.book(request)
    assert result.review == ["c01-s0003", "c01-s0004"]
    sentences = {s["id"]: s for s in result.manifest["sentences"]}
    first = sentences["c01-s0001"]
    assert first["status"] == "ok" and first["joined"]["alone"] == "review"
    assert first["joined"]["with"] == ["c01-s0001", "c01-s0002"] and first["joined"]["refused"] is None
    assert first["joined"]["transcript"] == "The keeper waited and then he climbed the stairs."
    assert sentences["c01-s0004"]["joined"]["refused"].startswith("skips")
    assert sentences["c01-s0005"]["status"] == "ok" and "joined" not in sentences["c01-s0003"]
    # Resumed: nothing is heard again; a redo of one piece judges its sentence again.
    count = len(heard.heard)
    assert studio.book(request).review == ["c01-s0003", "c01-s0004"] and len(heard.heard) == count
    redone = studio.book(request, redo="c01-s0002")
    assert redone.review == ["c01-s0003", "c01-s0004"] and len(heard.heard) == count + 2  # the piece, then joined
    assert {s["id"]: s for s in redone.manifest["sentences"]}["c01-s0001"]["joined"]["takes"][1] == [0, 1]


def test_a_short_sentence_is_judged_with_its_neighbour_and_still_refused_when_said_wrong(tmp_path, tone_engine,
                                                                                        monkeypatch):
    # Before: a chapter title such as "Two." heard alone ("Tim.") was on the review list however the
    # voice said it. Now it is heard again with the next sentence (the previous one when it is last);
    # its own words must still be right in that transcript, whatever the neighbour's length.
    book = tmp_path / "short.txt"
    book.write_text("Two.\n\nThe keeper climbed up.\n\nHe slept well until the sun rose. Yes.\n", encoding="utf-8")
    heard = _HeardByLength({
        0.2: "Tim.",  # "Two." and "Yes." alone
        0.8: "The keeper climbed up.",
        1.3: "Two. The keeper climbed up.",  # "Two." with the next sentence: right
        1.4: "He slept well until the sun rose.",
        1.9: "He slept well until the sun rose. Yet.",  # "Yes." said wrong: 1 error in 8 words
    })
    monkeypatch.setattr(voxmith.asr, "get_transcriber", lambda *a, **k: heard)
    studio = _studio(tmp_path / "ws")
    request = _request(tmp_path / "book", source=book, rank=True, audio_format="wav")
    request.ranking = RankingSettings(regenerate_limit=0, min_naturalness=0.0)
    result = studio.book(request)
    assert result.review == ["c01-s0004"]
    sentences = {s["id"]: s for s in result.manifest["sentences"]}
    title = sentences["c01-s0001"]
    assert title["status"] == "ok" and title["joined"]["alone"] == "review" and title["joined"]["refused"] is None
    assert title["joined"]["with"] == ["c01-s0001", "c01-s0002"]
    assert title["joined"]["transcript"] == "Two. The keeper climbed up."
    assert "joined" not in sentences["c01-s0002"]  # its neighbour's own verdict is its own
    last = sentences["c01-s0004"]
    assert last["joined"]["with"] == ["c01-s0003", "c01-s0004"]
    # the joined sentence's error rate (1/8) is within the limit, but "Yes." itself was misheard
    assert last["joined"]["wer"] < request.ranking.max_wer
    assert last["joined"]["refused"] == "word error rate 100% above 15% in 'Yes.'"
    # A redo of the neighbour judges the short sentence again with the new take.
    count = len(heard.heard)
    assert studio.book(request).review == ["c01-s0004"] and len(heard.heard) == count
    redone = studio.book(request, redo="c01-s0002")
    assert redone.review == ["c01-s0004"] and len(heard.heard) == count + 2
    assert {s["id"]: s for s in redone.manifest["sentences"]}["c01-s0001"]["joined"]["takes"][1] == [0, 1]


def test_a_short_sentence_said_right_does_not_use_its_retries_and_one_said_wrong_does(tmp_path, tone_engine,
                                                                                     monkeypatch):
    # Before: "Two." heard alone as "Tim." was made again up to --retries times, every take said
    # right, before the joined check cleared it. Now its neighbour is made first and a take that
    # passes heard with it is kept; "Yes." said wrong still gets its retries (and stays for review).
    book = tmp_path / "short.txt"
    book.write_text("Two.\n\nThe keeper climbed up.\n\nHe slept well until the sun rose. Yes.\n", encoding="utf-8")
    heard = _HeardByLength({0.2: "Tim.", 0.8: "The keeper climbed up.", 1.3: "Two. The keeper climbed up.",
                            1.4: "He slept well until the sun rose.", 1.9: "He slept well until the sun rose. Yet."})
    monkeypatch.setattr(voxmith.asr, "get_transcriber", lambda *a, **k: heard)
    made = []
    original = Speaker.speak_sentence

    def counted(self, text, seed, **kwargs):
        made.append(text)
        return original(self, text, seed, **kwargs)

    monkeypatch.setattr(Speaker, "speak_sentence", counted)
    studio = _studio(tmp_path / "ws")
    request = _request(tmp_path / "book", source=book, rank=True, audio_format="wav")
    request.ranking = RankingSettings(regenerate_limit=2, min_naturalness=0.0)
    result = studio.book(request)
    assert made[:2] == ["The keeper climbed up.", "Two."]  # the neighbour first
    sentences = {s["id"]: s for s in result.manifest["sentences"]}
    assert sentences["c01-s0001"]["takes"] == 1 and sentences["c01-s0001"]["status"] == "ok"
    assert sentences["c01-s0004"]["takes"] == 3 and result.review == ["c01-s0004"]


def test_short_sentences_in_a_row_are_each_heard_with_the_next(tmp_path, tone_engine, monkeypatch):
    # "Two." waits for "Yes.", which waits for the sentence after it: each is made after its neighbour.
    book = tmp_path / "short.txt"
    book.write_text("Two.\n\nYes.\n\nThe keeper climbed up.\n", encoding="utf-8")
    heard = _HeardByLength({0.2: "Tim.", 0.7: "Two. Yes.", 0.8: "The keeper climbed up.",
                            1.3: "Yes. The keeper climbed up."})
    monkeypatch.setattr(voxmith.asr, "get_transcriber", lambda *a, **k: heard)
    studio = _studio(tmp_path / "ws")
    request = _request(tmp_path / "book", source=book, rank=True, audio_format="wav")
    request.ranking = RankingSettings(regenerate_limit=1, min_naturalness=0.0)
    result = studio.book(request)
    assert result.review == []
    assert [s["takes"] for s in result.manifest["sentences"]] == [1, 1, 1]
    # two short sentences alone, each the other's neighbour: one is made first, with its own retries
    book.write_text("Two.\n\nYes.\n", encoding="utf-8")
    result = studio.book(_request(tmp_path / "ring", source=book, rank=True, audio_format="wav",
                                  ranking=RankingSettings(regenerate_limit=1, min_naturalness=0.0)))
    assert result.review == [] and sorted(s["takes"] for s in result.manifest["sentences"]) == [1, 2]


def test_a_long_run_of_short_sentences_is_ordered_without_recursion():
    # Before: one recursive call per short sentence in a row: 1100 "Yes." lines raised RecursionError.
    def order(text, first=0, ranked=True):
        sentences = parse_book(text, False, PauseSettings())[0].sentences
        maker = SimpleNamespace(short_joins=short_joins(sentences),
                                speaker=SimpleNamespace(transcriber=object() if ranked else None))
        return [s.text for s in BookMaker._reading_order(maker, sentences[first])]

    lines = [f"Line {i}." for i in range(3000)] + ["The keeper climbed up the long stair."]
    assert order("\n\n".join(lines)) == lines[::-1]  # each waits for the next, the long one first
    assert order("\n\n".join(lines), ranked=False) == ["Line 0."]  # unranked: in order
    # the previous one is the neighbour of a short last sentence; already placed ones are not repeated
    assert order("Two.\n\nYes.\n\nThe keeper climbed up.\n\nDone.", first=0) == \
        ["The keeper climbed up.", "Yes.", "Two."]
    assert order("The keeper climbed up.\n\nDone.", first=1) == ["The keeper climbed up.", "Done."]
    assert order("Two.\n\nYes.", first=0) == ["Yes.", "Two."]  # a ring: each placed once


def test_which_sentences_are_heard_joined():
    chapter = parse_book("Two. [pause 1s]\n\nThe keeper waited [pause 1s] and then he climbed. Done. It rained hard.\n\n"
                         "All night long it rained. Yes.", False, PauseSettings())[0].sentences
    found = [([s.text for s in j.sentences], j.own) for j in joins(chapter)]
    assert found == [(["The keeper waited", "and then he climbed."], None),
                     (["Two.", "The keeper waited", "and then he climbed."], 0),  # a cut neighbour comes whole
                     (["Done.", "It rained hard."], 0), (["All night long it rained.", "Yes."], 1)]
    assert joins(parse_book("Alone.", False, PauseSettings())[0].sentences) == []  # no neighbour


def test_word_errors_are_shared_out_to_the_texts_said():
    title, rest = word_errors_by_part(["Two.", "The lamp was lit."], "Tim. The lamp was lit.")
    assert (title.wer, title.substitutions, rest.wer) == (1.0, 1, 0.0)
    title, rest = word_errors_by_part(["Two.", "The lamp was lit."], "two uh the lamp was lit")
    assert title.insertions == rest.insertions == 1  # heard between them: counts against both
    title, rest = word_errors_by_part(["Two.", "The lamp was lit."], "")
    assert (title.deletions, rest.deletions) == (1, 4)
    assert [e.wer for e in word_errors_by_part(["Chapter 12.", "It rained."], "chapter twelve it rained")] == [0, 0]


def test_the_cli_shows_what_was_heard_in_each_sentence_to_review(tmp_path, tone_engine, monkeypatch):
    # Before: "2 sentence(s) to review (still missing words after the retries): c01-s0003, ..." (the
    # reason may be other words, not missing ones, and the user had to open the manifest to see them).
    book = tmp_path / "lamp.txt"
    book.write_text("The lamp was lit. The keeper slept.\n", encoding="utf-8")
    heard = _HeardByLength({0.8: "The lamp was lost", 0.6: "The keeper slept."})
    monkeypatch.setattr(voxmith.asr, "get_transcriber", lambda *a, **k: heard)

    # DistillMOS stand-in (the real one takes seconds to load): the second sentence, heard right,
    # sounds broken. Before, it was listed as 'heard as "The keeper slept."', as if words were wrong.
    mos = SimpleNamespace(score=lambda samples, rate: 1.1 if len(samples) / rate < 0.7 else 3.5)
    monkeypatch.setattr(voxmith.quality, "get_naturalness_model", lambda: mos)
    studio = _studio(tmp_path / "ws")
    result = CliRunner().invoke(cli, ["--home", str(studio.workspace.home), "-q", "book", "-v", "demo", "-e", "tone",
                                      "--retries", "0", "--format", "wav", str(book)])
    assert result.exit_code == 0, result.output
    assert "2 sentence(s) to review" in result.output and "Whisper still heard" not in result.output
    assert 'c01-s0001: "The lamp was lit." heard as "The lamp was lost" (word error rate' in result.output
    assert 'c01-s0002: "The keeper slept." naturalness 1.10 below the floor 1.30' in result.output


def test_only_a_failure_on_words_is_judged_again_joined():
    settings = RankingSettings()
    words = TakeScores(0.7, 0.5, 1, 0, "the", 0.2, naturalness=3.5)
    assert fails_on_words_only(words, settings)
    assert not fails_on_words_only(dataclasses.replace(words, naturalness=1.0), settings)  # broken audio
    assert not fails_on_words_only(dataclasses.replace(words, wer=0.0, deletions=0), settings)  # passes


def test_cli_book_and_epub(tmp_path, tone_engine):
    ebooklib = pytest.importorskip("ebooklib")
    from ebooklib import epub

    book = epub.EpubBook()
    book.set_identifier("voxmith-test")
    book.set_title("Two Days")
    book.set_language("en")
    days = []
    for k, (title, text) in enumerate([("Monday", "It rained all day. Nobody went out."),
                                       ("Tuesday", "The sun came back. Everyone went out.")], 1):
        page = epub.EpubHtml(title=title, file_name=f"day{k}.xhtml", lang="en")
        page.content = f"<html><body><h1>{title}</h1><p>{text}</p></body></html>"
        book.add_item(page)
        days.append(page)
    book.toc = days
    book.spine = days
    book.add_item(epub.EpubNcx())
    book.add_item(epub.EpubNav())
    path = tmp_path / "two-days.epub"
    epub.write_epub(str(path), book)
    assert ebooklib.ITEM_DOCUMENT

    home = tmp_path / "ws"
    _studio(home)
    ran = CliRunner().invoke(cli, ["--home", str(home), "-q", "book", "-v", "demo", "-e", "tone", "--no-rank",
                                   "--seed", "1", str(path)])
    assert ran.exit_code == 0, ran.output
    folder = home / "results" / "demo" / "two-days-book"
    manifest = json.loads((folder / "manifest.json").read_text())
    assert [c["title"] for c in manifest["chapters"]] == ["Monday", "Tuesday"]
    assert manifest["sentences"][1]["text"] == "It rained all day."
    assert str(folder / "book.m4b") in ran.output
    shutil.rmtree(folder / "chapters")
    again = CliRunner().invoke(cli, ["--home", str(home), "book", "-v", "demo", "-e", "tone", "--no-rank",
                                     "--seed", "1", str(path)])
    assert again.exit_code == 0 and "resuming: 6 of 6 sentences already done" in again.output


def test_an_epub_that_unpacks_to_too_much_is_refused_unread(tmp_path, monkeypatch):
    """A zip bomb (a small file that unpacks to far more) is refused from its zip directory, before
    ebooklib unpacks it into memory; a file that is no zip at all gets a clear error too."""
    import zipfile

    from voxmith.studio import book as book_module
    from voxmith.studio.book import read_chapters

    path = tmp_path / "bomb.epub"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("mimetype", "application/epub+zip")
        archive.writestr("OEBPS/page.xhtml", " " * 4_000_000)  # 4 MB of spaces, a few KB packed
    assert path.stat().st_size < 100_000
    monkeypatch.setattr(book_module, "MAX_EPUB_UNPACKED_BYTES", 1_000_000)
    with pytest.raises(VoxmithError, match="unpacks to 4 MB") as refused:
        read_chapters(path, PauseSettings())
    assert "bomb.epub" in str(refused.value)
    broken = tmp_path / "broken.epub"
    broken.write_bytes(b"not a zip at all")
    with pytest.raises(VoxmithError, match="not a valid EPUB"):
        read_chapters(broken, PauseSettings())


def test_another_format_or_chapter_pause_rejoins_the_finished_sentences(tmp_path, tone_engine, monkeypatch):
    # Before: asking for the same book as mp3 (or with another chapter pause) was refused as "other
    # settings", and the HTTP API, which has no -o, could only delete the folder and read it again.
    studio = _studio(tmp_path / "ws")
    first = studio.book(_request(tmp_path / "book", audio_format="wav"))
    stamps = {p.name: p.stat().st_mtime_ns for p in (first.folder / "sentences").iterdir()}

    def no_synthesis(*args, **kwargs):
        raise AssertionError("a finished sentence was made again")

    monkeypatch.setattr(Speaker, "speak_sentence", no_synthesis)
    again = studio.book(_request(tmp_path / "book", audio_format="mp3",
                                 pauses=PauseSettings(chapter_pause_s=4.0)))
    assert again.book_path.name == "book.mp3" and again.book_path.exists()
    assert {p.name: p.stat().st_mtime_ns for p in (first.folder / "sentences").iterdir()} == stamps
    assert again.record.seed == first.record.seed
    chapters = json.loads((again.folder / "chapters.json").read_text())
    assert all(c["file"].endswith(".mp3") and (again.folder / c["file"]).exists() for c in chapters)
    gaps = [b["start_s"] - a["end_s"] for a, b in zip(chapters, chapters[1:])]
    assert gaps == pytest.approx([4.0] * len(gaps), abs=2e-3)
    # what the sentences sound like still counts: other sentence pauses are refused
    with pytest.raises(VoxmithError, match="other settings \\(pauses\\)"):
        studio.book(_request(tmp_path / "book", audio_format="mp3", pauses=PauseSettings(sentence_pause_s=0.5)))


def test_a_book_started_under_a_voice_folder_spelt_the_other_way_resumes_there(tmp_path, tone_engine):
    """A book begun before names had one Unicode spelling lives in results/<'Zoe' + U+0308>/ and its
    book.json names the voice (and run) that way. It was started again from scratch in a new
    results/<'Zo' + U+00EB>/ folder, and, found, was refused as "made with other settings"."""
    nfc, nfd = "Zo\u00eb", "Zoe\u0308"
    studio = Studio(tmp_path / "ws", device="cpu")
    studio.import_demo_voice(nfc)
    (studio.workspace.voices_dir / nfc).rename(studio.workspace.voices_dir / nfd)  # as an older voxmith made it
    book = tmp_path / "tale.txt"
    book.write_text("Chapter 1\n\nOnce upon a time. The end.\n", encoding="utf-8")
    first = studio.book(BookRequest(source=book, voice=nfd, engine="tone", seed=3, rank=False, audio_format="wav"))
    results = studio.workspace.results_dir
    (results / nfc).rename(results / nfd)  # as an older voxmith named it
    folder = results / nfd / first.folder.name
    state = json.loads((folder / "book.json").read_text())
    state["settings"]["voice"]["name"] = nfd  # as the older voxmith recorded it
    state["settings"]["finetune"] = {"run": "Ren\u00e9e", "step": 10}
    (folder / "book.json").write_text(json.dumps(state))
    from voxmith.studio.book import _comparable
    now = {**state["settings"], "voice": {**state["settings"]["voice"], "name": nfc},
           "finetune": {"run": "Rene\u0301e", "step": 10, "checkpoint": "latest"}}
    assert _comparable(state["settings"]) == _comparable(now)
    del state["settings"]["finetune"]
    (folder / "book.json").write_text(json.dumps(state))
    events = []
    again = studio.book(BookRequest(source=book, voice=nfc, engine="tone", seed=3, rank=False, audio_format="wav"),
                        progress=events.append)
    assert again.folder == folder and any(e.stage.startswith("resuming") for e in events)
    assert [p.name for p in results.iterdir()] == [nfd]


def test_a_book_started_before_a_setting_changed_the_audio_goes_on_as_it_was_made(tmp_path, tone_engine,
                                                                                 monkeypatch):
    """A setting added without a new engine version whose default changes the audio (piper-vc's
    draws) names, in EARLIER_VALUES, what results before it were made at: a book whose book.json
    predates it resumes at that value, and only a request setting it otherwise is refused."""
    studio = _studio(tmp_path / "ws")
    as_made = {"pitch_scale": 2.0}  # what the engine did before the setting existed
    reference = studio.book(_request(tmp_path / "reference", audio_format="wav", settings=as_made))
    _interrupted(studio, _request(tmp_path / "book", audio_format="wav", settings=as_made), 3, monkeypatch)
    state = json.loads((tmp_path / "book" / "book.json").read_text())
    del state["settings"]["settings"]["pitch_scale"]  # as a voxmith before the setting recorded it
    (tmp_path / "book" / "book.json").write_text(json.dumps(state))
    monkeypatch.setattr(tone_engine.settings_class, "EARLIER_VALUES", as_made)
    with pytest.raises(VoxmithError, match="other settings \\(settings\\)"):
        studio.book(_request(tmp_path / "book", audio_format="wav", settings={"pitch_scale": 1.0}))
    result = studio.book(_request(tmp_path / "book", audio_format="wav"))
    assert np.array_equal(sf.read(result.book_path)[0], sf.read(reference.book_path)[0])


def test_a_book_recorded_before_an_engine_setting_existed_resumes_while_it_is_at_its_default(tmp_path, tone_engine):
    """A setting added to an engine since a book was started (piper-vc's phone_mix, say) is missing
    from its book.json: left at its default it changes nothing, so the book resumes; set to
    something else, the book is refused as made with other settings."""
    studio = Studio(tmp_path / "ws", device="cpu")
    studio.import_demo_voice("demo")
    book = tmp_path / "tale.txt"
    book.write_text("Chapter 1\n\nOnce upon a time. The end.\n", encoding="utf-8")
    first = studio.book(BookRequest(source=book, voice="demo", engine="tone", seed=3, rank=False, audio_format="wav"))
    state = json.loads((first.folder / "book.json").read_text())
    del state["settings"]["settings"]["repeats"]  # as a voxmith before the setting recorded it
    (first.folder / "book.json").write_text(json.dumps(state))
    events = []
    again = studio.book(BookRequest(source=book, voice="demo", engine="tone", seed=3, rank=False, audio_format="wav"),
                        progress=events.append)
    assert again.folder == first.folder and any(e.stage.startswith("resuming") for e in events)
    with pytest.raises(VoxmithError, match="other settings \\(settings\\)"):
        studio.book(BookRequest(source=book, voice="demo", engine="tone", seed=3, rank=False, audio_format="wav",
                                settings={"repeats": 2}))
