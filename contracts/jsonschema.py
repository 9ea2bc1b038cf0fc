"""JSON Schemas of the wire events, exported for producers and consumers in other languages."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel

from contracts.events import Decision, Label, Order, ReturnRequest

__all__ = ["EVENT_TYPES", "export_schemas", "schema_documents"]

EVENT_TYPES: dict[str, type[BaseModel]] = {
    "order": Order,
    "return_request": ReturnRequest,
    "label": Label,
    "decision": Decision,
}


def schema_documents() -> dict[str, str]:
    """File name -> JSON text, stable (sorted keys) so the checked-in copies can be diffed."""
    docs: dict[str, str] = {}
    for name, model in EVENT_TYPES.items():
        mode = "serialization" if model is Decision else "validation"
        schema = model.model_json_schema(mode=mode)
        schema["$id"] = f"https://riskwire.dev/schemas/{name}.v1.json"
        docs[f"{name}.v1.json"] = json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    return docs


def export_schemas(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for filename, text in schema_documents().items():
        path = directory / filename
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written
