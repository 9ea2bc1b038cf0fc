"""Text normalisation with an offset map, stable text keys and light language detection.

Matching runs on a folded copy of the text (NFKC, casefold, diacritics and invisible
controls removed, whitespace collapsed) so that "ＩＧＮＯＲＥ", "Ignore" and "ig\u200bnore" all read the same;
``Normalized.offsets`` maps every folded character back to the original so spans quote
the text the customer actually wrote.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

__all__ = [
    "LANGUAGES",
    "Normalized",
    "detect_language",
    "fold",
    "normalize_text",
    "skeleton",
    "text_key",
]

#: Languages the patterns and the curated set cover (others detect as their script or "und").
LANGUAGES = ("en", "de", "es", "fr", "pl", "ar", "he", "zh")

# Zero-width and bidi controls: used to split keywords past naive filters
# ("ig\u200bnore") and to reorder what an analyst sees; they carry no meaning.
_INVISIBLE = frozenset(
    "\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180e\u200b\u200c\u200d\u200e\u200f"
    "\u202a\u202b\u202c\u202d\u202e\u2060\u2061\u2062\u2063\u2064\u2066\u2067\u2068\u2069\ufeff"
)
# Arabic tashkeel and Hebrew niqqud: optional vowel marks that vary between writers.
_STRIP_MARKS = re.compile("[\u0591-\u05c7\u064b-\u065f\u0670\u06d6-\u06ed\u0640]")


@dataclass(frozen=True, slots=True)
class Normalized:
    """A folded text and, per folded character, its index in the original text."""

    text: str
    #: None when the folding kept every offset (the common ASCII case).
    offsets: tuple[int, ...] | None
    original_length: int

    def span(self, start: int, end: int) -> tuple[int, int]:
        """Original ``[start, end)`` for the folded ``[start, end)``."""
        if self.offsets is None:
            return (start, max(start, end))
        if not self.offsets or start >= end:
            return (0, 0)
        s = self.offsets[min(start, len(self.offsets) - 1)]
        e = self.offsets[min(end, len(self.offsets)) - 1] + 1
        return (s, max(e, s))


# Letters NFKD does not decompose but people type without their stroke anyway.
_EXTRA_FOLD = {"ł": "l", "ø": "o", "đ": "d", "ħ": "h", "ı": "i", "’": "'", "‘": "'", "ʼ": "'", "`": "'", "´": "'"}
# Traditional -> simplified for the characters the Chinese patterns use, so one pattern
# list serves both scripts (a full converter would be a dependency for little gain).
_TRAD = dict(
    zip(
        "請電話聯訂單貨轉發錯幣禮帳號戶擊連結領獎運過準視規則說記緊馬盡賬東無視給親戚勿簽隨處敲門裡哪騙傻蛋媽滾圾垃圾餘額為設風險標註淨條款誤賠償郵遞還並僅換備貼務難費點這個們時間們態鏈",
        "请电话联订单货转发错币礼帐号户击连结领奖运过准视规则说记紧马尽账东无视给亲戚勿签随处敲门里哪骗傻蛋妈滚圾垃圾余额为设风险标注净条款误赔偿邮递还并仅换备贴务难费点这个们时间们态链",
        strict=True,
    )
)
_EXTRA_FOLD.update(_TRAD)


@lru_cache(maxsize=8192)
def _fold_char(ch: str) -> str:
    if ch in _INVISIBLE:
        return ""
    out = unicodedata.normalize("NFKC", ch).casefold()
    if out.isspace():
        return " "
    if out.isascii():
        return out
    if out in _TRAD:
        return _TRAD[out]
    # Diacritics dropped: "proszę nie dzwonić" and "prosze nie dzwonic" must match the
    # same pattern; Arabic and Hebrew vowel marks go the same way.
    out = "".join(
        _EXTRA_FOLD.get(c, c)
        for c in unicodedata.normalize("NFKD", out)
        if not unicodedata.combining(c)
    )
    if _STRIP_MARKS.search(out):
        out = _STRIP_MARKS.sub("", out)
    return unicodedata.normalize("NFKC", out)


_MESSY_ASCII = re.compile(r"\s\s|[^\S ]|^\s|\s$|[\x00-\x1f`]")


def normalize_text(text: str) -> Normalized:
    """Fold ``text`` for matching, keeping a map back to the original offsets."""
    if text.isascii() and not _MESSY_ASCII.search(text):
        return Normalized(text.lower(), None, len(text))
    if text.isascii():
        # Fast path for most notes: lower() keeps length, only whitespace runs collapse.
        chars: list[str] = []
        offsets: list[int] = []
        prev_space = True
        for i, ch in enumerate(text.lower()):
            if ch.isspace() or ch < " ":
                if prev_space:
                    continue
                ch, prev_space = " ", True
            else:
                prev_space = False
            chars.append(ch)
            offsets.append(i)
    else:
        chars, offsets = [], []
        prev_space = True
        for i, raw in enumerate(text):
            folded = _fold_char(raw)
            for ch in folded:
                if ch == " " or ch < " ":
                    if prev_space:
                        continue
                    ch, prev_space = " ", True
                else:
                    prev_space = False
                chars.append(ch)
                offsets.append(i)
    if chars and chars[-1] == " ":
        chars.pop()
        offsets.pop()
    return Normalized("".join(chars), tuple(offsets), len(text))


def fold(text: str) -> str:
    """The folded text only (no offsets)."""
    return normalize_text(text).text


_DIGITS = re.compile(r"\d+")
_PUNCT = re.compile(r"[^\w\s\[\]]+")
_SPACES = re.compile(r"\s+")


def skeleton(redacted: str) -> str:
    """Folded, digits masked, punctuation dropped: what near-identical texts share.

    Call it on already-redacted text (``features.text.pii.redact``) so that names of
    PII placeholders survive and the PII itself never reaches a key.
    """
    s = fold(redacted)
    s = _DIGITS.sub("0", s)
    s = _PUNCT.sub(" ", s)
    return _SPACES.sub(" ", s).strip()


def text_key(redacted: str, *, salt: str = "") -> str:
    """Stable hash of a redacted text's skeleton; ``salt`` carries e.g. a prompt version."""
    return hashlib.sha256(f"{salt}\x00{skeleton(redacted)}".encode()).hexdigest()


# ---- language detection -------------------------------------------------------------
_SCRIPTS: tuple[tuple[str, str], ...] = (
    ("ar", "[\u0600-\u06ff\u0750-\u077f\ufb50-\ufdff\ufe70-\ufeff]"),
    ("he", "[\u0590-\u05ff]"),
    ("ja", "[\u3040-\u30ff]"),
    ("ko", "[\uac00-\ud7af]"),
    ("zh", "[\u4e00-\u9fff\u3400-\u4dbf]"),
    ("ru", "[\u0400-\u04ff]"),
    ("el", "[\u0370-\u03ff]"),
    ("th", "[\u0e00-\u0e7f]"),
)
_SCRIPT_RES = tuple((lang, re.compile(rx)) for lang, rx in _SCRIPTS)
# The scripts' ranges are disjoint: one scan finds every such character, each is then
# looked up once (``_script_of``) instead of one scan per script.
_ANY_SCRIPT = re.compile("[" + "".join(rx[1:-1] for _, rx in _SCRIPTS) + "]")
_SCRIPTS_ORDER = tuple(lang for lang, _ in _SCRIPTS)


@lru_cache(maxsize=8192)
def _script_of(ch: str) -> str:
    return next(lang for lang, rx in _SCRIPT_RES if rx.match(ch))
_WORD = re.compile(r"[^\W\d_]+")

_STOPWORDS: dict[str, frozenset[str]] = {
    "en": frozenset(
        ["the", "and", "to", "of", "a", "in", "is", "it", "you", "that", "for", "on", "this", "my", "please", "not", "be", "with", "are", "was", "at", "your", "i", "me", "do", "don't", "dont", "have", "will", "can", "from", "by", "or", "if", "no"]
    ),
    "de": frozenset(
        ["der", "die", "das", "und", "ist", "nicht", "ich", "sie", "es", "zu", "den", "mit", "ein", "eine", "bitte", "für", "fur", "auf", "dem", "des", "von", "wir", "ihr", "mein", "meine", "kein", "keine", "an", "bei", "nur", "noch", "heute", "oder", "wenn"]
    ),
    "es": frozenset(
        ["el", "la", "los", "las", "de", "que", "y", "en", "un", "una", "por", "favor", "no", "es", "para", "con", "mi", "se", "lo", "al", "del", "su", "me", "muy", "hoy", "pero", "como", "le"]
    ),
    "fr": frozenset(
        ["le", "la", "les", "de", "des", "et", "en", "un", "une", "est", "pas", "ne", "je", "vous", "il", "pour", "avec", "mon", "ma", "mes", "sur", "au", "aux", "du", "ce", "merci", "svp", "s'il", "plait", "ou", "qui"]
    ),
    "pl": frozenset(
        ["i", "w", "na", "nie", "się", "sie", "z", "do", "to", "jest", "że", "ze", "o", "jak", "proszę", "prosze", "za", "od", "po", "mnie", "mi", "czy", "ten", "ta", "jego", "tylko", "dziś", "dzis"]
    ),
}
_LETTER_HINTS: dict[str, str] = {
    "pl": "ąćęłńśźż",
    "de": "äöüß",
    "es": "ñ¿¡",
    "fr": "çèêëàâîïôûœ",
}
# One scan per language for its hint letters (all non-ASCII: an ASCII text has none).
_HINT_RES = tuple((lang, re.compile(f"[{re.escape(hints)}]")) for lang, hints in _LETTER_HINTS.items())
# Word -> the languages whose stopword it is (scores in one pass over the words).
_STOPWORD_LANGS: dict[str, tuple[str, ...]] = {}
for _lang, _words in _STOPWORDS.items():
    for _w in _words:
        _STOPWORD_LANGS[_w] = (*_STOPWORD_LANGS.get(_w, ()), _lang)


def detect_language(text: str) -> str:
    """ISO 639-1 code of the dominant language, by script then stopwords; "und" if unsure.

    A cheap detector on purpose (microseconds): the patterns run for every language
    whatever this says, so a wrong guess costs a label nothing; it only documents
    the text for analysts and the evaluation.
    """
    if not text:
        return "und"
    sample = text[:400]
    if not sample.isascii():
        counts = dict.fromkeys(_SCRIPTS_ORDER, 0)
        for ch in _ANY_SCRIPT.findall(sample):
            counts[_script_of(ch)] += 1
        best, best_n = "", 0
        for lang, n in counts.items():  # the first script with the most characters
            if n > best_n:
                best, best_n = lang, n
        letters = sum(map(str.isalpha, sample))
        if best and best_n * 2 >= max(letters, 1) * 0.5:
            if best == "zh" and counts["ja"]:
                return "ja"
            return best
    low = sample.casefold()
    words = _WORD.findall(low)
    if not words:
        return "und"
    scores = dict.fromkeys(_STOPWORDS, 0)
    for word in words:
        for lang in _STOPWORD_LANGS.get(word, ()):
            scores[lang] += 1
    if not low.isascii():
        for lang, rx in _HINT_RES:
            scores[lang] += 2 * len(rx.findall(low))
    lang, score = max(scores.items(), key=lambda kv: kv[1])
    return lang if score > 0 else "und"
