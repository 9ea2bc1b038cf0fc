"""Generate riskwire's Grafana dashboards (JSON) with grafana-foundation-sdk (Grafana 11.6 target).

    .venv/bin/python deploy/grafana/generate.py           # write deploy/grafana/dashboards/*.json
    .venv/bin/python deploy/grafana/generate.py --check   # exit 1 if the checked-in JSON is stale

Three dashboards: Overview (throughput, actions, latency, lag, errors, LLM), Detection
(score distribution, decline/review rates, rules, reasons, drift) and Review queue (depth,
age, verdicts). Every dashboard has a Prometheus datasource variable and two filters:
``worker`` (the scrape job: ``riskwire-worker``, ``riskwire-api``) and ``instance``.
Panel ids and grid positions are set here, so the output is byte-for-byte reproducible.

Queries use ``$__rate_interval`` (graphs) and ``$__range`` (top-k tables over the chosen
time range); ``tests/observability`` runs every one against a real Prometheus.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from grafana_foundation_sdk.builders import bargauge, heatmap, piechart, stat, table, timeseries
from grafana_foundation_sdk.builders.common import (
    GraphThresholdsStyleConfig,
    ReduceDataOptions,
    VizLegendOptions,
)
from grafana_foundation_sdk.builders.dashboard import (
    Dashboard,
    DatasourceVariable,
    QueryVariable,
    Row,
    ThresholdsConfig,
)
from grafana_foundation_sdk.builders.prometheus import Dataquery
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.common import (
    BigValueGraphMode,
    GraphThresholdsStyleMode,
    LegendDisplayMode,
    LegendPlacement,
)
from grafana_foundation_sdk.models.dashboard import (
    DashboardCursorSync,
    DataSourceRef,
    GridPos,
    Threshold,
    ThresholdsMode,
    VariableHide,
    VariableOption,
    VariableRefresh,
    VariableSort,
)
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

__all__ = ["DASHBOARDS", "OUT_DIR", "SELECTOR", "build_all", "render_all", "write_all"]

OUT_DIR = Path(__file__).resolve().parent / "dashboards"
DS = DataSourceRef(type_val="prometheus", uid="${datasource}")
#: Every query filters on both template variables.
SELECTOR = 'job=~"$worker", instance=~"$instance"'
RATE = "$__rate_interval"
RANGE = "$__range"
TAGS = ["riskwire"]


def sel(extra: str = "") -> str:
    return "{" + SELECTOR + (", " + extra if extra else "") + "}"


DECLINE = sel('action="decline"')
REVIEW = sel('action="review"')
HIT = sel('result="hit"')


def query(expr: str, legend: str = "", *, ref: str = "A", instant: bool = False,
          fmt: PromQueryFormat | None = None) -> Dataquery:
    q = Dataquery().expr(expr).ref_id(ref).datasource(DS)
    if legend:
        q = q.legend_format(legend)
    q = q.instant() if instant else q.range()
    if fmt is not None:
        q = q.format(fmt)
    return q


def ratio(num: str, den: str) -> str:
    # clamp_min keeps the ratio defined (0) when nothing flows instead of NaN.
    return f"({num}) / clamp_min({den}, 1e-9)"


def quantile(q: float, metric: str, by: str = "", extra: str = "") -> str:
    labels = "le" + (", " + by if by else "")
    return f"histogram_quantile({q}, sum by ({labels}) (rate({metric}_bucket{sel(extra)}[{RATE}])))"


def thresholds(*steps: tuple[float | None, str]) -> ThresholdsConfig:
    return ThresholdsConfig().mode(ThresholdsMode.ABSOLUTE).steps(
        [Threshold(value=v, color=c) for v, c in steps]
    )


@dataclass
class Grid:
    """Places panels left to right in 24 columns and numbers them; ids are stable."""

    x: int = 0
    y: int = 0
    row_h: int = 0
    next_id: int = 1
    panels: list[object] = field(default_factory=list)

    def take_id(self) -> int:
        i = self.next_id
        self.next_id += 1
        return i

    def place(self, w: int, h: int) -> GridPos:
        if self.x + w > 24:
            self.x, self.y, self.row_h = 0, self.y + self.row_h, 0
        pos = GridPos(h=h, w=w, x=self.x, y=self.y)
        self.x += w
        self.row_h = max(self.row_h, h)
        return pos

    def row(self, title: str) -> Row:
        if self.x:
            self.x, self.y, self.row_h = 0, self.y + self.row_h, 0
        r = Row(title).id(self.take_id()).grid_pos(GridPos(h=1, w=24, x=0, y=self.y))
        self.y += 1
        return r


def _legend(panel: timeseries.Panel) -> timeseries.Panel:
    return panel.legend(
        VizLegendOptions().display_mode(LegendDisplayMode.LIST).placement(LegendPlacement.BOTTOM).show_legend(True)
    )


def ts(g: Grid, title: str, targets: Sequence[Dataquery], *, unit: str = "short", w: int = 12, h: int = 8,
       description: str = "", thr: ThresholdsConfig | None = None) -> timeseries.Panel:
    p = (
        timeseries.Panel().id(g.take_id()).title(title).datasource(DS).unit(unit)
        .grid_pos(g.place(w, h)).targets(list(targets)).line_width(1).fill_opacity(10)
    )
    if description:
        p = p.description(description)
    if thr is not None:
        p = p.thresholds(thr).thresholds_style(GraphThresholdsStyleConfig().mode(GraphThresholdsStyleMode.LINE))
    return _legend(p)


def single(g: Grid, title: str, target: Dataquery, *, unit: str = "short", w: int = 6, h: int = 4,
           description: str = "", thr: ThresholdsConfig | None = None) -> stat.Panel:
    p = (
        stat.Panel().id(g.take_id()).title(title).datasource(DS).unit(unit).grid_pos(g.place(w, h))
        .targets([target]).graph_mode(BigValueGraphMode.AREA)
        .reduce_options(ReduceDataOptions().calcs(["lastNotNull"]).values(False))
    )
    if description:
        p = p.description(description)
    if thr is not None:
        p = p.thresholds(thr)
    return p


def ranking(g: Grid, title: str, target: Dataquery, *, w: int = 12, h: int = 8, description: str = ""
            ) -> bargauge.Panel:
    p = (
        bargauge.Panel().id(g.take_id()).title(title).datasource(DS).unit("short").grid_pos(g.place(w, h))
        .targets([target]).reduce_options(ReduceDataOptions().calcs(["lastNotNull"]).values(False))
    )
    return p.description(description) if description else p


# -- Overview ---------------------------------------------------------------------------------


def overview() -> Dashboard:
    g = Grid()
    d = _dashboard("riskwire — Overview", "riskwire-overview",
                   "Throughput, actions, latency, Kafka lag, errors and LLM health of every riskwire process.")
    decisions = f"sum(rate(riskwire_decisions_total{sel()}[{RATE}]))"

    d = d.with_row(g.row("Now"))
    d = d.with_panel(single(g, "Decisions / s", query(decisions), unit="reqps",
                            description="Orders decided per second, checkout and stream together."))
    d = d.with_panel(single(
        g, "Decline rate", query(ratio(f'sum(rate(riskwire_decisions_total{DECLINE}[{RATE}]))', decisions)),
        unit="percentunit", thr=thresholds((None, "green"), (0.05, "orange"), (0.1, "red")),
    ))
    d = d.with_panel(single(
        g, "p99 checkout latency", query(quantile(0.99, "riskwire_decision_latency_seconds", extra='path="sync"')),
        unit="s", thr=thresholds((None, "green"), (0.008, "orange"), (0.01, "red")),
        description="Engine time of POST /v1/score; the budget is 10 ms.",
    ))
    d = d.with_panel(single(
        g, "Consumer lag", query(f"sum(riskwire_consumer_lag_messages{sel()})"), unit="short",
        thr=thresholds((None, "green"), (1000, "orange"), (10000, "red")),
        description="Records behind the high watermark, all partitions.",
    ))

    d = d.with_row(g.row("Throughput and actions"))
    d = d.with_panel(ts(g, "Decisions by path", [
        query(f"sum by (path) (rate(riskwire_decisions_total{sel()}[{RATE}]))", "{{path}}"),
    ], unit="reqps"))
    d = d.with_panel(ts(g, "Actions", [
        query(f"sum by (action) (rate(riskwire_decisions_total{sel()}[{RATE}]))", "{{action}}"),
    ], unit="reqps"))

    d = d.with_row(g.row("Latency"))
    d = d.with_panel(ts(g, "Decision latency p50 / p99", [
        query(quantile(0.5, "riskwire_decision_latency_seconds", "path"), "p50 {{path}}", ref="A"),
        query(quantile(0.99, "riskwire_decision_latency_seconds", "path"), "p99 {{path}}", ref="B"),
    ], unit="s", thr=thresholds((None, "green"), (0.01, "red")),
        description="Engine time per decision; on the stream path a batch's time divided by its size."))
    d = d.with_panel(ts(g, "Stage latency p99", [
        query(quantile(0.99, "riskwire_stage_latency_seconds", "stage"), "{{stage}}"),
    ], unit="s", description="One call of each stage (an order on checkout, a batch on the stream)."))
    d = d.with_panel(ts(g, "End-to-end latency p99 (event time to decision)", [
        query(quantile(0.99, "riskwire_end_to_end_latency_seconds", "path, origin"), "{{path}} from {{origin}}"),
    ], unit="s", w=24, description="Decision time minus the order's event time (or broker timestamp): "
                                    "queueing and consumer lag included."))

    d = d.with_row(g.row("Kafka"))
    d = d.with_panel(ts(g, "Consumer lag per partition", [
        query(f"sum by (topic, partition) (riskwire_consumer_lag_messages{sel()})", "{{topic}}[{{partition}}]"),
    ], w=8, description="High watermark minus position (computed from the fetch high watermark)."))
    d = d.with_panel(ts(g, "Records in, decided, dead-lettered", [
        query(f"sum by (topic) (rate(riskwire_messages_in_total{sel()}[{RATE}]))", "in {{topic}}", ref="A"),
        query(f"sum by (topic) (rate(riskwire_messages_decided_total{sel()}[{RATE}]))", "decided {{topic}}", ref="B"),
        query(f"sum by (topic) (rate(riskwire_dead_letters_total{sel()}[{RATE}]))", "dead letter {{topic}}", ref="C"),
    ], unit="reqps", w=8))
    d = d.with_panel(ts(g, "Rebalances", [
        query(f"sum by (kind) (increase(riskwire_consumer_rebalances_total{sel()}[{RATE}]))", "{{kind}}"),
    ], w=8))

    d = d.with_row(g.row("Errors"))
    d = d.with_panel(ts(g, "Model errors and degraded decisions", [
        query(f"sum by (model) (rate(riskwire_model_errors_total{sel()}[{RATE}]))", "model error {{model}}", ref="A"),
        query(f"sum by (signal) (rate(riskwire_degraded_decisions_total{sel()}[{RATE}]))", "degraded: {{signal}}", ref="B"),
    ], unit="reqps"))
    d = d.with_panel(ts(g, "Dead letters by error", [
        query(f"sum by (error) (rate(riskwire_dead_letters_total{sel()}[{RATE}]))", "{{error}}"),
    ], unit="reqps"))

    d = d.with_row(g.row("LLM"))
    d = d.with_panel(ts(g, "LLM share of decisions", [
        query(ratio(f'sum(rate(riskwire_llm_requests_total{sel()}[{RATE}]))', decisions), "LLM calls / decisions"),
    ], unit="percentunit", w=8))
    d = d.with_panel(ts(g, "LLM calls by outcome", [
        query(f"sum by (outcome) (rate(riskwire_llm_requests_total{sel()}[{RATE}]))", "{{outcome}}", ref="A"),
        query(ratio(f'sum(rate(riskwire_llm_cache_total{HIT}[{RATE}]))',
                    f"sum(rate(riskwire_llm_cache_total{sel()}[{RATE}]))"), "cache hit ratio", ref="B"),
    ], w=8))
    d = d.with_panel(ts(g, "LLM circuit breaker", [
        query(f"max by (instance) (riskwire_llm_breaker_open{sel()})", "open on {{instance}}"),
    ], w=8, thr=thresholds((None, "green"), (1, "red")), description="1 while the breaker is open."))

    d = d.with_row(g.row("Build"))
    d = d.with_panel(
        table.Panel().id(g.take_id()).title("Running versions").datasource(DS).grid_pos(g.place(24, 6))
        .targets([query(f"max by (job, instance, version, model, ruleset) (riskwire_build_info{sel()}) == 1",
                        instant=True, fmt=PromQueryFormat.TABLE)])
    )
    return d


# -- Detection --------------------------------------------------------------------------------


def detection() -> Dashboard:
    g = Grid()
    d = _dashboard("riskwire — Detection", "riskwire-detection",
                   "What the engine decides and why: scores, rates, rules, reasons and drift.")
    total = f"sum by (path) (rate(riskwire_decisions_total{sel()}[{RATE}]))"

    d = d.with_row(g.row("Scores"))
    d = d.with_panel(
        heatmap.Panel().id(g.take_id()).title("Score distribution").datasource(DS).grid_pos(g.place(12, 9))
        .targets([query(f"sum by (le) (increase(riskwire_decision_score_bucket{sel()}[{RATE}]))", "{{le}}",
                        fmt=PromQueryFormat.HEATMAP)])
        .description("Decisions per score bucket (0-100) over time.")
        # The buckets come from the histogram already; Grafana must not re-bucket them.
        .calculate(False)
    )
    d = d.with_panel(ts(g, "Score quantiles", [
        query(quantile(0.5, "riskwire_decision_score"), "p50", ref="A"),
        query(quantile(0.9, "riskwire_decision_score"), "p90", ref="B"),
        query(quantile(0.99, "riskwire_decision_score"), "p99", ref="C"),
    ], h=9))

    d = d.with_row(g.row("Actions"))
    d = d.with_panel(ts(g, "Decline rate", [
        query(ratio(f'sum by (path) (rate(riskwire_decisions_total{DECLINE}[{RATE}]))', total),
              "{{path}}"),
    ], unit="percentunit"))
    d = d.with_panel(ts(g, "Review rate", [
        query(ratio(f'sum by (path) (rate(riskwire_decisions_total{REVIEW}[{RATE}]))', total),
              "{{path}}"),
    ], unit="percentunit"))

    d = d.with_row(g.row("Rules and reasons"))
    d = d.with_panel(ranking(g, "Top rules (hits in range)", query(
        f"topk(10, sum by (rule_id, shadow) (increase(riskwire_rule_hits_total{sel()}[{RANGE}])))",
        "{{rule_id}} (shadow={{shadow}})", instant=True),
        description="Shadow rules are evaluated and counted but never act."))
    d = d.with_panel(ranking(g, "Top reasons (in range)", query(
        f"topk(10, sum by (code) (increase(riskwire_decision_reasons_total{sel()}[{RANGE}])))",
        "{{code}}", instant=True)))
    d = d.with_panel(ts(g, "Rule hits by rule", [
        query(f"sum by (rule_id, action) (rate(riskwire_rule_hits_total{sel()}[{RATE}]))", "{{rule_id}} → {{action}}"),
    ], unit="reqps", w=24))

    d = d.with_row(g.row("Drift"))
    d = d.with_panel(ts(g, "Population stability (PSI) vs training window", [
        query(f"max by (feature) (riskwire_drift_psi{sel()})", "{{feature}}"),
    ], w=16, thr=thresholds((None, "green"), (0.1, "orange"), (0.25, "red")),
        description="< 0.1 stable; 0.1-0.25 worth a look; > 0.25 the model no longer sees its training population."))
    d = d.with_panel(single(g, "Degraded decisions", query(ratio(
        f"sum(rate(riskwire_degraded_decisions_total{sel()}[{RATE}]))",
        f"sum(rate(riskwire_decisions_total{sel()}[{RATE}]))")), unit="percentunit", w=8, h=8,
        description="Decisions made without one of their signals (model, text, LLM)."))
    return d


# -- Review queue -----------------------------------------------------------------------------


def review_queue() -> Dashboard:
    g = Grid()
    d = _dashboard("riskwire — Review queue", "riskwire-review-queue",
                   "The analysts' queue: how much waits, for how long, and what the verdicts are.")
    d = d.with_row(g.row("Queue"))
    d = d.with_panel(single(g, "Open cases", query(f"sum(riskwire_review_queue_depth{sel()})"), w=8))
    d = d.with_panel(single(g, "Oldest open case", query(f"max(riskwire_review_queue_oldest_age_seconds{sel()})"),
                            unit="s", w=8, thr=thresholds((None, "green"), (3600, "orange"), (4 * 3600, "red"))))
    d = d.with_panel(single(g, "Verdicts (in range)", query(
        f"sum(increase(riskwire_review_verdicts_total{sel()}[{RANGE}]))", instant=True), w=8))
    d = d.with_panel(ts(g, "Queue depth by state", [
        query(f"max by (state) (riskwire_review_queue_depth{sel()})", "{{state}}"),
    ]))
    d = d.with_panel(ts(g, "Age of the oldest open case", [
        query(f"max(riskwire_review_queue_oldest_age_seconds{sel()})", "oldest"),
    ], unit="s"))

    d = d.with_row(g.row("Verdicts"))
    d = d.with_panel(
        piechart.Panel().id(g.take_id()).title("Verdict mix (in range)").datasource(DS).grid_pos(g.place(8, 8))
        .targets([query(f"sum by (verdict) (increase(riskwire_review_verdicts_total{sel()}[{RANGE}]))",
                        "{{verdict}}", instant=True)])
    )
    d = d.with_panel(ts(g, "Verdicts over time", [
        query(f"sum by (verdict) (rate(riskwire_review_verdicts_total{sel()}[{RATE}]))", "{{verdict}}"),
    ], unit="reqps", w=8))
    d = d.with_panel(ts(g, "Inflow vs verdicts", [
        query(f'sum(rate(riskwire_decisions_total{REVIEW}[{RATE}]))', "sent to review", ref="A"),
        query(f"sum(rate(riskwire_review_verdicts_total{sel()}[{RATE}]))", "verdicts", ref="B"),
    ], unit="reqps", w=8, description="When inflow stays above verdicts, the queue grows."))
    return d


def _dashboard(title: str, uid: str, description: str) -> Dashboard:
    all_opt = VariableOption(selected=True, text="All", value="$__all")
    worker = (
        QueryVariable("worker").label("Worker").datasource(DS)
        .query({"query": "label_values(riskwire_build_info, job)", "refId": "worker"})
        .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED).sort(VariableSort.ALPHABETICAL_ASC)
        .multi(True).include_all(True).all_value(".*").current(all_opt)
    )
    instance = (
        QueryVariable("instance").label("Instance").datasource(DS)
        .query({"query": 'label_values(riskwire_build_info{job=~"$worker"}, instance)', "refId": "instance"})
        .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED).sort(VariableSort.ALPHABETICAL_ASC)
        .multi(True).include_all(True).all_value(".*").current(all_opt)
    )
    datasource = (
        DatasourceVariable("datasource").label("Prometheus").type("prometheus")
        .hide(VariableHide.DONT_HIDE)
        .current(VariableOption(selected=True, text="Prometheus", value="riskwire-prometheus"))
    )
    return (
        Dashboard(title).uid(uid).description(description).tags(TAGS).editable()
        .tooltip(DashboardCursorSync.CROSSHAIR).time("now-1h", "now").refresh("30s").timezone("utc")
        .with_variable(datasource).with_variable(worker).with_variable(instance)
    )


DASHBOARDS = {"overview": overview, "detection": detection, "review-queue": review_queue}


def build_all() -> dict[str, object]:
    return {name: make().build() for name, make in DASHBOARDS.items()}


def render_all() -> dict[str, str]:
    """File name -> JSON text, exactly as checked in."""
    return {
        f"{name}.json": json.dumps(dash, cls=JSONEncoder, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
        for name, dash in build_all().items()
    }


def write_all(out_dir: Path = OUT_DIR) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for fname, text in render_all().items():
        path = out_dir / fname
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="compare with the checked-in JSON instead of writing")
    ap.add_argument("--out", type=Path, default=OUT_DIR)
    args = ap.parse_args(argv)
    if args.check:
        stale = [f for f, text in render_all().items()
                 if not (args.out / f).exists() or (args.out / f).read_text(encoding="utf-8") != text]
        for f in stale:
            print(f"stale: {args.out / f} (run deploy/grafana/generate.py)", file=sys.stderr)
        return 1 if stale else 0
    for path in write_all(args.out):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
