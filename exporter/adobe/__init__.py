"""Adobe's APIs as this exporter speaks them: the IMS token, the HTTP transport, the Flow Service
client and the typed models of its answers.

In: a config's `adobe:` section and the questions of the rooms above (which flows, which runs,
since when). Out: tolerant dataclasses (models.py: unknown fields ignored, missing ones None) and
`RunFacts` (runfacts.py), the few numbers a finished run contributes, read through the one table
of counted fields (fields.py). Nothing here knows of the ledger or the metrics.

- ims.py: the `client_credentials` exchange, one token shared, renewed before it expires;
- transport.py: one request with retries, the rate limit (ratelimit.py), error mapping (errors.py);
- client.py: the Flow Service's endpoints; continuation.py: following a listing page by page;
- session.py: an Adobe session (HTTP pool + token + client) for callers that need nothing else.
"""
