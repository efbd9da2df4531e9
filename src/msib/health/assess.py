"""Judging each expected source from the readings: last heard, rate, baseline, state and why.

Pure: it takes what the probes and the SIEM said, the run log and the history, and decides; the
tests drive it with readings of their own.

- An **object** (and an IDS sensor, firewall or vendor device, which send to the collector too)
  is heard at its circuit's collectors: the newest spool time over them, the sum of their rates.
  It is ``unknown`` when none of them could be asked, or when it was never heard and the
  collector's rsyslog has not yet run for its threshold.
- A **collector** is heard at the SIEM. When the SIEM cannot be asked it is ``unknown``, unless
  its own relay shows it is not delivering (suspended for the whole window): then ``silent``.
- Every source behind a circuit whose collectors are all silent at the SIEM is ``silent`` too,
  whatever its own collector heard: nothing of it reaches the SIEM.
- ``degraded`` when the rate is below ``degraded_share`` of its baseline (``severe`` below
  ``severe_share``); there is no baseline until there are ``baseline_days`` of history.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from typing import Any

from msib.contract import Appliance, Inventory
from msib.health.config import HealthConfig
from msib.health.model import SbHealth, SourceHealth, span
from msib.health.probe import CollectorReading, Probed, SensorReading

SENDER_ROLES = ("ids_sensor", "firewall", "netdev")


def _addresses(app: Appliance) -> list[str]:
    return [a for a in (app.address, app.lan_address, app.uplink_address) if a]


def _canon(ip: str) -> str:
    try:
        return ipaddress.ip_address(ip).compressed
    except ValueError:
        return ip


def assess(inv: Inventory, objects: Sequence[Mapping[str, Any]], probed: Probed,
           siem_heard: Mapping[str, float | None] | None, siem_error: str | None, config: HealthConfig,
           *, now: float, baselines: Mapping[str, float] | None = None,
           converged: Mapping[str, float] | None = None, deployed: Mapping[str, float] | None = None) -> SbHealth:
    """One SB's health from its readings.

    Args:
        inv: the inventory (appliances and circuits).
        objects: the entries of its ``objects.json``.
        probed: what the collectors and sensors said, and who could not be asked.
        siem_heard: collector name -> when the SIEM last had an event from it (None: could not ask).
        siem_error: why the SIEM could not be asked.
        config: thresholds, window, shares.
        now: the controller's time of the run.
        baselines: source key -> its baseline rate (events/min), where there is one.
        converged: appliance -> when a deploy last found nothing to change on it.
        deployed: appliance -> when it was first deployed (a collector has listened since then at least).
    """
    baselines = baselines or {}
    converged = converged or {}
    deployed = deployed or {}
    out = SbHealth(sb=inv.sb_code or inv.directory.name, state_body=inv.state_body, at=now)
    out.unreachable.update(probed.unreachable)
    if siem_heard is None:
        out.unreachable["siem"] = siem_error or "the SIEM could not be asked"
    collectors_of: dict[str, list[str]] = {}
    for app in inv.of("collector"):
        collectors_of.setdefault(str(app.circuit), []).append(app.name)
    rates = {name: r.rates(now, config.window) for name, r in probed.collectors.items()}

    # collectors first: whether each circuit still reaches the SIEM decides for everything behind it
    silent_circuit: dict[str, str] = {}
    for app in inv.of("collector"):
        src = _collector(app, probed.collectors.get(app.name), siem_heard, siem_error, config, now)
        _appliance_metrics(src, app, probed, converged, config, now)
        out.sources.append(src)
    for circuit, names in collectors_of.items():
        states = [s for s in out.sources if s.name in names]
        if states and all(s.state == "silent" for s in states):
            silent_circuit[circuit] = ", ".join(names)

    def heard(circuit: str | None, addresses: Sequence[str], src: SourceHealth) -> None:
        names = collectors_of.get(str(circuit), [])
        asked = [probed.collectors[n] for n in names if n in probed.collectors]
        if not names:
            src.state = "unknown"
            src.reasons.append(f"circuit {circuit} has no collector to hear it")
            return
        if not asked:
            src.state = "unknown"
            src.reasons.append("its collector could not be asked: "
                               + "; ".join(f"{n}: {probed.unreachable.get(n, 'no answer')}" for n in names))
            return
        keys = [_canon(a) for a in addresses]
        times = [r.spool.get(k) for r in asked for k in keys]
        src.last_heard = max((t for t in times if t is not None), default=None)
        per = [rates[r.name] for r in asked]
        src.rate = None if all(p is None for p in per) else sum((p or {}).get(k, 0.0) for p in per for k in keys)
        if len(asked) < len(names):
            src.reasons.append("not every collector of its circuit could be asked")
        _judge(src, asked, config, now, baselines.get(src.key), deployed)
        if circuit in silent_circuit:
            src.state = "silent"
            src.reasons.append(f"not delivered: collector {silent_circuit[str(circuit)]} is silent at the SIEM")

    for app in inv.of(*SENDER_ROLES):
        src = SourceHealth(key=app.name, name=app.name, kind=app.role, circuit=app.circuit, address=app.address,
                           threshold=config.threshold(app.role), heard_at="collector")
        heard(app.circuit, _addresses(app), src)
        _appliance_metrics(src, app, probed, converged, config, now)
        out.sources.append(src)
    for obj in objects:
        ip = _canon(str(obj.get("ip")))
        kind = config.classify(obj)
        src = SourceHealth(key=f"object:{ip}", name=str(obj.get("hostname") or ip), kind=kind,
                           circuit=obj.get("circuit"), address=ip, threshold=config.threshold(kind),
                           heard_at="collector")
        heard(obj.get("circuit"), [ip], src)
        out.sources.append(src)
    return out


def _collector(app: Appliance, reading: CollectorReading | None, siem_heard: Mapping[str, float | None] | None,
               siem_error: str | None, config: HealthConfig, now: float) -> SourceHealth:
    src = SourceHealth(key=app.name, name=app.name, kind="collector", circuit=app.circuit, address=app.address,
                       threshold=config.threshold("collector"), heard_at="siem")
    relay_stuck, covered = None, 0.0
    if reading is not None:
        delta = reading.window_delta(now, config.window, "msib_siem", "suspended.duration")
        covered = min(config.window, now - reading.reports[-1].t) if reading.reports else 0.0
        if delta is not None and covered > 0 and delta >= 0.9 * covered:
            relay_stuck = f"its relay to the SIEM was suspended for {delta} s of the last {covered:.0f} s"
    if siem_heard is None:
        if relay_stuck and covered >= src.threshold:
            src.state = "silent"
            src.reasons.append(relay_stuck)
        else:
            src.state = "unknown"
            src.reasons.append(f"the SIEM could not be asked: {siem_error or 'no answer'}")
            if relay_stuck:
                src.reasons.append(relay_stuck)
        return src
    src.last_heard = siem_heard.get(app.name)
    if src.last_heard is None:
        src.state = "silent"
        src.reasons.append("the SIEM has no event from it")
    elif now - src.last_heard > src.threshold:
        src.state = "silent"
        src.reasons.append(f"nothing at the SIEM for {span(now - src.last_heard)} (threshold {span(src.threshold)})")
    else:
        src.state = "ok"
    if relay_stuck:
        src.reasons.append(relay_stuck)
    return src


def _judge(src: SourceHealth, asked: Sequence[CollectorReading], config: HealthConfig, now: float,
           baseline: float | None, deployed: Mapping[str, float]) -> None:
    """Silent, degraded or ok, from last heard, rate and baseline (the collectors could be asked)."""
    if src.last_heard is None:
        # listening since its rsyslog started, or since the collector was first deployed if that is earlier
        # (rsyslog restarts with every configuration change; the spool it writes stays)
        since = [min(t for t in (r.rsyslog_started, deployed.get(r.name)) if t is not None) for r in asked
                 if r.rsyslog_started is not None or r.name in deployed]
        started = min(since, default=None)
        if started is not None and now - started < src.threshold:
            src.state = "unknown"
            src.reasons.append(f"not heard yet: its collector has listened for {span(now - started)} only "
                               f"(threshold {span(src.threshold)})")
        else:
            src.state = "silent"
            src.reasons.append("never heard at its collector")
        return
    quiet = now - src.last_heard
    if quiet > src.threshold:
        src.state = "silent"
        src.reasons.append(f"nothing for {span(quiet)} (threshold {span(src.threshold)})")
        return
    src.baseline = baseline
    if baseline and src.rate is not None and src.rate < config.degraded_share * baseline:
        src.state = "degraded"
        src.severe = src.rate < config.severe_share * baseline
        share = src.rate / baseline
        src.reasons.append(f"rate {src.rate:.2f}/min is {share:.0%} of its baseline {baseline:.2f}/min")
        return
    src.state = "ok"


def _appliance_metrics(src: SourceHealth, app: Appliance, probed: Probed, converged: Mapping[str, float],
                       config: HealthConfig, now: float) -> None:
    """Queue, discards, capture, rules and convergence of an appliance, where they apply."""
    if app.name in converged:
        src.metrics["convergence_age_s"] = round(now - converged[app.name], 1)
    else:
        src.metrics["convergence_age_s"] = None
    if app.role == "collector":
        reading = probed.collectors.get(app.name)
        queue = reading.queue() if reading else None
        if queue is not None and reading is not None:
            src.metrics["queue_size"] = queue["size"]
            src.metrics["queue_max_size"] = queue["maxqsize"]
            src.metrics["discarded_total"] = queue["discarded.full"] + queue["discarded.nf"]
            lost = [reading.window_delta(now, config.window, q, k) for q in ("msib_relay", "msib_relay[DA]")
                    for k in ("discarded.full", "discarded.nf")]
            src.metrics["discarded_window"] = sum(x or 0 for x in lost)
            if src.metrics["discarded_window"]:
                src.reasons.append(f"its queue discarded {src.metrics['discarded_window']} events in the window")
        elif reading is not None:
            src.reasons.append("no queue counters (impstats) in its syslog")
    if app.role == "ids_sensor":
        sensor: SensorReading | None = probed.sensors.get(app.name)
        if sensor is None:
            return
        src.metrics.update({"capture_packets": sensor.kernel_packets, "capture_drops": sensor.kernel_drops,
                            "rules_loaded": sensor.rules_loaded, "rules_failed": sensor.rules_failed})
        if sensor.kernel_packets:
            src.metrics["capture_loss"] = round((sensor.kernel_drops or 0) / sensor.kernel_packets, 6)
        src.metrics["rules_age_s"] = None if sensor.rules_mtime is None else round(now - sensor.rules_mtime, 1)
        src.metrics["rules_reload_age_s"] = None if sensor.last_reload is None else round(now - sensor.last_reload, 1)
        src.reasons += [f"sensor: {e}" for e in sensor.errors]
