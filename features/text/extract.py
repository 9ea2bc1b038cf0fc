"""Tier 1 for a batch of texts: normalise, detect the language, find PII, match patterns, score gibberish.

Everything here is microseconds per text and needs no model. The result also carries
``embed_input``: the redacted text with digits masked, which is what tier 2 embeds
(USE is sensitive to numbers, and PII must not shape the clusters).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import pairwise

from features.text.normalize import Normalized, detect_language, normalize_text
from features.text.patterns import PatternHit, PatternMatcher
from features.text.pii import PiiSpan, find_pii, redact

__all__ = ["Extraction", "TextExtractor", "gibberish_score", "pattern_confidences"]

_WORDS = re.compile(r"[a-z]+")
_VOWELS = "aeiouy"
_KEYBOARD = ("qwert", "werty", "asdf", "sdfg", "dfgh", "fghj", "ghjk", "hjkl", "zxcv", "xcvb", "cvbn", "uiop", "yxcv")
_KEYBOARD_RE = re.compile("|".join(_KEYBOARD))
#: Letter groups that spell one sound in the covered languages (German "sch", Polish
#: "szcz" = "sz"+"cz", English "gh"...): each counts as one consonant ("#") in a run.
_CLUSTERS = re.compile(r"sch|ch|sh|th|ph|gh|ck|ng|sz|cz|rz|dz")
_CONSONANT_RUN = re.compile(r"[bcdfghjklmnpqrstvwxz#]{5,}")
#: Consonant pairs that real words and compounds chain into long runs ("Marktstraße":
#: rk kt ts st tr; "Hirschsprung", "Pszczyńska", "Knightsbridge"). A run of five or
#: more consonants is keyboard mash when two of its pairs are not among these
#: ("fjdksl": fj jd dk), or when it is longer than any compound (eight).
_COMMON_PAIRS = frozenset((
    "st", "tr", "nd", "nt", "ns", "rs", "rt", "rk", "kt", "ts", "ld", "lt", "lk", "rn", "rm", "rd", "rg",
    "rb", "rl", "rp", "rf", "nk", "nc", "nf", "mp", "mb", "mm", "nn", "ll", "ss", "tt", "pp", "ff", "rr",
    "pr", "pl", "br", "bl", "kr", "kl", "gr", "gl", "dr", "fr", "fl", "cr", "cl", "sp", "sk", "sl", "sm",
    "sn", "sw", "tw", "dw", "kw", "wr", "zw", "ps", "pt", "ft", "fs", "ds", "gs", "ks", "ls", "ms", "bs",
    "hr", "ht", "hn", "hl", "hm", "hs", "dl", "dn", "gd", "mn", "wn", "ln", "vn", "ml", "sc", "tl", "nz",
    "rz", "lz", "tz", "lf", "lm", "lp", "lv", "rv", "nv", "gn", "kn", "pn",
))
_REPEAT = re.compile(r"(.)\1{4,}")
_DIGITS = re.compile(r"\d")


@dataclass(frozen=True, slots=True)
class Extraction:
    text: str
    normalized: Normalized
    language: str
    pii: tuple[PiiSpan, ...]
    hits: tuple[PatternHit, ...]
    gibberish: float
    redacted: str
    embed_input: str
    empty: bool = False
    #: Strongest pattern confidence per label (tier 1's own opinion).
    pattern_labels: dict[str, float] = field(default_factory=dict)


def _mash_run(word: str) -> bool:
    """A consonant run no language writes (see ``_COMMON_PAIRS``)."""
    if _CONSONANT_RUN.search(word) is None:
        return False  # collapsing digraphs only shortens runs
    for m in _CONSONANT_RUN.finditer(_CLUSTERS.sub("#", word)):
        run = m.group()
        if len(run) >= 8:
            return True
        odd = sum(1 for a, b in pairwise(run) if "#" not in (a, b) and a + b not in _COMMON_PAIRS)
        if odd >= 2:
            return True
    return False


def _bad_word(word: str) -> bool:
    """A word (of four letters or more) that reads as mash: few vowels, an odd consonant
    run, too long, a keyboard row, or one or two letters repeated."""
    n = len(word)
    vowels = sum(map(word.count, _VOWELS))
    return (
        vowels == 0
        or vowels / n < 0.15
        or _mash_run(word)
        or n > 24
        or _KEYBOARD_RE.search(word) is not None
        or (n >= 6 and len(set(word)) <= 2)
    )


#: Word -> :func:`_bad_word`, for the words seen lately (real text repeats its words).
_BAD_WORDS: dict[str, bool] = {}
_BAD_WORDS_MAX = 100_000


def gibberish_score(folded: str) -> float:
    """0..1: how much of the text reads as keyboard mash or random letters.

    Only Latin letters are judged by shape (vowels, consonant runs, keyboard rows);
    other scripts only by long repeats, so an Arabic or Chinese note is never called
    gibberish for being unfamiliar.
    """
    stripped = folded.strip()
    if len(stripped) < 4:
        return 0.0
    if not any(map(str.isalpha, stripped)):
        # Only symbols and digits: "....", "1234567": no message at all.
        return 0.7 if len(set(stripped)) <= 3 or not _DIGITS.search(stripped) else 0.3
    junk = 0
    total = 0
    for word in _WORDS.findall(stripped):
        n = len(word)
        if n < 4:
            continue
        total += n
        bad = _BAD_WORDS.get(word)
        if bad is None:
            bad = _bad_word(word)
            if len(_BAD_WORDS) >= _BAD_WORDS_MAX:
                _BAD_WORDS.clear()
            _BAD_WORDS[word] = bad
        if bad:
            junk += n
    score = junk / total if total else 0.0
    if _REPEAT.search(stripped):
        score = max(score, 0.6)
    # One odd word among real ones is an SKU or a name, not gibberish.
    if total < 8 and score < 1.0:
        score *= 0.5
    return round(min(score, 1.0), 4)


def pattern_confidences(hits: Sequence[PatternHit]) -> dict[str, float]:
    """Label -> confidence from the hits: strongest hit, raised a little by each further one."""
    out: dict[str, float] = {}
    for h in hits:
        prev = out.get(h.label)
        if prev is None:
            out[h.label] = h.confidence
        else:
            # Independent cues for the same label add up (noisy-or, damped).
            out[h.label] = round(1.0 - (1.0 - max(prev, h.confidence)) * (1.0 - 0.5 * min(prev, h.confidence)), 4)
    return out


class TextExtractor:
    """Tier-1 extraction for batches; build once (spaCy pipelines), share between threads."""

    def __init__(self, *, matcher: PatternMatcher | None = None, max_chars: int = 4000) -> None:
        self.matcher = matcher or PatternMatcher()
        self.max_chars = max_chars

    def extract(self, texts: Sequence[str | None]) -> list[Extraction]:
        cut = [(t or "")[: self.max_chars] for t in texts]
        norms = [normalize_text(t) for t in cut]
        live = [i for i, n in enumerate(norms) if n.text.strip()]
        hits_live = self.matcher.match_normalized([norms[i] for i in live]) if live else []
        hits: list[list[PatternHit]] = [[] for _ in cut]
        for i, h in zip(live, hits_live, strict=True):
            hits[i] = h
        out: list[Extraction] = []
        for i, text in enumerate(cut):
            norm = norms[i]
            if not norm.text.strip():
                out.append(Extraction(text, norm, "und", (), (), 0.0, "", "", empty=True))
                continue
            pii = find_pii(text)
            red = redact(text, spans=pii)
            gib = gibberish_score(norm.text)
            labels = pattern_confidences(hits[i])
            if gib >= 0.5:
                labels["gibberish"] = max(labels.get("gibberish", 0.0), round(min(0.95, 0.45 + gib / 2), 4))
            out.append(
                Extraction(
                    text=text,
                    normalized=norm,
                    language=detect_language(text),
                    pii=tuple(pii),
                    hits=tuple(hits[i]),
                    gibberish=gib,
                    redacted=red,
                    embed_input=_DIGITS.sub("0", red),
                    pattern_labels=labels,
                )
            )
        return out
