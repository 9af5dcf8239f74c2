"""The table ``make bench`` prints at the end."""

import math
from dataclasses import dataclass, field

from tests.bench.celery_bench import CeleryResult
from tests.bench.jobledger import Backlog, Throughput, Visibility, quantile
from tests.bench.procs import mib

SERVICES = ("api", "processor", "executor", "projector")


@dataclass
class Results:
    command: str = ""
    setting: str = ""
    raw: float | None = None
    raw_records: int = 0
    celery: CeleryResult | None = None
    celery_all: list[CeleryResult] = field(default_factory=list)
    celery_skipped: bool = False
    single: Throughput | None = None
    bulk: Throughput | None = None
    bulk_absent: bool = False
    visibility: Visibility | None = None
    backlog: Backlog | None = None
    notes: list[str] = field(default_factory=list)


def _num(value: float, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:,.{digits}f}"


class Table:
    def __init__(self) -> None:
        self.rows: list[tuple[str, str, str, str]] = []

    def add(self, figure: str, value: str, unit: str = "", note: str = "") -> None:
        self.rows.append((figure, value, unit, note))

    def section(self, title: str) -> None:
        self.rows.append((f"-- {title}", "", "", ""))

    def render(self) -> str:
        rows = [r for r in self.rows if not (r[0].startswith("-- ") and not r[1])]
        widths = [max(len(r[i]) for r in rows) for i in range(3)]
        lines = []
        for figure, value, unit, note in self.rows:
            if figure.startswith("-- ") and not value:
                lines.append(figure)
                continue
            lines.append(f"{figure:<{widths[0]}}  {value:>{widths[1]}}  {unit:<{widths[2]}}"
                         f"  {note}".rstrip())
        return "\n".join(lines)


def _ratio(value: float | None, base: float | None) -> str:
    if value is None or not base:
        return "n/a"
    return f"{value / base:.3f}x"


def render(r: Results) -> str:
    t = Table()
    celery_rate = r.celery.rate if r.celery else None
    t.section("throughput (one broker, one invocation)")
    if r.raw is not None:
        t.add("raw Kafka produce+consume", _num(r.raw, 0), "records/s",
              f"{r.raw_records:,} records of 400 B, acks=all, idempotent")
    if r.celery:
        c = r.celery
        clients = ("one client" if c.clients == 1 else f"{c.clients} concurrent client "
                   "processes")
        t.add("Celery + Redis", _num(c.rate), "tasks/s",
              f"{c.config}; {c.tasks:,} tasks after warm-up, enqueued by {clients} in a "
              f"tight loop (apply_async), acks_late, results in Redis {c.redis_version}; "
              f"{c.failed} failed")
        for other in r.celery_all:
            if other is not c:
                t.add("  Celery, another configuration", _num(other.rate), "tasks/s",
                      f"{other.config} (not the baseline: slower)")
    else:
        t.add("Celery + Redis", "n/a", "tasks/s",
              "skipped (--skip-celery)" if r.celery_skipped else "not measured")
    if r.single:
        t.add("jobledger, single triggers", _num(r.single.rate), "runs/s", r.single.note)
    if r.bulk:
        t.add("jobledger, bulk triggers", _num(r.bulk.rate), "runs/s", r.bulk.note)
    elif r.bulk_absent:
        t.add("jobledger, bulk triggers", "n/a", "runs/s", "n/a (no bulk route)")
    t.section("ratios")
    t.add("single / Celery", _ratio(r.single.rate if r.single else None, celery_rate), "",
          "target >= 0.5x")
    t.add("bulk / Celery", _ratio(r.bulk.rate if r.bulk else None, celery_rate), "",
          "target >= 1.0x" if not r.bulk_absent else "n/a (no bulk route)")
    if r.single and r.raw:
        t.add("single runs/s / raw records/s", f"{r.single.rate / r.raw:.4f}", "",
              f"x records/run = {r.single.rate * r.single.records_per_run / r.raw:.3f} "
              f"of the raw rate")
    t.section("latency")
    if r.single:
        lat = r.single.latencies
        t.add("trigger p50 (single, saturated)", _num(quantile(lat, 0.5) * 1000, 0), "ms",
              "201 = visible in the projection")
        t.add("trigger p99 (single, saturated)", _num(quantile(lat, 0.99) * 1000, 0), "ms",
              "target <= 300 ms")
    if r.bulk:
        lat = r.bulk.latencies
        t.add("bulk request p50 / p99", f"{_num(quantile(lat, 0.5) * 1000, 0)} / "
              f"{_num(quantile(lat, 0.99) * 1000, 0)}", "ms", "")
    if r.visibility:
        v = r.visibility
        how = ("Prefer: respond-async: 202 on acceptance, then polled in the projection"
               if v.mode == "respond-async" else
               "no respond-async yet: the 201 latency, which waits for visibility")
        t.add("command-to-visible p50", _num(quantile(v.visible, 0.5) * 1000, 0), "ms",
              f"{v.runs} triggers at {v.rate:.1f}/s, open loop; {how}")
        t.add("command-to-visible p99", _num(quantile(v.visible, 0.99) * 1000, 0), "ms",
              "target <= 250 ms")
        if v.mode == "respond-async":
            t.add("respond-async 202 p50 / p99",
                  f"{_num(quantile(v.responses, 0.5) * 1000, 0)} / "
                  f"{_num(quantile(v.responses, 0.99) * 1000, 0)}", "ms", "")
    t.section("cost")
    for phase in (r.single, r.bulk):
        if phase:
            t.add(f"Kafka records per run ({phase.label})", _num(phase.records_per_run), "",
                  "all topics of the stack's prefix")
    phases = [p for p in (r.single, r.bulk) if p]
    for name in (*SERVICES, "kafka", "endpoint", "bench client"):
        values = [p.cpu[name] / p.runs * 1000 for p in phases if name in p.cpu]
        if values:
            t.add(f"CPU per 1,000 runs: {name}",
                  " / ".join(_num(v, 2) for v in values), "s",
                  " / ".join(p.label for p in phases if name in p.cpu))
    for p in phases:
        total = sum(p.cpu.get(n, 0.0) for n in (*SERVICES, "kafka"))
        t.add(f"CPU per run, services + broker ({p.label})", _num(total / p.runs * 1000, 1),
              "ms", "")
    if r.celery:
        for name, secs in r.celery.cpu.items():
            t.add(f"CPU per 1,000 tasks: {name}", _num(secs / r.celery.tasks * 1000, 2), "s",
                  "Celery baseline")
    if r.celery:
        for name, peak in r.celery.peak_rss.items():
            t.add(f"peak RSS: {name}", _num(mib(peak), 0), "MiB", "Celery baseline")
    last = (r.bulk or r.single)
    if last:
        for name in SERVICES:
            u = last.usage_after.get(name)
            if u:
                extra = (f"tree of {u.processes} processes: {mib(u.tree_peak_rss):.0f} MiB"
                         if u.processes > 1 else "")
                t.add(f"peak RSS: {name}", _num(mib(u.peak_rss), 0), "MiB", extra)
    if r.backlog:
        b = r.backlog
        t.section("backlog: one job, max_concurrency 1, endpoint never answers")
        t.add("fill time", f"{b.fill_seconds:,.1f}", "s",
              f"{b.accepted:,} runs accepted, {b.accepted / b.fill_seconds:,.1f} runs/s; "
              f"{b.fill_method}"
              + (f"; stopped: {b.stopped}" if b.stopped else ""))
        if b.failed:
            t.add("fill: failed triggers", f"{b.failed:,}", "",
                  ", ".join(f"{k}: {v}" for k, v in b.errors.most_common(3)))
        t.add("runs queued on the job", f"{b.queued:,}", "", f"target {b.target:,}")
        e50, f50 = quantile(b.empty.latencies, 0.5), quantile(b.full.latencies, 0.5)
        t.add("trigger p50, empty job", _num(e50 * 1000, 1), "ms",
              f"{b.empty.triggers} sequential triggers, one client")
        t.add(f"trigger p50, {b.queued:,} queued", _num(f50 * 1000, 1), "ms", "")
        t.add("trigger cost ratio (latency)", f"{f50 / e50:.2f}x", "", "target <= 1.5x")
        failed = b.empty.failed + b.full.failed
        if failed:
            t.add("probe triggers that failed", f"{failed}", "", "empty + queued")
        ecpu, fcpu = b.empty.per_trigger_ms("processor"), b.full.per_trigger_ms("processor")
        t.add("processor CPU per trigger, empty / queued",
              f"{ecpu:.2f} / {fcpu:.2f}", "ms",
              f"ratio {fcpu / ecpu:.2f}x" if ecpu else "")
        per_run = (b.rss_after - b.rss_before) / b.queued if b.queued else math.nan
        t.add("processor RSS growth per queued run", _num(per_run, 0), "bytes",
              f"RSS {mib(b.rss_before):.0f} -> {mib(b.rss_after):.0f} MiB")
    out = ["", "=" * 100, r.setting, "", t.render()]
    out += [f"note: {n}" for n in r.notes]
    out += ["", f"command: {r.command}", "=" * 100]
    return "\n".join(out)
