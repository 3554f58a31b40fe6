"""Fetching: which flows and runs to ask Adobe for, when, and how.

In: the config's sandboxes and flows, a Flow Service client (exporter/adobe/), and what the ledger
already holds (each flow's horizon). Out: complete results handed to the ledger through its
methods; nothing else is written here.

- poller.py: one cycle every `poll_interval`: discovery for sandboxes that are due, then each
  sandbox with its strategy, then the names;
- strategy.py: the one small interface a strategy implements, and the cycle's context;
- per_flow.py: `GET /flows/{id}` and `GET /runs?property=flowId==…` for each flow;
- batched.py: the same facts for up to 100 flows a request (the default; 50-100x fewer requests),
  through listings.py and chunking.py;
- capabilities.py: what a sandbox's API was found to accept (filters, list sizes, lateness);
- discovery.py: which flows a sandbox has, for sandboxes with `discover:`;
- names.py: the names people read (connectors, datasets), for flows whose metadata is new;
- probe.py: the probes `--check` runs.
"""
