"""The analyst review queue: case store, sinks, and the loop from verdict to Label.

Wiring (see ``detector.wiring``)::

    store = CaseStore.from_url(settings.store.database_url)
    services.decision_sinks.append(CaseSink(store, metrics=services.metrics))
    services.extras["case_store"] = store
    services.label_sinks.append(LabelSink(store, metrics=services.metrics))
"""

from detector.review.sink import (
    CaseSink,
    LabelSink,
    apply_bulk_verdict,
    apply_verdict,
    publish_labels,
)
from detector.review.store import (
    VERDICTS,
    CaseConflict,
    CaseNotFound,
    CaseStore,
    QueueFilter,
    ReviewError,
    create_db_engine,
)

__all__ = [
    "VERDICTS",
    "CaseConflict",
    "CaseNotFound",
    "CaseSink",
    "CaseStore",
    "LabelSink",
    "QueueFilter",
    "ReviewError",
    "apply_bulk_verdict",
    "apply_verdict",
    "create_db_engine",
    "publish_labels",
]
