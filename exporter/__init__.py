"""aep-flow-exporter: Prometheus metrics for Adobe Experience Platform Flow Service runs."""

__version__ = "0.1.0"
