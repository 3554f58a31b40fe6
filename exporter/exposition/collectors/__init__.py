"""Custom collectors, one module a concern, each reading the ledger and yielding families:
exporter.py (the exporter's view of each flow), info.py (`aep_flow_info`), latest.py (the newest
runs), totals.py (counters), fetching.py (how fetching adapted); flows.py puts the per-flow ones
together for the render. A value Adobe did not report is no series."""
