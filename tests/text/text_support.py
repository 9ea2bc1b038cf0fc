"""Shared, process-cached parts for the tier 1-2 tests (the spaCy and USE loads take seconds)."""

from __future__ import annotations

from functools import cache

__all__ = ["classifier", "embedder", "extractor", "matcher"]


@cache
def matcher():
    from features.text.patterns import PatternMatcher

    return PatternMatcher()


@cache
def extractor():
    from features.text.extract import TextExtractor

    return TextExtractor(matcher=matcher())


@cache
def embedder():
    from features.text.embed import Embedder

    return Embedder()


def classifier(state=None, *, phrasing: bool = True):
    """A real tiers 1-2 classifier with its own phrasing state (fresh per call)."""
    from detector.text_stage import TextClassifier
    from features.text.phrasing import PhraseClusterer
    from models.text.head import TextHead

    emb = embedder()
    clusterer = PhraseClusterer.with_baseline(emb.encode, state) if phrasing else None
    return TextClassifier(extractor=extractor(), embedder=emb, head=TextHead.load(), phrasing=clusterer)
