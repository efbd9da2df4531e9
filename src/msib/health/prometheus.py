"""Health in Prometheus's text exposition format (version 0.0.4), labelled sb, circuit, source, kind, address.

``msib_source_state`` is one series per state, 1 for the state the source is in (the usual way to
expose an enum): ``msib_source_state{state="silent"} == 1`` lists the silent sources.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from msib.health.model import STATES, SbHealth, SourceHealth

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# name -> (type, help)
METRICS: dict[str, tuple[str, str]] = {
    "msib_source_last_heard_seconds": ("gauge", "Unix time of the newest event seen from the source "
                                                "(at its collector; at the SIEM for collectors)."),
    "msib_source_state": ("gauge", "1 for the source's state: ok, silent, degraded or unknown."),
    "msib_source_rate_per_minute": ("gauge", "Events per minute from the source over the health window."),
    "msib_source_baseline_per_minute": ("gauge", "The source's own median rate over the baseline days."),
    "msib_source_threshold_seconds": ("gauge", "Seconds without an event after which the source is silent."),
    "msib_collector_queue_size": ("gauge", "Messages in the collector's relay queue to the SIEM (memory and disk)."),
    "msib_collector_queue_max_size": ("gauge", "Largest size the relay queue reached since rsyslog started."),
    "msib_collector_discarded_total": ("counter", "Messages the relay queue discarded since rsyslog started."),
    "msib_sensor_capture_packets_total": ("counter", "Packets Suricata's capture saw (capture.kernel_packets)."),
    "msib_sensor_capture_drops_total": ("counter", "Packets the kernel dropped before Suricata "
                                                   "(capture.kernel_drops)."),
    "msib_sensor_capture_loss_ratio": ("gauge", "kernel_drops / kernel_packets since Suricata started."),
    "msib_sensor_rules_loaded": ("gauge", "Rules the running Suricata engine has loaded."),
    "msib_sensor_rules_age_seconds": ("gauge", "Age of the newest rule file the sensor loads."),
    "msib_sensor_rules_reload_age_seconds": ("gauge", "Seconds since the engine last (re)loaded its rules."),
    "msib_appliance_convergence_age_seconds": ("gauge", "Seconds since a deploy last found nothing to change."),
    "msib_health_run_timestamp_seconds": ("gauge", "Unix time of the health run these values come from."),
    "msib_health_run_duration_seconds": ("gauge", "Seconds the health run of the SB took."),
    "msib_health_sources": ("gauge", "Sources of the SB in each state."),
    "msib_health_unreachable": ("gauge", "1 for each place (a collector, a sensor, the SIEM) that could not be asked."),
}
_METRIC_OF = {"queue_size": "msib_collector_queue_size", "queue_max_size": "msib_collector_queue_max_size",
              "discarded_total": "msib_collector_discarded_total",
              "capture_packets": "msib_sensor_capture_packets_total",
              "capture_drops": "msib_sensor_capture_drops_total", "capture_loss": "msib_sensor_capture_loss_ratio",
              "rules_loaded": "msib_sensor_rules_loaded", "rules_age_s": "msib_sensor_rules_age_seconds",
              "rules_reload_age_s": "msib_sensor_rules_reload_age_seconds",
              "convergence_age_s": "msib_appliance_convergence_age_seconds"}


def _label(value: object) -> str:
    return str("" if value is None else value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(pairs: Sequence[tuple[str, object]]) -> str:
    return "{" + ",".join(f'{k}="{_label(v)}"' for k, v in pairs) + "}"


def _number(value: float) -> str:
    return repr(float(value)) if not float(value).is_integer() else str(int(value))


@dataclass
class _Samples:
    lines: dict[str, list[str]] = field(default_factory=dict)

    def add(self, name: str, labels: Sequence[tuple[str, object]], value: float | int | None) -> None:
        if value is None:
            return
        self.lines.setdefault(name, []).append(f"{name}{_labels(labels)} {_number(float(value))}")


def _source(samples: _Samples, sb: str, s: SourceHealth) -> None:
    labels = [("sb", sb), ("circuit", s.circuit or ""), ("source", s.name), ("kind", s.kind), ("address", s.address)]
    samples.add("msib_source_last_heard_seconds", labels, s.last_heard)
    for state in STATES:
        samples.add("msib_source_state", [*labels, ("state", state)], 1 if s.state == state else 0)
    samples.add("msib_source_rate_per_minute", labels, s.rate)
    samples.add("msib_source_baseline_per_minute", labels, s.baseline)
    samples.add("msib_source_threshold_seconds", labels, s.threshold)
    for key, metric in _METRIC_OF.items():
        value = s.metrics.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            samples.add(metric, labels, value)


def exposition(results: Iterable[SbHealth]) -> str:
    """The text a Prometheus server scrapes: every metric with HELP and TYPE, then its samples."""
    samples = _Samples()
    for r in results:
        for s in r.sources:
            _source(samples, r.sb, s)
        samples.add("msib_health_run_timestamp_seconds", [("sb", r.sb)], r.at)
        samples.add("msib_health_run_duration_seconds", [("sb", r.sb)], r.seconds)
        counts = r.counts()
        for state in STATES:
            samples.add("msib_health_sources", [("sb", r.sb), ("state", state)], counts[state])
        for place in sorted(r.unreachable):
            samples.add("msib_health_unreachable", [("sb", r.sb), ("place", place)], 1)
        if r.error:
            samples.add("msib_health_unreachable", [("sb", r.sb), ("place", "inventory")], 1)
    out: list[str] = []
    for name, (kind, text) in METRICS.items():
        if name in samples.lines:
            out += [f"# HELP {name} {text}", f"# TYPE {name} {kind}", *samples.lines[name]]
    return "\n".join(out) + "\n"
