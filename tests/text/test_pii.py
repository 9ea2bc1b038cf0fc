"""PII spans and redaction: nothing that looks like an inserted email, phone or card survives."""

from __future__ import annotations

import re

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from features.text.normalize import detect_language, normalize_text, skeleton, text_key
from features.text.pii import find_pii, luhn_ok, redact

WORDS = ["please", "call", "me", "at", "proszę", "dzwonić", "bitte", "rufen", "llame", "appelez",
         "اتصل", "على", "התקשר", "אל", "请", "电话", "order", "card", "pay", "ship", "to", "and", "", "."]


def _luhn_complete(prefix: str) -> str:
    for d in "0123456789":
        if luhn_ok(prefix + d):
            return prefix + d
    raise AssertionError("unreachable")


emails = st.builds(
    lambda user, dom, tld: f"{user}@{dom}.{tld}",
    st.from_regex(r"[a-z][a-z0-9._+-]{0,15}[a-z0-9]", fullmatch=True),
    st.from_regex(r"[a-z][a-z0-9-]{0,12}[a-z0-9]", fullmatch=True),
    st.sampled_from(["com", "pl", "de", "co.uk", "org", "io"]),
)
phones = st.builds(
    lambda cc, groups, sep: cc + sep.join(groups),
    st.sampled_from(["+48 ", "+1 ", "+49 ", "0", "+972-", "+86 ", ""]),
    st.lists(st.from_regex(r"[0-9]{3}", fullmatch=True), min_size=3, max_size=4),
    st.sampled_from([" ", "-", ".", ""]),
)
cards = st.builds(
    lambda body, sep: sep.join(re.findall(".{1,4}", _luhn_complete(body))),
    st.from_regex(r"[3-6][0-9]{14}", fullmatch=True),
    st.sampled_from([" ", "-", ""]),
)
fillers = st.lists(st.sampled_from(WORDS), max_size=6).map(" ".join)


def _digits(s: str) -> str:
    return "".join(c for c in s if c.isdigit())


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(before=fillers, after=fillers, secret=st.one_of(emails, phones, cards), glue=st.sampled_from([" ", ", ", ": ", "\n"]))
def test_redaction_leaks_nothing_inserted(before, after, secret, glue):
    text = f"{before}{glue}{secret}{glue}{after}"
    out = redact(text)
    assert secret not in out
    if "@" in secret:
        assert "@" not in out
        local = secret.split("@")[0]
        if len(local) >= 4:
            assert f"{local}@" not in out
    digits = _digits(secret)
    if len(digits) >= 6:
        # No run of the secret's digits longer than five survives anywhere in the output.
        out_digits = re.findall(r"\d[\d\s.\-()/+]*", out)
        for run in out_digits:
            assert len(_digits(run)) < 6 or _digits(run) not in digits


def test_kinds_and_placeholders():
    text = "Mail jan.kowalski@example.pl, tel. +48 600 100 200, card 4111 1111 1111 1111, IBAN DE89 3704 0044 0532 0130 00"
    kinds = [s.kind for s in find_pii(text)]
    assert kinds == ["email", "phone", "card", "iban"]
    assert redact(text) == "Mail [EMAIL], tel. [PHONE], card [CARD], IBAN [IBAN]"


def test_non_luhn_long_number_is_not_called_a_card_but_still_masked():
    spans = find_pii("ref 4111 1111 1111 1112")
    assert spans and spans[0].kind != "card"
    assert "1112" not in redact("ref 4111 1111 1111 1112")


def test_obfuscated_email_and_street_addresses():
    assert redact("write to jan (at) example (dot) com") == "write to [EMAIL]"
    for addr in ["1250 Forwarding Way, Unit 4410", "ul. Długa 5", "Hauptstraße 12", "12, rue de la Paix",
                 "calle Mayor 7", "רחוב הרצל 5", "شارع الملك فهد 12", "中山路12号"]:
        out = redact(f"ship to {addr} please")
        assert "[ADDRESS]" in out, addr


def test_plain_text_is_untouched():
    text = "Please leave at the door, thanks!"
    assert find_pii(text) == []
    assert redact(text) == text


def test_normalisation_folds_and_maps_offsets_back():
    text = "Ｐｒｏｓｚę  NIE\u200b dzwonić"
    n = normalize_text(text)
    assert n.text == "prosze nie dzwonic"
    i = n.text.index("dzwonic")
    start, end = n.span(i, i + len("dzwonic"))
    assert text[start:end] == "dzwonić"


def test_skeleton_and_key_ignore_numbers_case_and_punctuation():
    assert skeleton("Order #12345: box EMPTY!") == skeleton("order 99 box empty")
    assert text_key("Box empty, order 1") == text_key("box empty order 2")
    assert text_key("box empty") != text_key("box full")


def test_language_detection():
    cases = {
        "Please leave the parcel at the door": "en",
        "Bitte das Paket beim Nachbarn abgeben": "de",
        "Por favor deje el paquete en la puerta": "es",
        "Merci de laisser le colis à la porte": "fr",
        "Proszę zostawić paczkę pod drzwiami": "pl",
        "يرجى ترك الطرد عند الباب": "ar",
        "נא להשאיר את החבילה ליד הדלת": "he",
        "请把包裹放在门口": "zh",
    }
    for text, lang in cases.items():
        assert detect_language(text) == lang, text
    assert detect_language("") == "und"
