"""The exporter's own instrumentation: what it costs Adobe and how its token is doing.

These are direct-instrumented (the exporter's own events, not proxied state), kept in a registry of
their own instead of prometheus_client's global one, so two exporters in one test process do not
share counters. The HTTP clients, the token provider and the daemon's wiring count and set them
through SelfMetrics' attributes; /metrics serves the registry, families in the order of _METRICS.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics

from exporter import __version__

# `_created` series double the self-metrics for little use; node_exporter has none.
disable_created_metrics()

REQUEST_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


@dataclass(frozen=True)
class _Metric:
    """One self-metric: the SelfMetrics attribute that holds it, and what prometheus_client is given."""

    attr: str
    kind: type[Counter] | type[Gauge] | type[Histogram]
    name: str
    help: str
    labels: tuple[str, ...] = ()
    options: dict[str, Any] = field(default_factory=dict)  # e.g. a histogram's buckets


# The declarative table of the self-metrics, in exposition order.
_METRICS = (
    _Metric(
        "build_info", Gauge, "aep_exporter_build_info", "Build of the exporter; value 1.", ("version", "python_version")
    ),
    _Metric(
        "api_requests",
        Counter,
        "aep_exporter_api_requests",
        "HTTP requests sent to Adobe (IMS and Flow Service), by endpoint and HTTP status code "
        "('error' for a transport failure or timeout).",
        ("endpoint", "code"),
    ),
    _Metric(
        "api_request_duration",
        Histogram,
        "aep_exporter_api_request_duration_seconds",
        "Time taken by HTTP requests to Adobe, by endpoint.",
        ("endpoint",),
        {"buckets": REQUEST_BUCKETS},
    ),
    _Metric(
        "api_retries",
        Counter,
        "aep_exporter_api_retries",
        "Requests to Adobe sent again, by endpoint and reason (a status code, 'error' or 'parse').",
        ("endpoint", "reason"),
    ),
    _Metric(
        "api_throttled", Counter, "aep_exporter_api_throttled", "Responses from Adobe that asked us to slow down (429)."
    ),
    _Metric(
        "api_throttle_wait",
        Counter,
        "aep_exporter_api_throttle_wait_seconds",
        "Seconds the client was held back after Adobe throttled it.",
    ),
    _Metric(
        "parse_errors",
        Counter,
        "aep_exporter_parse_errors",
        "Responses from Adobe that were not the JSON shape documented, by endpoint.",
        ("endpoint",),
    ),
    _Metric(
        "token_expiry",
        Gauge,
        "aep_exporter_token_expiry_timestamp_seconds",
        "When the current IMS access token expires (Unix time).",
    ),
    _Metric(
        "config_reload_ok",
        Gauge,
        "aep_exporter_config_last_reload_successful",
        "1 if the last config (re)load succeeded, 0 if the last SIGHUP brought an invalid config.",
    ),
    _Metric(
        "config_reload_time",
        Gauge,
        "aep_exporter_config_last_reload_success_timestamp_seconds",
        "When the config was last loaded successfully.",
    ),
    _Metric(
        "state_saved",
        Gauge,
        "aep_exporter_state_last_save_timestamp_seconds",
        "When the run ledger was last written to the state file.",
    ),
    _Metric(
        "state_save_failures",
        Counter,
        "aep_exporter_state_save_failures",
        "Failed writes of the state file (the exporter goes on; a restart then loses what changed).",
    ),
    _Metric(
        "shard",
        Gauge,
        "aep_exporter_shard",
        "1, labelled with this replica's shard (--shard INDEX/COUNT); absent without sharding.",
        ("index", "count"),
    ),
    _Metric(
        "cycle_duration",
        Gauge,
        "aep_exporter_cycle_duration_seconds",
        "Duration of the last full poll cycle, all sandboxes.",
    ),
    _Metric(
        "render_duration",
        Gauge,
        "aep_exporter_render_duration_seconds",
        "Time the last rendering of the exposition took (once per cycle, in a worker thread; every format).",
    ),
    _Metric(
        "render_flows",
        Gauge,
        "aep_exporter_render_flows_rebuilt",
        "Flows whose exposition lines the last rendering rebuilt (their ledger entry changed); the "
        "other flows' lines were reused as they were.",
    ),
    _Metric(
        "loop_lag",
        Gauge,
        "aep_exporter_event_loop_lag_max_seconds",
        "Worst delay of the event loop during the last poll cycle (how long a scrape could have waited).",
    ),
    _Metric(
        "token_refresh_failures",
        Counter,
        "aep_exporter_token_refresh_failures",
        "Failed attempts to obtain an IMS access token.",
    ),
)


class SelfMetrics:
    """Every self-metric of _METRICS as an attribute, registered in `registry`."""

    build_info: Gauge
    api_requests: Counter
    api_request_duration: Histogram
    api_retries: Counter
    api_throttled: Counter
    api_throttle_wait: Counter
    parse_errors: Counter
    token_expiry: Gauge
    config_reload_ok: Gauge
    config_reload_time: Gauge
    state_saved: Gauge
    state_save_failures: Counter
    shard: Gauge
    cycle_duration: Gauge
    render_duration: Gauge
    render_flows: Gauge
    loop_lag: Gauge
    token_refresh_failures: Counter

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        for m in _METRICS:
            setattr(self, m.attr, m.kind(m.name, m.help, m.labels, registry=self.registry, **m.options))
        self.build_info.labels(__version__, platform.python_version()).set(1)
        self.config_reload_ok.set(1)  # the config this process started with loaded
        self.config_reload_time.set_to_current_time()
