"""E-mail and identity signals: disposable and free-mail domains, local-part shape, name match.

Disposable domains come from the maintained ``disposable-email-domains`` package;
free-mail providers from ``features/data/freemail_domains.txt``.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass
from functools import cache, lru_cache

from features._data import read_lines

__all__ = ["EmailInfo", "ascii_fold", "is_disposable", "is_freemail", "name_email_similarity", "parse_email"]

_FOLD = str.maketrans({"ł": "l", "Ł": "L", "ø": "o", "Ø": "O", "ß": "ss", "æ": "ae", "Æ": "AE", "đ": "d", "Đ": "D", "ı": "i"})
_GMAIL = frozenset({"gmail.com", "googlemail.com"})


@lru_cache(maxsize=65536)
def ascii_fold(text: str) -> str:
    """Lower-case ASCII approximation (``Długa`` -> ``dluga``)."""
    if text.isascii():  # nothing to fold: most names, streets and cities
        return text.lower()
    text = unicodedata.normalize("NFKD", text.translate(_FOLD))
    return "".join(ch for ch in text if not unicodedata.combining(ch)).encode("ascii", "ignore").decode().lower()


@cache
def _disposable() -> frozenset[str]:
    from disposable_email_domains import blocklist

    return frozenset(blocklist)


@cache
def _freemail() -> frozenset[str]:
    return frozenset(d.lower() for d in read_lines("freemail_domains.txt"))


def _parents(domain: str) -> list[str]:
    parts = domain.split(".")
    return [".".join(parts[i:]) for i in range(len(parts) - 1)]


def is_disposable(domain: str) -> bool:
    block = _disposable()
    return any(d in block for d in _parents(domain))


def is_freemail(domain: str) -> bool:
    return domain in _freemail()


@dataclass(frozen=True, slots=True)
class EmailInfo:
    #: Canonical address: lower case, ``+tag`` dropped, dots dropped for Gmail.
    normalized: str
    local: str
    domain: str
    disposable: bool
    freemail: bool
    digits: int
    digit_share: float
    entropy: float
    length: int


def _entropy(text: str) -> float:
    if not text:
        return 0.0
    n = len(text)
    return -sum(c / n * math.log2(c / n) for c in Counter(text).values())


@lru_cache(maxsize=65536)
def parse_email(email: str | None) -> EmailInfo | None:
    """Parse and describe an e-mail address; None when it is not one."""
    if not email or "@" not in email:
        return None
    local, _, domain = email.strip().lower().rpartition("@")
    domain = domain.strip(".")
    if not local or "." not in domain:
        return None
    base = local.split("+", 1)[0]
    if domain in _GMAIL:
        base = base.replace(".", "")
        domain = "gmail.com"
    digits = sum(ch.isdigit() for ch in local)
    return EmailInfo(
        normalized=f"{base}@{domain}",
        local=local,
        domain=domain,
        disposable=is_disposable(domain),
        freemail=is_freemail(domain),
        digits=digits,
        digit_share=digits / len(local),
        entropy=_entropy(local),
        length=len(local),
    )


_TOKEN = re.compile(r"[a-z]+")


def _trigrams(text: str) -> set[str]:
    return {text[i : i + 3] for i in range(len(text) - 2)}


@lru_cache(maxsize=65536)
def name_email_similarity(name: str | None, local: str | None) -> float | None:
    """0..1: how much of the customer's name shows in the e-mail's local part.

    Share of name tokens (2+ letters) found in the local part; when none is, the
    character-trigram Jaccard similarity of the name and the local part's letters.
    """
    if not name or not local:
        return None
    tokens = [t for t in _TOKEN.findall(ascii_fold(name)) if len(t) >= 2]
    letters = "".join(_TOKEN.findall(local))
    if not tokens or not letters:
        return None
    found = sum(1 for t in tokens if t in letters)
    if found:
        return found / len(tokens)
    a, b = _trigrams("".join(tokens)), _trigrams(letters)
    return len(a & b) / len(a | b) if a and b else 0.0
