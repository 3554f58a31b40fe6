"""Content negotiation: which exposition format, and whether gzipped, a scrape's headers ask for.

Content negotiation is prometheus_client's own (`choose_encoder`), fed the Accept header's media
ranges in order of preference (its chooser takes the first one it supports and ignores q-values;
Prometheus says what it prefers with q-values). The content type it names is the one served. Text
0.0.4 and text 1.0.0 bodies are the same bytes here: they differ only in how names outside the
legacy character set are written, and every metric and label name of this exporter is legacy.
The tests compare each body with what the chosen prometheus_client encoder writes.
"""

from __future__ import annotations

from prometheus_client.exposition import choose_encoder


def _quality(params: list[str]) -> float:
    for p in params:
        key, _, value = p.strip().partition("=")
        if key.strip().lower() == "q":
            try:
                return max(0.0, min(1.0, float(value)))  # NaN and out-of-range weights land in [0, 1]
            except ValueError:
                return 1.0  # a malformed weight: read as the default, as lenient servers do
    return 1.0


def by_preference(accept: str) -> str:
    """The Accept header's media ranges, most preferred first (a stable sort on q, so equal
    weights keep the client's order), without q=0 ranges (RFC 9110: "not acceptable") and without
    the q parameters."""
    ranges = []
    for i, item in enumerate(accept.split(",")):
        media, *params = item.split(";")
        q = _quality(params)
        if media.strip() and q > 0:
            kept = [p.strip() for p in params if p.strip().partition("=")[0].strip().lower() != "q"]
            ranges.append((-q, i, ";".join([media.strip(), *kept])))
    return ",".join(r for _, _, r in sorted(ranges))


def accepts_gzip(accept_encoding: str) -> bool:
    """Whether Accept-Encoding allows gzip (named with a weight above 0)."""
    for item in accept_encoding.split(","):
        coding, *params = item.split(";")
        if coding.strip().lower() in ("gzip", "x-gzip") and _quality(params) > 0:
            return True
    return False


def negotiate(accept: str) -> tuple[bool, str]:
    """(OpenMetrics?, Content-Type) for a scrape's Accept header, as prometheus_client decides."""
    _, content_type = choose_encoder(by_preference(accept))
    return content_type.startswith("application/openmetrics-text"), content_type
