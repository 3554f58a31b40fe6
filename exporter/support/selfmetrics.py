"""The exporter's own instrumentation: what it costs Adobe and how its token is doing.

These are direct-instrumented (the exporter's own events, not proxied state), kept in a registry of
their own instead of prometheus_client's global one, so two exporters in one test process do not
share counters.
"""

from __future__ import annotations

import platform

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics

# `_created` series double the self-metrics for little use; node_exporter has none.
disable_created_metrics()

from exporter import __version__  # noqa: E402  (after disable_created_metrics)

REQUEST_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class SelfMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        r = self.registry
        self.build_info = Gauge(
            "aep_exporter_build_info", "Build of the exporter; value 1.", ["version", "python_version"], registry=r
        )
        self.build_info.labels(__version__, platform.python_version()).set(1)
        self.api_requests = Counter(
            "aep_exporter_api_requests",
            "HTTP requests sent to Adobe (IMS and Flow Service), by endpoint and HTTP status code "
            "('error' for a transport failure or timeout).",
            ["endpoint", "code"],
            registry=r,
        )
        self.api_request_duration = Histogram(
            "aep_exporter_api_request_duration_seconds",
            "Time taken by HTTP requests to Adobe, by endpoint.",
            ["endpoint"],
            buckets=REQUEST_BUCKETS,
            registry=r,
        )
        self.api_retries = Counter(
            "aep_exporter_api_retries",
            "Requests to Adobe sent again, by endpoint and reason (a status code, 'error' or 'parse').",
            ["endpoint", "reason"],
            registry=r,
        )
        self.api_throttled = Counter(
            "aep_exporter_api_throttled", "Responses from Adobe that asked us to slow down (429).", registry=r
        )
        self.api_throttle_wait = Counter(
            "aep_exporter_api_throttle_wait_seconds",
            "Seconds the client was held back after Adobe throttled it.",
            registry=r,
        )
        self.parse_errors = Counter(
            "aep_exporter_parse_errors",
            "Responses from Adobe that were not the JSON shape documented, by endpoint.",
            ["endpoint"],
            registry=r,
        )
        self.token_expiry = Gauge(
            "aep_exporter_token_expiry_timestamp_seconds",
            "When the current IMS access token expires (Unix time).",
            registry=r,
        )
        self.config_reload_ok = Gauge(
            "aep_exporter_config_last_reload_successful",
            "1 if the last config (re)load succeeded, 0 if the last SIGHUP brought an invalid config.",
            registry=r,
        )
        self.config_reload_ok.set(1)
        self.config_reload_time = Gauge(
            "aep_exporter_config_last_reload_success_timestamp_seconds",
            "When the config was last loaded successfully.",
            registry=r,
        )
        self.config_reload_time.set_to_current_time()
        self.state_saved = Gauge(
            "aep_exporter_state_last_save_timestamp_seconds",
            "When the run ledger was last written to the state file.",
            registry=r,
        )
        self.state_save_failures = Counter(
            "aep_exporter_state_save_failures",
            "Failed writes of the state file (the exporter goes on; a restart then loses what changed).",
            registry=r,
        )
        self.shard = Gauge(
            "aep_exporter_shard",
            "1, labelled with this replica's shard (--shard INDEX/COUNT); absent without sharding.",
            ["index", "count"],
            registry=r,
        )
        self.cycle_duration = Gauge(
            "aep_exporter_cycle_duration_seconds", "Duration of the last full poll cycle, all sandboxes.", registry=r
        )
        self.render_duration = Gauge(
            "aep_exporter_render_duration_seconds",
            "Time the last rendering of the exposition took (once per cycle, in a worker thread; every format).",
            registry=r,
        )
        self.render_flows = Gauge(
            "aep_exporter_render_flows_rebuilt",
            "Flows whose exposition lines the last rendering rebuilt (their ledger entry changed); the "
            "other flows' lines were reused as they were.",
            registry=r,
        )
        self.loop_lag = Gauge(
            "aep_exporter_event_loop_lag_max_seconds",
            "Worst delay of the event loop during the last poll cycle (how long a scrape could have waited).",
            registry=r,
        )
        self.token_refresh_failures = Counter(
            "aep_exporter_token_refresh_failures",
            "Failed attempts to obtain an IMS access token.",
            registry=r,
        )
