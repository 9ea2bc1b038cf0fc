"""The text-pattern labels, shared by the text tiers in ``features`` and ``models``.

Documented with examples in ``features/text/LABELS.md``. Multi-label; "benign" is the
absence of every other label.
"""

from __future__ import annotations

__all__ = ["TEXT_LABELS"]

TEXT_LABELS: tuple[str, ...] = (
    "benign",
    "reshipping",
    "payment_evasion",
    "urgency_pressure",
    "contact_avoidance",
    "policy_evasion",
    "prompt_injection",
    "spam_scam",
    "abusive",
    "gibberish",
)
