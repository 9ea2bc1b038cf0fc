"""Free-text signals, tiers 1-2: normalisation, language, PII, spaCy patterns, embeddings, recurring phrasing.

Import the submodules directly (``features.text.extract``, ``features.text.embed``,
``features.text.phrasing``...): spaCy and the embedding weights load only where used.
See ``features/text/README.md`` for the API and ``LABELS.md`` for the labels.
"""

from features.text.labels import LABELS, RISK_LABELS, RISK_WEIGHTS

__all__ = ["LABELS", "RISK_LABELS", "RISK_WEIGHTS"]
