"""Build the tier-2 head: the curated multilingual set (in the repo) plus public SMS spam when present.

``riskwire text train`` calls :func:`train_head`; ``bench/text_eval.py`` reuses the
loaders. The shipped artifact (``models/text/artifacts/head.npz``) is what this
produces on a machine with ``../shared/data``; without it the head is trained on the
curated set alone (reported in the artifact's metadata under ``sources``).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from contracts import ConfigError
from features.text.embed import Embedder
from features.text.extract import TextExtractor
from features.text.labels import LABELS, RISK_LABELS
from models.text.head import DEFAULT_HEAD_PATH, HeadReport, TextHead, fit_head

__all__ = [
    "CURATED_PATH",
    "LabelledText",
    "default_data_dir",
    "encode_rows",
    "label_matrix",
    "load_curated",
    "load_sms",
    "train_head",
]

CURATED_PATH = DEFAULT_HEAD_PATH.parent.parent / "data" / "curated.jsonl"


@dataclass(frozen=True, slots=True)
class LabelledText:
    text: str
    labels: tuple[str, ...]
    lang: str = "en"
    group: str = ""
    source: str = "curated"


def default_data_dir() -> Path:
    """``../shared/data`` next to the checkout (absent on a user's machine)."""
    return Path(__file__).resolve().parent.parent.parent / "shared" / "data"


def load_curated(path: str | Path | None = None) -> list[LabelledText]:
    p = Path(path) if path is not None else CURATED_PATH
    rows: list[LabelledText] = []
    with p.open(encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            d = json.loads(line)
            labels = tuple(d["labels"])
            unknown = set(labels) - set(LABELS)
            if unknown:
                raise ConfigError(f"{p}:{n}: unknown labels {sorted(unknown)}")
            rows.append(LabelledText(d["text"], labels, d.get("lang", "und"), d.get("group", ""), "curated"))
    return rows


def load_sms(data_dir: str | Path | None = None) -> list[LabelledText]:
    """SMS Spam Collection (spam -> spam_scam, ham -> benign); [] when absent."""
    base = Path(data_dir) if data_dir is not None else default_data_dir()
    p = base / "text" / "sms_spam_collection" / "SMSSpamCollection"
    if not p.is_file():
        return []
    rows = []
    with p.open(encoding="utf-8", errors="replace") as fh:
        for i, rec in enumerate(csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE)):
            if len(rec) < 2 or (i == 0 and rec[0].lower() == "label"):
                continue
            label = rec[0].strip().lower()
            text = "\t".join(rec[1:])
            rows.append(LabelledText(text, ("spam_scam",) if label == "spam" else ("benign",), "en", "", "sms"))
    return rows


def label_matrix(rows: Sequence[LabelledText], labels: Sequence[str] = LABELS) -> np.ndarray:
    Y = np.zeros((len(rows), len(labels)), dtype=np.int8)
    index = {lab: j for j, lab in enumerate(labels)}
    for i, r in enumerate(rows):
        risky = [lab for lab in r.labels if lab in RISK_LABELS]
        for lab in risky:
            Y[i, index[lab]] = 1
        if not risky:
            Y[i, index["benign"]] = 1
    return Y


def encode_rows(
    texts: Sequence[str], *, extractor: TextExtractor | None = None, embedder: Embedder | None = None
) -> np.ndarray:
    """The head's input matrix for raw texts (tier 1 + embeddings), as the stage builds it."""
    from detector.text_stage import head_inputs

    extractor = extractor or TextExtractor()
    embedder = embedder or Embedder(cache_size=0)
    ex = extractor.extract(texts)
    E = embedder.encode([e.embed_input for e in ex])
    return head_inputs(ex, E)


def train_head(
    *,
    out: str | Path | None = None,
    data_dir: str | Path | None = None,
    curated: str | Path | None = None,
    use_sms: bool = True,
    curated_weight: float = 4.0,
) -> tuple[TextHead, HeadReport, Path]:
    """Fit the head on the curated set (+ SMS when present) and save it (``.npz``)."""
    from detector.text_stage import head_feature_names

    rows = load_curated(curated)
    sms = load_sms(data_dir) if use_sms else []
    all_rows = rows + sms
    X = encode_rows([r.text for r in all_rows])
    Y = label_matrix(all_rows)
    # The curated rows are few but are the shop's own kind of text: weigh them up so
    # thousands of SMS do not drown them.
    w = np.array([curated_weight if r.source == "curated" else 1.0 for r in all_rows])
    sources = {"curated": len(rows), "sms": len(sms)}
    head, report = fit_head(X, Y, labels=LABELS, feature_names=head_feature_names(), sample_weight=w, sources=sources)
    path = head.save(out if out is not None else DEFAULT_HEAD_PATH)
    return head, report, path
