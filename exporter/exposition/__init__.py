"""What people and Prometheus read: the collectors, the rendered exposition, the status page and
the HTTP server.

In: the ledger (read only, between cycles) and the exporter's own metrics. Out: bytes. The
collectors (collectors/) yield metric families from the ledger's records; families.py keeps each
flow's lines between renderings so a cycle renders only the flows that changed; render.py turns
them into both exposition formats once per cycle; status_page.py builds the HTML page's rows;
server.py serves what was rendered (a scrape never waits on Adobe); webconfig.py reads the
exporter-toolkit web config (TLS, basic auth).
"""
