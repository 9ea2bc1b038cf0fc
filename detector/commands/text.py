"""Text commands: ``riskwire text classify`` (triage exports) and ``riskwire text train`` (build the head).

``classify`` reads JSONL ``{"id", "text"}`` (optionally ``"account"``, ``"at"`` ISO
time, ``"field"``) or plain lines, and writes one JSON object per input with the
flagged labels, every confidence, the tier that decided, the spans (PII-masked), the
recurring-phrase cluster and the redacted text. Raw text is never echoed back: the
output is safe to share. ``--llm`` adds tier 3 for the texts tiers 1-2 are unsure
about or flag (local llama.cpp server unless ``RISKWIRE_LLM__BASE_URL`` is set).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Annotated, Any

import typer

__all__ = ["iter_inputs", "register", "verdict_json"]

text_app = typer.Typer(help="Free-text signals: classify texts, build the classifier head.", no_args_is_help=True)


def iter_inputs(fh: IO[str]) -> Iterator[dict[str, Any]]:
    """JSONL objects with "text" (and "id"), or plain lines (id = line number)."""
    for n, line in enumerate(fh, 1):
        raw = line.rstrip("\n")
        if not raw.strip():
            continue
        if raw.lstrip().startswith("{"):
            try:
                obj = json.loads(raw)
            except json.JSONDecodeError:
                obj = None
            if isinstance(obj, dict) and "text" in obj:
                obj.setdefault("id", str(n))
                yield obj
                continue
        yield {"id": str(n), "text": raw}


def _parse_at(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        return None
    return at if at.tzinfo is not None else None


def verdict_json(item_id: str, v: Any) -> dict[str, Any]:
    cluster = v.cluster
    return {
        "id": item_id,
        "labels": v.labels,
        "confidences": v.confidences,
        "tier": v.tier,
        "decided_by": v.decided_by,
        "language": v.language,
        "risk": v.risk,
        "uncertain": v.uncertain,
        "spans": [{"label": s.label, "start": s.start, "end": s.end, "snippet": s.snippet} for s in v.spans],
        "cluster_id": cluster.cluster_id if cluster is not None else None,
        "phrase_cluster_size_7d": cluster.size_7d if cluster is not None else None,
        "phrase_cluster_accounts_7d": cluster.accounts_7d if cluster is not None else None,
        "phrase_cluster_stands_out": cluster.stands_out if cluster is not None else None,
        "phrase_common": cluster.common if cluster is not None else None,
        "redacted": v.redacted,
    }


def _classify(
    inp: IO[str], out: IO[str], *, batch: int, llm: bool, budget_s: float, head: Path | None
) -> dict[str, int]:
    from detector.text_stage import TextClassifier, TextInput, TextStage

    classifier = TextClassifier.default(head_path=str(head) if head else None)
    reviewer = None
    if llm:
        from detector.llm import build_llm
        from detector.settings import Settings

        reviewer = build_llm(Settings().llm, force=True)
    stage = TextStage(classifier, llm=reviewer)
    counts: dict[str, int] = {"texts": 0}
    # Texts without a time are placed at the run's time, so one export clusters as one
    # window (recurring phrasing across the file's accounts).
    run_at = datetime.now(UTC)

    def flush(chunk: list[dict[str, Any]]) -> None:
        items = [
            TextInput(
                str(obj.get("text") or ""),
                str(obj.get("field") or "note"),
                account=str(obj["account"]) if obj.get("account") is not None else None,
                event_id=f"cli:{obj['id']}",
                at=_parse_at(obj.get("at")) or run_at,
            )
            for obj in chunk
        ]
        grouped, degraded = stage.verdicts([[it] for it in items], budget_s=budget_s if llm else 0.0)
        for obj, vs, ds in zip(chunk, grouped, degraded, strict=True):
            if vs:
                record = verdict_json(str(obj["id"]), vs[0])
            else:
                record = {"id": str(obj["id"]), "labels": {}, "confidences": {}, "tier": None, "spans": [],
                          "cluster_id": None, "empty": True}
            if ds:
                record["degraded"] = [{"signal": d.signal, "reason": d.reason} for d in ds]
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
            counts["texts"] += 1
            for lab in record["labels"]:
                counts[lab] = counts.get(lab, 0) + 1

    chunk: list[dict[str, Any]] = []
    for obj in iter_inputs(inp):
        chunk.append(obj)
        if len(chunk) >= batch:
            flush(chunk)
            chunk = []
    if chunk:
        flush(chunk)
    if reviewer is not None:
        close = getattr(reviewer, "close", None)
        if close is not None:
            close()
    return counts


@text_app.command("classify")
def classify_cmd(
    source: Annotated[Path, typer.Argument(help="JSONL {id, text} or plain lines; '-' for stdin.")] = Path("-"),
    output: Annotated[Path, typer.Option("--output", "-o", help="Where to write JSONL; '-' for stdout.")] = Path("-"),
    llm: Annotated[bool, typer.Option("--llm/--no-llm", help="Enable tier 3 (LLM) for unsure or flagged texts.")] = False,
    budget_s: Annotated[float, typer.Option(help="Tier-3 budget per batch, seconds.")] = 5.0,
    batch: Annotated[int, typer.Option(min=1, max=10_000, help="Texts per micro-batch.")] = 256,
    head: Annotated[Path | None, typer.Option(help="Head artifact (.npz); default: the packaged one.")] = None,
) -> None:
    """Classify free texts with tiers 1-2 (and 3 with --llm); JSONL out, PII masked."""
    inp = sys.stdin if str(source) == "-" else source.open(encoding="utf-8")
    out = sys.stdout if str(output) == "-" else output.open("w", encoding="utf-8")
    try:
        counts = _classify(inp, out, batch=batch, llm=llm, budget_s=budget_s, head=head)
    finally:
        if inp is not sys.stdin:
            inp.close()
        if out is not sys.stdout:
            out.close()
    typer.echo(json.dumps(counts, sort_keys=True), err=True)


@text_app.command("train")
def train_cmd(
    out: Annotated[Path | None, typer.Option(help="Where to write the head (.npz); default: the packaged artifact.")] = None,
    data_dir: Annotated[Path | None, typer.Option(help="Folder with text/sms_spam_collection (default ../shared/data).")] = None,
    curated: Annotated[Path | None, typer.Option(help="Curated JSONL (default models/text/data/curated.jsonl).")] = None,
    no_sms: Annotated[bool, typer.Option("--no-sms", help="Train on the curated set only.")] = False,
) -> None:
    """Build the tier-2 classifier head (reproducible: fixed seeds, no pickle)."""
    from detector.text_train import train_head

    head, report, path = train_head(out=out, data_dir=data_dir, curated=curated, use_sms=not no_sms)
    typer.echo(json.dumps({"path": str(path), "version": head.version, "rows": report.n_rows, "sources": report.sources,
                           "cv_auroc": report.cv_auroc, "thresholds": report.thresholds}, indent=2))


def register(app: typer.Typer) -> None:
    app.add_typer(text_app, name="text")
