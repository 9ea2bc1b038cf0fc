"""The text stage: tiers 1-2 (patterns, embeddings + head, recurring phrasing) and the tier-3 seam.

``features.text`` extracts and embeds, ``models.text.head`` classifies; they may not
import each other, so they meet here. Three users:

- :class:`TextStage` implements the engine's ``TextStage`` protocol for orders (note,
  gift message, address lines) and offers :meth:`TextStage.analyze_returns` for
  return reasons;
- ``riskwire text classify`` calls :meth:`TextClassifier.classify` on raw texts;
- the LLM tier plugs in as an :class:`LlmReviewer` (plain types, so
  ``models.text.llm`` satisfies it without importing ``detector``).

Confidences combine so that text can only *add* risk: a label's confidence is the
damped noisy-or of the pattern's and the head's, an LLM verdict is merged by max, and
``TextResult.risk`` is a noisy-or of flagged labels weighted by
``features.text.labels.RISK_WEIGHTS`` (plus a standing-out recurring phrase); the
policy's own noisy-or means even that risk can only raise the score.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from dataclasses import field as dc_field
from datetime import datetime
from functools import lru_cache
from typing import Any, Literal, Protocol

import numpy as np

from contracts import (
    Degradation,
    FeatureSchema,
    FeatureSpec,
    Order,
    ReturnRequest,
    RiskwireError,
    SignalUnavailable,
)
from contracts.events import TextSpan
from contracts.results import TextResult
from features.text.embed import Embedder
from features.text.extract import Extraction, TextExtractor
from features.text.labels import RISK_LABELS, RISK_WEIGHTS
from features.text.normalize import text_key
from features.text.phrasing import PhraseClusterer, PhraseItem, PhraseStats
from features.text.pii import PiiSpan, redact
from models.text.head import TextHead

__all__ = [
    "RECURRING_LABEL",
    "TEXT_FEATURES",
    "LlmReviewer",
    "TextClassifier",
    "TextInput",
    "TextStage",
    "TextVerdict",
    "head_feature_names",
    "head_inputs",
    "needs_llm",
    "shared_embedder",
    "shared_extractor",
]

Tier = Literal["patterns", "head", "llm"]
_TIER_RANK = {"patterns": 0, "head": 1, "llm": 2}

#: A pattern hit at or above this confidence flags its label on its own.
PATTERN_FLAG_AT = 0.6
#: Below a label's threshold but at or above this: tiers 1-2 are unsure (LLM candidate).
UNCERTAIN_FROM = 0.3
#: How much of the text risk a standing-out recurring phrase adds at full strength.
PHRASE_RISK_WEIGHT = 0.5
#: A standing-out recurring phrase also shows as this pseudo-label (reason
#: ``TEXT_RECURRING_PHRASE`` with the text quoted) from this strength on.
RECURRING_LABEL = "recurring_phrase"
RECURRING_LABEL_AT = 0.5

TEXT_FEATURES = FeatureSchema.of(
    [
        FeatureSpec("text_risk", "number", "0-1", "Risk the order's free text carries (noisy-or of flagged labels).", model_input=False,
                    reason_code="TEXT_RISK", reason="free text reads risky ({value:.0%})"),
        FeatureSpec("phrase_cluster_size_7d", "number", "texts", "Texts in this text's recurring-phrase cluster over 7 days (all accounts).", model_input=False),
        FeatureSpec("phrase_cluster_accounts_7d", "number", "accounts", "Distinct accounts using this phrasing over 7 days.", model_input=False,
                    reason_code="TEXT_RECURRING_PHRASE", reason="the same phrasing used by {value:.0f} accounts in 7 days"),
        FeatureSpec("phrase_cluster_stands_out", "number", "0-1", "How strongly the phrasing recurs across accounts, common phrases excluded.", model_input=False),
        FeatureSpec("text_pii_count", "number", "spans", "PII spans (emails, phones, cards, addresses) written into free text.", model_input=False),
        *[
            FeatureSpec(f"text_conf_{lab}", "number", "0-1", f"Confidence that the free text reads as {lab.replace('_', ' ')}.", model_input=False)
            for lab in RISK_LABELS
        ],
    ]
)


class LlmReviewer(Protocol):
    """Tier 3, as the stage sees it (implemented in ``models.text.llm``).

    ``review`` gets PII-redacted texts and answers, per text, label -> confidence or
    ``None`` when that text got no answer within ``budget_s`` (``budget_s <= 0``: from
    the cache only, the sync path's default). A dead endpoint or an open breaker raises
    ``SignalUnavailable``. An optional ``min_confidence`` attribute sets the confidence
    at which its labels flag (default 0.5).
    """

    prompt_version: str

    def review(
        self, texts: Sequence[str], *, budget_s: float, fields: Sequence[str] | None = None
    ) -> list[Mapping[str, float] | None]: ...


@dataclass(frozen=True, slots=True)
class TextInput:
    text: str | None
    field: str = "note"
    #: Who wrote it (customer id); recurring phrasing counts distinct accounts.
    account: str | None = None
    #: Idempotency key for recurring phrasing (the same event counted once).
    event_id: str | None = None
    at: datetime | float | None = None
    #: Embed and classify with the head (off for address lines: tier 1 suffices).
    embed: bool = True
    #: Count in recurring-phrase clusters (needs ``at`` and an ``event_id``).
    recurring: bool = True


@dataclass(frozen=True, slots=True)
class TextVerdict:
    #: Flagged labels only (risk labels; "benign" when none), label -> confidence.
    labels: dict[str, float]
    #: Every label's combined confidence.
    confidences: dict[str, float]
    #: The highest tier that contributed a flagged label (or decided benign).
    tier: Tier
    spans: tuple[TextSpan, ...]
    language: str
    redacted: str
    field: str = "note"
    cluster: PhraseStats | None = None
    risk: float = 0.0
    uncertain: bool = False
    empty: bool = False
    pii_count: int = 0
    decided_by: dict[str, str] = dc_field(default_factory=dict)


def needs_llm(v: TextVerdict) -> bool:
    """Tier 3 only where tiers 1-2 are unsure or flag something (never for empty text).

    Address lines go only when they flag something other than gibberish: a street line
    is short, the LLM reads it no better than the patterns, and a gibberish-looking line
    (often a foreign street name) is not worth a call (keeps demo orders reaching the
    LLM under 10%, ``bench/text_llm.py``).
    """
    if v.empty:
        return False
    flagged = [lab for lab in v.labels if lab != "benign"]
    if "address" in v.field:
        return any(lab != "gibberish" for lab in flagged)
    return v.uncertain or bool(flagged)


def head_feature_names(dim: int = 512) -> tuple[str, ...]:
    return (*[f"e{i}" for i in range(dim)], *[f"pat_{lab}" for lab in RISK_LABELS], "gibberish_score")


def head_inputs(extractions: Sequence[Extraction], embeddings: np.ndarray) -> np.ndarray:
    """The head's input matrix: embedding, tier-1 pattern confidences, gibberish score."""
    n = len(extractions)
    extra = np.zeros((n, len(RISK_LABELS) + 1), dtype=np.float32)
    for i, ex in enumerate(extractions):
        for j, lab in enumerate(RISK_LABELS):
            extra[i, j] = ex.pattern_labels.get(lab, 0.0)
        extra[i, -1] = ex.gibberish
    return np.hstack([np.asarray(embeddings, dtype=np.float32).reshape(n, -1), extra])


def _snippet(text: str, start: int, end: int, pii: Sequence[PiiSpan], *, pad: int = 0) -> str:
    """The span's text with PII masked; the PII of the whole text is masked first, so a
    span that cuts an email in half cannot show the half."""
    s, e = max(0, start - pad), min(len(text), end + pad)
    parts, pos = [], s
    for p in pii:
        if p.end <= s or p.start >= e:
            continue
        parts.append(text[pos : max(pos, p.start)])
        parts.append("[PII]")
        pos = max(pos, p.end)
    parts.append(text[pos:e] if pos < e else "")
    return redact("".join(parts))[:256]


def _noisy_or(values: Sequence[float]) -> float:
    out = 1.0
    for v in values:
        out *= 1.0 - min(max(v, 0.0), 1.0)
    return 1.0 - out


class TextClassifier:
    """Tiers 1-2 over raw texts, in batches; shareable between threads.

    Build with :meth:`default` for the shipped parts; every collaborator can be
    injected (tests pass a small state store, the benchmark a warm embedder).
    """

    def __init__(
        self,
        *,
        extractor: TextExtractor,
        embedder: Embedder | None,
        head: TextHead | None,
        phrasing: PhraseClusterer | None = None,
    ) -> None:
        self.extractor = extractor
        self.embedder = embedder
        self.head = head
        self.phrasing = phrasing
        self.degraded: tuple[Degradation, ...] = ()
        if head is None or embedder is None:
            self.degraded = (Degradation(signal="text_head", reason="no embedding head loaded: patterns only"),)
        elif head.feature_names != head_feature_names():
            raise RiskwireError("text head was trained on a different input layout; rebuild it with `riskwire text train`")

    @classmethod
    def default(cls, *, state: Any = None, head_path: str | None = None, phrasing: bool = True) -> TextClassifier:
        """Shipped patterns, USE-m3, the packaged head (if present) and recurring phrasing."""
        embedder = shared_embedder()
        head = _shared_head(head_path)
        clusterer = PhraseClusterer.with_baseline(embedder.encode, state) if phrasing else None
        return cls(extractor=shared_extractor(), embedder=embedder, head=head, phrasing=clusterer)

    @property
    def version(self) -> str:
        return self.head.version if self.head is not None else "patterns-only"

    # ------------------------------------------------------------------ tiers 1-2
    def classify(self, items: Sequence[TextInput]) -> list[TextVerdict]:
        if not items:
            return []
        extractions = self.extractor.extract([it.text for it in items])
        n = len(items)
        probs: np.ndarray | None = None
        embeddings: np.ndarray | None = None
        embed_idx = [i for i, (it, ex) in enumerate(zip(items, extractions, strict=True)) if it.embed and not ex.empty]
        if embed_idx and self.embedder is not None:
            embeddings = np.zeros((n, 512), dtype=np.float32)
            embeddings[embed_idx] = self.embedder.encode([extractions[i].embed_input for i in embed_idx])
            if self.head is not None:
                probs = np.zeros((n, len(self.head.labels)), dtype=np.float32)
                sub = [extractions[i] for i in embed_idx]
                probs[embed_idx] = self.head.predict_proba(head_inputs(sub, embeddings[embed_idx]))
        clusters: list[PhraseStats | None] = [None] * n
        if self.phrasing is not None and embeddings is not None:
            idx = [i for i in embed_idx if items[i].recurring and items[i].at is not None]
            if idx:
                placed = self.phrasing.observe(
                    [
                        PhraseItem(
                            embedding=embeddings[i],
                            account=items[i].account,
                            event_id=items[i].event_id or "anon:" + text_key(extractions[i].redacted),
                            at=items[i].at,  # type: ignore[arg-type]
                        )
                        for i in idx
                    ]
                )
                for i, stats in zip(idx, placed, strict=True):
                    clusters[i] = stats
        plan, benign_at = self._plan()
        rows = probs.tolist() if probs is not None else None  # Python floats, the same values
        embedded = set(embed_idx)
        out = []
        for i, (it, ex) in enumerate(zip(items, extractions, strict=True)):
            row = None if rows is None or i not in embedded else rows[i]
            out.append(self._combine(it, ex, row, plan, benign_at, clusters[i]))
        return out

    def _plan(self) -> tuple[tuple[tuple[str, int, float], ...], int]:
        """Per risk label (label, its head column or -1, its head threshold); the benign column or -1."""
        head = self.head
        if head is None:
            return tuple((lab, -1, 0.5) for lab in RISK_LABELS), -1
        index = {lab: j for j, lab in enumerate(head.labels)}
        thresholds = head.thresholds
        return tuple((lab, index.get(lab, -1), thresholds.get(lab, 0.5)) for lab in RISK_LABELS), index.get("benign", -1)

    def _combine(
        self,
        it: TextInput,
        ex: Extraction,
        row: Sequence[float] | None,
        plan: tuple[tuple[str, int, float], ...],
        benign_at: int,
        cluster: PhraseStats | None,
    ) -> TextVerdict:
        if ex.empty:
            return TextVerdict(labels={}, confidences={}, tier="patterns", spans=(), language="und",
                               redacted="", field=it.field, empty=True)
        conf: dict[str, float] = {}
        flagged: dict[str, float] = {}
        decided: dict[str, str] = {}
        uncertain = False
        pattern_labels = ex.pattern_labels
        for lab, j, threshold in plan:
            p_pat = pattern_labels.get(lab, 0.0)
            if row is not None:
                p_head = row[j] if j >= 0 else 0.0
                head_flag = p_head >= threshold
            else:
                p_head, head_flag = 0.0, False
            hi = p_head if p_head > p_pat else p_pat  # max() and min(), inlined
            lo = p_head if p_head < p_pat else p_pat
            c = round(hi + 0.5 * lo * (1.0 - hi), 4)
            conf[lab] = c
            pat_flag = p_pat >= PATTERN_FLAG_AT
            if pat_flag or head_flag:
                flagged[lab] = c
                decided[lab] = "patterns" if pat_flag else "head"
            elif c >= UNCERTAIN_FROM:
                uncertain = True
        if row is not None and benign_at >= 0:
            conf["benign"] = round(row[benign_at] * (1.0 - max(flagged.values(), default=0.0)), 4)
            if not flagged and conf["benign"] < 0.5:
                uncertain = True
        else:
            conf["benign"] = round(1.0 - max(flagged.values(), default=0.0), 4)
        tier: Tier = "head" if row is not None else "patterns"
        if flagged:
            tier = max((decided[lab] for lab in flagged), key=lambda t: _TIER_RANK[t])  # type: ignore[assignment]
        labels = dict(flagged) if flagged else {"benign": conf["benign"]}
        spans = self._spans(it.field, ex, flagged, decided)
        risk = self._risk(flagged, cluster)
        return TextVerdict(
            labels=labels, confidences=conf, tier=tier, spans=spans, language=ex.language,
            redacted=ex.redacted, field=it.field, cluster=cluster, risk=risk, uncertain=uncertain,
            pii_count=len(ex.pii), decided_by=decided,
        )

    @staticmethod
    def _spans(fieldname: str, ex: Extraction, flagged: Mapping[str, float], decided: Mapping[str, str]) -> tuple[TextSpan, ...]:
        spans: list[TextSpan] = []
        for lab in flagged:
            hits = [h for h in ex.hits if h.label == lab]
            if hits:
                best = max(hits, key=lambda h: (h.confidence, h.end - h.start))
                spans.append(TextSpan(field=fieldname, start=best.start, end=best.end, label=lab,
                                      snippet=_snippet(ex.text, best.start, best.end, ex.pii)))
            else:
                # The head (or the gibberish score) read the whole text: quote its start.
                end = min(len(ex.text), 120)
                spans.append(TextSpan(field=fieldname, start=0, end=end, label=lab,
                                      snippet=_snippet(ex.text, 0, end, ex.pii)))
        return tuple(spans)

    @staticmethod
    def _risk(flagged: Mapping[str, float], cluster: PhraseStats | None) -> float:
        parts = [RISK_WEIGHTS.get(lab, 0.0) * c for lab, c in flagged.items()]
        if cluster is not None:
            parts.append(PHRASE_RISK_WEIGHT * cluster.stands_out)
        return round(_noisy_or(parts), 4)

    # ------------------------------------------------------------------ tier 3 merge
    def merge_llm(self, v: TextVerdict, answer: Mapping[str, float], *, flag_at: float = 0.5) -> TextVerdict:
        """Fold an LLM answer in: confidences by max, so tier 3 can only add or raise.

        A label flags when the LLM gives it at least ``flag_at`` (and more than tiers
        1-2 flagged it with); :class:`TextStage` passes its reviewer's own
        ``min_confidence``, the floor below which that reviewer drops labels anyway.
        """
        conf = dict(v.confidences)
        labels = {k: c for k, c in v.labels.items() if k != "benign"}
        decided = dict(v.decided_by)
        raised = False
        for lab, c in answer.items():
            if lab not in RISK_WEIGHTS:
                continue
            c = min(max(float(c), 0.0), 1.0)
            if c > conf.get(lab, 0.0):
                conf[lab] = round(c, 4)
            if c >= flag_at and c > labels.get(lab, 0.0):
                labels[lab] = round(c, 4)
                decided[lab] = "llm"
                raised = True
        if not labels:
            labels = {"benign": v.labels.get("benign", conf.get("benign", 0.0))}
        spans = v.spans
        new = [lab for lab, t in decided.items() if t == "llm" and all(s.label != lab for s in spans)]
        if new:
            end = min(len(v.redacted), 120)
            spans = spans + tuple(TextSpan(field=v.field, start=0, end=end, label=lab, snippet=v.redacted[:end]) for lab in new)
        tier: Tier = "llm" if raised else v.tier
        return replace(v, labels=labels, confidences=conf, tier=tier, spans=spans, decided_by=decided,
                       risk=max(v.risk, self._risk({k: c for k, c in labels.items() if k != "benign"}, v.cluster)),
                       uncertain=False)


def _order_inputs(order: Order) -> list[TextInput]:
    account = order.customer.customer_id or order.customer.email
    items = [
        TextInput(order.note, "note", account, f"{order.order_id}:note", order.created_at),
        TextInput(order.gift_message, "gift_message", account, f"{order.order_id}:gift", order.created_at),
    ]
    for name in ("shipping_address", "billing_address"):
        addr = getattr(order, name)
        if addr is None:
            continue
        for line in ("line1", "line2"):
            value = getattr(addr, line)
            if value:
                items.append(TextInput(value, f"{name}.{line}", account, None, None, embed=False, recurring=False))
    return items


class TextStage:
    """The engine's text stage: every free-text field of an order through tiers 1-2 (and 3).

    Parameters
    ----------
    classifier:
        Tiers 1-2 (:meth:`TextClassifier.default` for the shipped parts).
    llm:
        Optional tier 3, consulted only for :func:`needs_llm` texts; with
        ``budget_s <= 0`` only its cache answers.
    """

    schema = TEXT_FEATURES
    #: Tier-3 seam for late verdicts (``detector.redecide.LateVerdicts``, set by the
    #: composition root): orders whose LLM answer missed the budget are handed to it.
    late: Any = None

    def __init__(self, classifier: TextClassifier, *, llm: LlmReviewer | None = None) -> None:
        self.classifier = classifier
        self.llm = llm

    def analyze(self, orders: Sequence[Order], *, budget_s: float) -> list[TextResult]:
        per_order = [_order_inputs(o) for o in orders]
        results = self._analyze(per_order, budget_s=budget_s)
        if self.late is not None and budget_s > 0:
            # The texts exactly as tier 3 received them (redacted, cut), so the late
            # tracker finds their verdicts in the LLM cache.
            cut = self.classifier.extractor.max_chars
            for order, items, res in zip(orders, per_order, results, strict=True):
                if any(d.signal == "text_llm" and d.reason.startswith("no answer") for d in res.degraded):
                    self.late.track(order, [redact(it.text[:cut]) for it in items if it.text])
        return results

    def analyze_returns(self, returns: Sequence[ReturnRequest], *, budget_s: float) -> list[TextResult]:
        """The same for return requests: the reason text, clustered across accounts."""
        per = [
            [TextInput(r.reason, "reason", r.customer_id or r.email, f"{r.return_id}:reason", r.created_at)]
            for r in returns
        ]
        return self._analyze(per, budget_s=budget_s)

    def verdicts(
        self, per_subject: Sequence[Sequence[TextInput]], *, budget_s: float = 0.0
    ) -> tuple[list[list[TextVerdict]], list[list[Degradation]]]:
        """Verdicts per subject (tiers 1-2, then tier 3 within ``budget_s``) and what degraded."""
        flat = [it for items in per_subject for it in items if it.text]
        verdicts = self.classifier.classify(flat)
        flat_deg: list[list[Degradation]] = [[] for _ in verdicts]
        if self.llm is not None:
            verdicts, flat_deg = self._tier3(verdicts, budget_s=budget_s)
        out: list[list[TextVerdict]] = []
        degraded: list[list[Degradation]] = []
        pos = 0
        for items in per_subject:
            k = sum(1 for it in items if it.text)
            out.append(verdicts[pos : pos + k])
            seen: dict[str, Degradation] = {d.signal: d for d in self.classifier.degraded}
            for ds in flat_deg[pos : pos + k]:
                for d in ds:
                    seen.setdefault(d.signal, d)
            degraded.append(list(seen.values()))
            pos += k
        return out, degraded

    def _tier3(self, verdicts: list[TextVerdict], *, budget_s: float) -> tuple[list[TextVerdict], list[list[Degradation]]]:
        degraded: list[list[Degradation]] = [[] for _ in verdicts]
        picked = [i for i, v in enumerate(verdicts) if needs_llm(v)]
        if self.llm is None or not picked:
            return verdicts, degraded
        started = time.perf_counter()
        try:
            answers = self.llm.review(
                [verdicts[i].redacted for i in picked], budget_s=max(budget_s, 0.0), fields=[verdicts[i].field for i in picked]
            )
        except SignalUnavailable as exc:
            for i in picked:
                degraded[i].append(Degradation(signal=exc.signal, reason=exc.reason[:256]))
            return verdicts, degraded
        out = list(verdicts)
        spent = time.perf_counter() - started
        # The reviewer's confidence floor (LlmSettings.min_confidence) is where its labels flag.
        flag_at = float(getattr(self.llm, "min_confidence", 0.5))
        for k, i in enumerate(picked):
            ans = answers[k] if k < len(answers) else None
            if ans is None:
                if budget_s <= 0:
                    continue  # cache-only lookup: a miss is the normal case, not a degradation
                degraded[i].append(Degradation(signal="text_llm", reason=f"no answer within {budget_s:.3f}s (spent {spent:.3f}s)"))
                continue
            out[i] = self.classifier.merge_llm(out[i], ans, flag_at=flag_at)
        return out, degraded

    def _analyze(self, per_subject: Sequence[Sequence[TextInput]], *, budget_s: float) -> list[TextResult]:
        grouped, degraded = self.verdicts(per_subject, budget_s=budget_s)
        prompt = getattr(self.llm, "prompt_version", None) if self.llm is not None else None
        return [self._result(vs, ds, prompt) for vs, ds in zip(grouped, degraded, strict=True)]

    @staticmethod
    def _result(vs: Sequence[TextVerdict], degraded: Sequence[Degradation], prompt: str | None) -> TextResult:
        labels: dict[str, float] = {}
        conf = dict.fromkeys(RISK_LABELS, 0.0)
        spans: list[TextSpan] = []
        parts: list[float] = []
        cluster: PhraseStats | None = None
        pii = 0
        for v in vs:
            for lab, c in v.labels.items():
                if lab != "benign" and c > labels.get(lab, 0.0):
                    labels[lab] = c
            for lab in RISK_LABELS:
                conf[lab] = max(conf[lab], v.confidences.get(lab, 0.0))
            spans.extend(v.spans)
            parts.append(v.risk)
            pii += v.pii_count
            if v.cluster is not None and (cluster is None or v.cluster.stands_out > cluster.stands_out
                                          or v.cluster.accounts_7d > cluster.accounts_7d):
                cluster = v.cluster
            if v.cluster is not None and v.cluster.stands_out >= RECURRING_LABEL_AT:
                # The same phrasing across many accounts is a reason an analyst should
                # read, with the text quoted (already redacted).
                score = round(v.cluster.stands_out, 4)
                if score > labels.get(RECURRING_LABEL, 0.0):
                    labels[RECURRING_LABEL] = score
                    end = min(len(v.redacted), 120)
                    spans.append(TextSpan(field=v.field, start=0, end=end, label=RECURRING_LABEL,
                                          snippet=v.redacted[:end]))
        features: dict[str, float] = {
            "text_risk": round(_noisy_or(parts), 4),
            "phrase_cluster_size_7d": float(cluster.size_7d) if cluster else 0.0,
            "phrase_cluster_accounts_7d": float(cluster.accounts_7d) if cluster else 0.0,
            "phrase_cluster_stands_out": float(cluster.stands_out) if cluster else 0.0,
            "text_pii_count": float(pii),
        }
        features.update({f"text_conf_{lab}": round(c, 4) for lab, c in conf.items()})
        return TextResult(
            features=features,
            labels={k: round(v, 4) for k, v in labels.items()},
            spans=tuple(spans[:20]),
            degraded=tuple(degraded),
            risk=features["text_risk"],
            prompt_version=prompt,
            cluster_id=cluster.cluster_id if cluster is not None and cluster.accounts_7d > 1 else None,
        )



@lru_cache(maxsize=1)
def shared_extractor() -> TextExtractor:
    """One tier-1 extractor per process: the spaCy pattern build takes seconds, then it is read-only."""
    return TextExtractor()


@lru_cache(maxsize=1)
def shared_embedder() -> Embedder:
    """One embedder per process (31 MB of weights and the LRU cache, thread-safe)."""
    return Embedder()


@lru_cache(maxsize=4)
def _shared_head(path: str | None) -> TextHead | None:
    from contracts import ConfigError

    try:
        return TextHead.load(path)
    except ConfigError:
        return None


def build_text_stage(settings: Any, *, metrics: Any = None, state: Any = None) -> TextStage:
    """The text stage from settings: shared tier-1/2 parts, recurring phrasing on the
    configured state backend, and tier 3 when ``llm.enabled``."""
    from features.state import build_state

    if state is None:
        st = settings.state
        state = build_state(st.backend, redis_url=st.redis_url, key_prefix=st.key_prefix)
    embedder = shared_embedder()
    classifier = TextClassifier(
        extractor=shared_extractor(),
        embedder=embedder,
        head=_shared_head(None),
        phrasing=PhraseClusterer.with_baseline(embedder.encode, state),
    )
    llm = None
    if getattr(settings.llm, "enabled", False):
        from detector.llm import build_llm

        redis_url = settings.state.redis_url if settings.state.backend == "redis" else None
        llm = build_llm(settings.llm, metrics=metrics, redis_url=redis_url, key_prefix=settings.state.key_prefix)
    return TextStage(classifier, llm=llm)
