"""Does the chosen engine speak the text's language? Refuse text it cannot say at all; warn,
naming the words, when some of it will be skipped or read with the wrong rules.

The guess itself is `voxmith.text.language` (scripts, plus a German hint for Latin text); the
decision is here because it needs the engines' declared `languages`.
"""

from __future__ import annotations

from typing import Callable, Dict, List, Sequence, Tuple

from voxmith.errors import VoxmithError
from voxmith.text.language import LATIN_SCRIPT_LANGUAGES, TextLanguages, detect_languages, language_name

MAX_WORDS_QUOTED = 6


def _quoted(words: Sequence[str]) -> str:
    shown = ", ".join(f"'{w}'" for w in list(dict.fromkeys(words))[:MAX_WORDS_QUOTED])
    more = len(set(words)) - MAX_WORDS_QUOTED
    return shown + (f" and {more} more" if more > 0 else "")


def _speakers_of(language: str, engine_languages: Dict[str, Tuple[str, ...]]) -> str:
    names = [name for name, langs in engine_languages.items() if language in langs]
    if names:
        # Said by every shell: the CLI's option, and what the HTTP API and web UI call it.
        others = f" (or {', '.join(names[1:])})" if names[1:] else ""
        return f"Use the {names[0]} engine{others}: --engine {names[0]}, or engine/model '{names[0]}' over HTTP."
    return f"No installed engine speaks {language_name(language)} yet."


def check_text_language(text: str, engine_name: str, spoken: Tuple[str, ...],
                        engine_languages: Callable[[], Dict[str, Tuple[str, ...]]]) -> List[str]:
    """Warnings for `text` spoken by `engine_name` (which speaks `spoken`); raises `VoxmithError`
    when the engine cannot say the text's main language. `engine_languages()` lists every
    installed engine's languages (called only to suggest another engine)."""
    found: TextLanguages = detect_languages(text)
    spoken_names = " and ".join(language_name(code) for code in spoken)
    foreign = [lang for lang in found.languages if lang not in spoken]
    if not foreign:
        return []
    main = found.main
    # Latin text the engine cannot speak properly it can still pronounce (warned below); other scripts it cannot.
    readable = main in LATIN_SCRIPT_LANGUAGES and any(code in LATIN_SCRIPT_LANGUAGES for code in spoken)
    if main not in spoken and not readable:
        raise VoxmithError(
            f"This text is {language_name(main)} ({_quoted(found.words[main])}), but the {engine_name} "
            f"engine speaks only {spoken_names}. {_speakers_of(main, engine_languages())}")
    warnings = []
    for lang in foreign:
        words = found.words[lang]
        if lang in LATIN_SCRIPT_LANGUAGES:
            hints = ", ".join(f"'{h}'" for h in found.german_hints)
            warnings.append(
                f"This text looks {language_name(lang)} ({hints}); the {engine_name} engine speaks only {spoken_names} and will "
                f"read it with {spoken_names} pronunciation. {_speakers_of(lang, engine_languages())}")
        else:
            warnings.append(
                f"{len(words)} word(s) in {language_name(lang)} will not be spoken by the {engine_name} engine "
                f"(it speaks only {spoken_names}): {_quoted(words)}. {_speakers_of(lang, engine_languages())}")
    return warnings


def installed_engine_languages() -> Dict[str, Tuple[str, ...]]:
    """Every installed engine's declared languages (engines that fail to load are left out)."""
    from voxmith.engines import available_engines, engine_class
    from voxmith.errors import EngineError

    languages = {}
    for name in available_engines():
        try:
            languages[name] = tuple(engine_class(name).languages)
        except EngineError:
            continue
    return languages
