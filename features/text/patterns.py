"""Tier-1 pattern matching with spaCy: ``blank("xx")`` for every text, ``blank("zh")`` for Han.

Every phrase goes to a ``PhraseMatcher`` (a trie: cost does not grow with the number of
phrases); a pattern with gaps ("ignore * instructions") is matched as its segments
chained in order with a bounded gap, which a ``Matcher`` with ``{0,n}`` wildcards would
do too but at a cost growing with every pattern on every token. A ``Matcher`` finds URLs. All languages'
patterns run on every text, so a mis-detected language cannot hide a phrase; Chinese
patterns run on the character tokens of ``blank("zh")`` only for texts with Han
characters. Offsets of hits refer to the original text.
"""

from __future__ import annotations

import itertools
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from features.text.normalize import Normalized, fold, normalize_text
from features.text.pattern_table import PATTERNS

__all__ = ["DEFAULT_CONFIDENCE", "PatternHit", "PatternMatcher", "has_han"]

DEFAULT_CONFIDENCE = 0.85
_GAP_TOKENS = {"zh": 6}
# Clitic prefixes (and, so, with, to, the...) that Arabic and Hebrew write attached.
_PREFIXES = {"ar": ("و", "ف", "ب", "ل", "ك", "وب", "ول"), "he": ("ו", "ש", "ב", "ל", "ה", "מ", "כ", "וב", "ול")}
# A URL in an order note or return reason is unusual enough to count, not to flag alone.
_URL_CONFIDENCE = 0.5


@dataclass(frozen=True, slots=True)
class PatternHit:
    label: str
    start: int
    end: int
    lang: str
    pattern_id: str
    confidence: float


_HAN = re.compile("[\u4e00-\u9fff\u3400-\u4dbf]")
# Cheap gate before asking spaCy which tokens look like URLs.
_URLISH = re.compile(r"https?:|www\.|\w\.(?:com|net|org|ly|io|ru|cn|xyz|info|biz|top|me|co|gl|to|click|link)\b")


def has_han(text: str) -> bool:
    return _HAN.search(text) is not None


def _parse(pattern: str) -> tuple[list[list[list[str]]], float]:
    """Pattern -> (segments of word slots of alternatives, confidence)."""
    confidence = DEFAULT_CONFIDENCE
    body = pattern.strip()
    if " @" in body:
        body, _, conf = body.rpartition(" @")
        confidence = float(conf)
    segments = [[word.split("|") for word in seg.split()] for seg in body.split(" * ")]
    return segments, confidence


def _expand(segments: list[list[list[str]]], *, lang: str) -> list[list[str]]:
    """Every combination of alternatives, as a list of segment strings."""
    joiner = "" if lang == "zh" else " "
    slots = [alts for seg in segments for alts in seg]
    if lang in _PREFIXES and slots:
        first = slots[0]
        slots[0] = first + [p + w for w in first for p in _PREFIXES[lang]]
    sizes = [len(seg) for seg in segments]
    out: list[list[str]] = []
    for combo in itertools.product(*slots):
        parts, pos = [], 0
        for n in sizes:
            parts.append(joiner.join(combo[pos : pos + n]))
            pos += n
        out.append(parts)
    return out


class PatternMatcher:
    """spaCy Matcher/PhraseMatcher over folded text; build once, share between threads (a lock
    serialises matching).

    Parameters
    ----------
    patterns:
        label -> language -> pattern strings (see ``features.text.pattern_table``).
    """

    def __init__(self, patterns: dict[str, dict[str, list[str]]] | None = None) -> None:
        import spacy
        from spacy.matcher import Matcher, PhraseMatcher

        table = PATTERNS if patterns is None else patterns
        self._nlp = {"xx": spacy.blank("xx"), "zh": spacy.blank("zh")}
        self._phrase = {k: PhraseMatcher(nlp.vocab, attr="ORTH") for k, nlp in self._nlp.items()}
        self._url = Matcher(self._nlp["xx"].vocab)
        self._url.add("spam_scam|url|0", [[{"LIKE_URL": True}]])
        # key -> (label, lang, confidence, number of segments, max gap in tokens)
        self._meta: dict[str, tuple[str, str, float, int, int]] = {}
        self._meta["spam_scam|url|0"] = ("spam_scam", "url", _URL_CONFIDENCE, 1, 0)
        self.n_patterns = 0
        for label, by_lang in table.items():
            for lang, items in by_lang.items():
                which = "zh" if lang == "zh" else "xx"
                nlp = self._nlp[which]
                for idx, raw in enumerate(items):
                    segments, conf = _parse(fold(raw))
                    key = f"{label}|{lang}|{idx}"
                    self._meta[key] = (label, lang, conf, len(segments), _GAP_TOKENS.get(lang, 3))
                    # A gap pattern "A * B" is matched as phrases A and B (tries, fast
                    # whatever their number) chained in order with a bounded gap.
                    by_segment: list[set[str]] = [set() for _ in segments]
                    for parts in _expand(segments, lang=lang):
                        for j, part in enumerate(parts):
                            by_segment[j].add(part)
                    for j, variants in enumerate(by_segment):
                        self._phrase[which].add(f"{key}#{j}", [nlp.make_doc(v) for v in sorted(variants)])
                        self.n_patterns += len(variants)
        self._lock = threading.Lock()
        self._strings = self._nlp["xx"].vocab.strings
        self._zh_strings = self._nlp["zh"].vocab.strings

    def match(self, texts: Sequence[str]) -> list[list[PatternHit]]:
        """Hits per text, in input order; offsets refer to each original text."""
        norms = [normalize_text(t) for t in texts]
        return self.match_normalized(norms)

    def match_normalized(self, norms: Sequence[Normalized]) -> list[list[PatternHit]]:
        # spaCy's tokenizer adds unseen words to the shared vocabulary: one batch at a
        # time (tier 1 is cheap; API threads would otherwise race on the string store).
        with self._lock:
            return self._match(norms)

    def _match(self, norms: Sequence[Normalized]) -> list[list[PatternHit]]:
        out: list[list[PatternHit]] = [[] for _ in norms]
        xx = self._nlp["xx"]
        for i, doc in enumerate(xx.tokenizer.pipe(n.text for n in norms)):
            if not len(doc):
                continue
            self._collect(out[i], norms[i], doc, "xx")
        han = [i for i, n in enumerate(norms) if has_han(n.text)]
        if han:
            zh = self._nlp["zh"]
            for i, doc in zip(han, zh.tokenizer.pipe(norms[i].text for i in han), strict=True):
                self._collect(out[i], norms[i], doc, "zh")
        return out

    def _collect(self, hits: list[PatternHit], norm: Normalized, doc: Any, which: str) -> None:
        strings = self._strings if which == "xx" else self._zh_strings
        found: dict[str, list[list[tuple[int, int]]]] = {}
        for match_id, s, e in self._phrase[which](doc):
            key, _, seg = strings[match_id].rpartition("#")
            n_seg = self._meta[key][3]
            found.setdefault(key, [[] for _ in range(n_seg)])[int(seg)].append((s, e))
        if which == "xx" and _URLISH.search(norm.text):
            found["spam_scam|url|0"] = [[(s, e) for _, s, e in self._url(doc)]]
        seen: set[tuple[str, int, int]] = set()
        for key, segments in found.items():
            label, lang, conf, _, gap = self._meta[key]
            for s, e in _chain(segments, gap):
                span = doc[s:e]
                start, end = norm.span(span.start_char, span.end_char)
                if (label, start, end) in seen:
                    continue
                seen.add((label, start, end))
                hits.append(PatternHit(label, start, end, lang, key, conf))


def _chain(segments: list[list[tuple[int, int]]], gap: int) -> list[tuple[int, int]]:
    """Token spans where segment 0, 1, ... follow each other with at most ``gap`` tokens between."""
    if any(not seg for seg in segments):
        return []
    out: list[tuple[int, int]] = []
    for s0, e0 in segments[0]:
        end = e0
        for seg in segments[1:]:
            nxt = [e for s, e in seg if end <= s <= end + gap]
            if not nxt:
                end = -1
                break
            end = min(nxt)
        if end >= 0:
            out.append((s0, end))
    return out
