"""The text labels, in one place (documented with examples in ``features/text/LABELS.md``)."""

from __future__ import annotations

from contracts.labels import TEXT_LABELS

__all__ = ["LABELS", "RISK_LABELS", "RISK_WEIGHTS"]

#: Multi-label set; "benign" is the absence of every other label.
LABELS: tuple[str, ...] = TEXT_LABELS
RISK_LABELS: tuple[str, ...] = LABELS[1:]

#: How much of the 0..1 text risk a label at full confidence carries (combined by noisy-or).
#: An injection attempt is itself evidence of intent, so it weighs most; urgency and
#: contact avoidance are common among honest customers, so they weigh little alone.
RISK_WEIGHTS: dict[str, float] = {
    "reshipping": 0.45,
    "payment_evasion": 0.55,
    "urgency_pressure": 0.15,
    "contact_avoidance": 0.15,
    "policy_evasion": 0.4,
    "prompt_injection": 0.65,
    "spam_scam": 0.45,
    "abusive": 0.2,
    "gibberish": 0.1,
}
