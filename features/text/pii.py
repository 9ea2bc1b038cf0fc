"""PII spans in free text (emails, phones, card-like numbers, IBANs, street addresses) and redaction.

``redact`` is what must run before any text leaves the process (the LLM tier) or is
quoted in a reason. It is deliberately greedy: after the typed spans are replaced, a
safety net masks every remaining run of six or more digits and every token with an
``@``, so a format the typed patterns miss still cannot leak a number or an address.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["PLACEHOLDERS", "PiiSpan", "find_pii", "luhn_ok", "mask_spans", "redact"]

PLACEHOLDERS = {
    "email": "[EMAIL]",
    "phone": "[PHONE]",
    "card": "[CARD]",
    "iban": "[IBAN]",
    "address": "[ADDRESS]",
    "long_number": "[NUMBER]",
    "ip": "[IP]",
}


@dataclass(frozen=True, slots=True)
class PiiSpan:
    start: int
    end: int
    kind: str


_EMAIL = re.compile(
    r"[\w.+%-]+\s*(?:@|＠|\(at\)|\[at\]|\{at\})\s*[\w-]+(?:\s*(?:\.|\(dot\)|\[dot\]|\{dot\})\s*[\w-]+)+",
    re.IGNORECASE,
)
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?:[ ]?[A-Z0-9]{4}){2,7}(?:[ ]?[A-Z0-9]{1,4})?\b")
# Digit runs with the separators people type inside card and phone numbers.
_DIGIT_RUN = re.compile(r"\+?\(?\d[\d\s().\-/]*\d")
_IP = re.compile(r"\b(?:\d{1,3}\.){3}\d{1,3}\b")

_STREET_WORDS_AFTER = (
    r"street|st\.?|avenue|ave\.?|road|rd\.?|lane|ln\.?|way|boulevard|blvd\.?|drive|dr\.?|"
    r"court|ct\.?|place|pl\.?|square|sq\.?|terrace|parkway|highway|hwy|suite|unit"
)
_ADDRESS = re.compile(
    "|".join(
        [
            # 12 Baker Street / 1250 Forwarding Way, Unit 4410
            rf"\b\d{{1,6}}[a-z]?\s+(?:[\w.'-]+\s+){{0,4}}(?:{_STREET_WORDS_AFTER})\b(?:,?\s*(?:unit|apt\.?|suite|#)\s*[\w-]+)?",
            # Hauptstraße 5, Am Weg 12a, Lindenstr. 7
            r"\b[\w.-]*(?:straße|strasse|str\.|weg|platz|allee|gasse|ring|damm)\s+\d{1,5}[a-z]?\b",
            # calle Mayor 5, rue de la Paix 12, avenida ..., ul. Długa 5, al. Jerozolimskie 3
            r"\b(?:calle|c/|avenida|avda\.?|paseo|plaza|rue|avenue|boulevard|chemin|allée|impasse|"
            r"ul\.|ulica|al\.|aleja|os\.|osiedle|pl\.)\s+(?:[\w'.-]+\s+){0,4}?\d{1,5}[a-z]?\b",
            # 12, rue de la Paix
            r"\b\d{1,5}(?:\s*bis|\s*ter)?,?\s+(?:rue|avenue|boulevard|chemin|allée|impasse|place)\s+(?:[\w'-]+\s*){1,4}",
            r"\b(?:p\.?\s?o\.?\s?box|postfach|apartado(?: de correos)?)\s*\d+",
            # Hebrew and Arabic street words followed by a name and a number
            r"(?:רחוב|רח['׳]|שדרות)\s+(?:\S+\s+){0,3}?\d{1,5}",
            r"(?:شارع|طريق|حي)\s+(?:\S+\s+){0,3}?\d{1,5}",
            # Chinese: ...路/街/道 12号
            r"[\u4e00-\u9fff]{1,10}(?:路|街|道|巷|弄)\s*\d{1,5}\s*号",
        ]
    ),
    re.IGNORECASE,
)
_AT_TOKEN = re.compile(r"\S*[@＠]\S*")
_SAFETY_DIGITS = re.compile(r"\d(?:[\s().\-/+]*\d){5,}")


def luhn_ok(digits: str) -> bool:
    """The Luhn checksum card numbers carry."""
    total, alt = 0, False
    for ch in reversed(digits):
        d = ord(ch) - 48
        if alt:
            d *= 2
            if d > 9:
                d -= 9
        total += d
        alt = not alt
    return total % 10 == 0


def _ascii_digits(s: str) -> str:
    return "".join(str(int(c)) for c in s if c.isdigit())


_EMAILISH = re.compile(r"[@＠]|\(at\)|\[at\]|\{at\}", re.IGNORECASE)
_ANY_DIGIT = re.compile(r"\d")


def find_pii(text: str) -> list[PiiSpan]:
    """PII spans in ``text``, non-overlapping, in order; longest typed match wins."""
    if not text:
        return []
    has_digit = _ANY_DIGIT.search(text) is not None
    has_at = _EMAILISH.search(text) is not None
    # Every pattern but the e-mail one needs a digit: most notes skip all the scans.
    if not has_digit and not has_at:
        return []
    found: list[PiiSpan] = []
    if has_at:
        for m in _EMAIL.finditer(text):
            found.append(PiiSpan(m.start(), m.end(), "email"))
    if not has_digit:
        return found
    for m in _IBAN.finditer(text):
        found.append(PiiSpan(m.start(), m.end(), "iban"))
    for m in _IP.finditer(text):
        found.append(PiiSpan(m.start(), m.end(), "ip"))
    for m in _ADDRESS.finditer(text):
        found.append(PiiSpan(m.start(), m.end(), "address"))
    for m in _DIGIT_RUN.finditer(text):
        digits = _ascii_digits(m.group())
        n = len(digits)
        if 13 <= n <= 19 and luhn_ok(digits):
            kind = "card"
        elif 7 <= n <= 15:
            kind = "phone"
        elif n > 15:
            kind = "long_number"
        else:
            continue
        found.append(PiiSpan(m.start(), m.end(), kind))
    if not found:
        return []
    # Priority on ties: the more specific kinds first.
    rank = {"email": 0, "card": 1, "iban": 2, "ip": 3, "address": 4, "phone": 5, "long_number": 6}
    found.sort(key=lambda s: (s.start, -(s.end - s.start), rank[s.kind]))
    out: list[PiiSpan] = []
    for span in found:
        if out and span.start < out[-1].end:
            last = out[-1]
            # Overlap: keep the union under the earlier span's kind (greedy masking is safer).
            if span.end > last.end:
                out[-1] = PiiSpan(last.start, span.end, last.kind)
            continue
        out.append(span)
    return out


def mask_spans(text: str, spans: list[PiiSpan]) -> str:
    """Replace each span by its placeholder."""
    parts: list[str] = []
    pos = 0
    for s in spans:
        parts.append(text[pos : s.start])
        parts.append(PLACEHOLDERS.get(s.kind, "[PII]"))
        pos = s.end
    parts.append(text[pos:])
    return "".join(parts)


def redact(text: str, *, spans: list[PiiSpan] | None = None) -> str:
    """``text`` with every PII span replaced by a placeholder such as ``[EMAIL]``.

    ``spans`` may pass ``find_pii(text)`` when the caller already has it.
    """
    if not text:
        return text
    out = mask_spans(text, find_pii(text) if spans is None else spans)
    if "@" in out or "＠" in out:
        out = _AT_TOKEN.sub("[EMAIL]", out)
    return _SAFETY_DIGITS.sub("[NUMBER]", out)
