"""Addresses: a normalised key, PO boxes, known reshippers and gibberish.

The normalised key folds case, accents, punctuation, spacing and the usual street-type
and unit variants (``Street``/``St.``/``Str``, ``Apartment``/``Apt``/``Suite``/``#``) so
that the same place typed twice gives the same key; it keys the per-address state
(distinct customers, cards and e-mails seen there).
"""

from __future__ import annotations

import re
from functools import cache, lru_cache

from contracts import Address
from features._data import read_lines
from features.identity import ascii_fold

__all__ = ["address_key", "gibberish_score", "is_po_box", "is_reshipper", "normalize_address"]

_ABBREV = {
    "street": "st", "str": "st", "strasse": "st", "strase": "st", "st": "st",
    "ulica": "ul", "ul": "ul", "avenue": "ave", "av": "ave", "ave": "ave", "avenida": "ave",
    "road": "rd", "rd": "rd", "boulevard": "blvd", "blvd": "blvd", "drive": "dr", "dr": "dr",
    "lane": "ln", "ln": "ln", "court": "ct", "ct": "ct", "place": "pl", "pl": "pl",
    "square": "sq", "sq": "sq", "highway": "hwy", "hwy": "hwy", "parkway": "pkwy",
    "calle": "c", "rue": "rue", "via": "via", "aleja": "al", "al": "al", "osiedle": "os", "os": "os",
    "apartment": "unit", "apt": "unit", "suite": "unit", "ste": "unit", "unit": "unit",
    "flat": "unit", "room": "unit", "rm": "unit", "lok": "unit", "lokal": "unit", "m": "unit",
    "north": "n", "south": "s", "east": "e", "west": "w",
    "floor": "fl", "fl": "fl",
}
_NON_ALNUM = re.compile(r"[^a-z0-9]+")
_PO_BOX = re.compile(
    r"\b(p\s*o\s*box|post\s*office\s*box|pob|postfach|skrytka\s*pocztowa|apartado(\s*de\s*correos)?|"
    r"boite\s*postale|casilla(\s*postal)?|caixa\s*postal|postbus|box\s*\d+)\b"
)


@lru_cache(maxsize=65536)
def _norm_line(text: str) -> str:
    text = ascii_fold(text).replace("#", " unit ")
    out = []
    for tok in _NON_ALNUM.sub(" ", text).split():
        out.append(_ABBREV.get(tok, tok))
    # "unit unit 4" from "Apt #4"
    dedup = [t for i, t in enumerate(out) if not (t == "unit" and i and out[i - 1] == "unit")]
    return " ".join(dedup)


def normalize_address(address: Address | None) -> str | None:
    """The address as normalised text: ``line1 line2 | city | region | postal | country``."""
    if address is None or not (address.line1 or address.line2 or address.postal_code):
        return None
    lines = " ".join(_norm_line(x) for x in (address.line1, address.line2) if x)
    postal = _NON_ALNUM.sub("", (address.postal_code or "").lower())
    return " | ".join(
        (lines, _norm_line(address.city or ""), _norm_line(address.region or ""), postal, (address.country or "").lower())
    )


def address_key(address: Address | None) -> str | None:
    """Key for per-address state: street lines, postal code and country (city/region vary)."""
    if address is None or not (address.line1 or address.line2 or address.postal_code):
        return None
    lines = " ".join(_norm_line(x) for x in (address.line1, address.line2) if x)
    postal = _NON_ALNUM.sub("", (address.postal_code or "").lower())
    return f"{lines}|{postal}|{(address.country or '').lower()}"


def is_po_box(address: Address | None) -> bool:
    if address is None:
        return False
    return _po_box_text(" ".join(x for x in (address.line1, address.line2) if x))


@lru_cache(maxsize=65536)
def _po_box_text(text: str) -> bool:
    return bool(_PO_BOX.search(ascii_fold(text).replace(".", "")))


@cache
def _reshipper_patterns() -> re.Pattern[str]:
    return re.compile("|".join(f"(?:{p})" for p in read_lines("reshippers.txt")), re.IGNORECASE)


@lru_cache(maxsize=65536)
def is_reshipper(normalized: str | None) -> bool:
    """Whether the normalised address matches a known reshipper / forwarder pattern."""
    return bool(normalized) and bool(_reshipper_patterns().search(normalized or ""))


_ROWS = ("qwertyuiop", "asdfghjkl", "zxcvbnm", "qwertzuiop", "yxcvbnm", "azertyuiop", "qsdfghjklm", "wxcvbn", "1234567890")
_WALKS = frozenset(
    row[i : i + 4] for row in (*_ROWS, *(r[::-1] for r in _ROWS)) for i in range(len(row) - 3)
)
_VOWELS = set("aeiouy")
# The same tests as a loop over characters would make, as compiled patterns (a new
# address costs ~10 us instead of ~40 us; tokens are [a-z0-9]+ after folding).
_WALK_RE = re.compile("|".join(sorted(_WALKS)))
_CONSONANT_RUN_RE = re.compile(r"[b-df-hj-np-tv-xz]{6}")
_REPEAT_RE = re.compile(r"(.)\1\1\1")
_DIGITS_RE = re.compile(r"[0-9]")


@lru_cache(maxsize=65536)
def gibberish_score(text: str | None) -> float | None:
    """0..1: keyboard walks, long consonant runs, repeated characters, too few vowels."""
    if not text:
        return None
    score = 0.0
    for tok in _NON_ALNUM.sub(" ", ascii_fold(text)).split():
        if _WALK_RE.search(tok):
            score += 0.6
        letters = len(tok) - len(_DIGITS_RE.findall(tok))
        if letters >= 6:
            vowels = sum(map(tok.count, "aeiouy"))
            if vowels / letters < 0.1:
                score += 0.4
        if _CONSONANT_RUN_RE.search(tok):
            score += 0.4
        if _REPEAT_RE.search(tok):
            score += 0.4
    return min(1.0, score)
