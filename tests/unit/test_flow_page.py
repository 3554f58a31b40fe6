"""The flow page and its JSON view: Adobe's strings are text, never markup; links into Adobe only
with a tenant; the strip on `/` shows the last runs, newest at the right."""

from __future__ import annotations

import json
from dataclasses import replace
from html.parser import HTMLParser

from exporter.adobe.models import Flow
from exporter.exposition.api import flow_doc
from exporter.exposition.flow_page import Links, page, strip, view
from exporter.exposition.status_page import Rows
from exporter.ledger.history import EMPTY, unpack
from exporter.ledger.ledger import Ledger
from tests.unit.test_ledger import NOW, WINDOW, run

HOSTILE = '<script>alert("x")</script>&<img src=x onerror=alert(1)>'
LINKS = Links(
    "acme", "https://experience.adobe.com/#/@{tenant}/sname:{sandbox}/x/{flow_id}", "https://e.example/{run_id}"
)


class Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)

    def handle_data(self, data):
        self.text.append(data)


def _flow():
    ledger = Ledger()
    state = ledger.flow("prod", "f1")
    ledger.set_flow(state, Flow("f1", name=HOSTILE, state=HOSTILE, frequency="minute", interval=15), NOW)
    bad = replace(run("r-" + HOSTILE, "failed", codes=(HOSTILE,)), error_messages=((HOSTILE, HOSTILE),))
    ledger.apply_runs(state, [run("ok1", created=NOW - 900), bad], WINDOW)
    ledger.set_names(state, HOSTILE, "Data Lake", "ds1", NOW)
    return ledger, state


def test_every_adobe_string_on_the_flow_page_is_text():
    _, state = _flow()
    html = page(view(state), LINKS, NOW)
    parsed = Tags()
    parsed.feed(html)
    assert "script" not in parsed.tags and "img" not in parsed.tags
    assert HOSTILE in "".join(parsed.text)  # shown, as text
    assert parsed.tags.count("svg") == 2 and parsed.tags.count("rect") >= 4  # records and duration charts


def test_runs_newest_first_and_links_into_adobe_only_with_a_tenant():
    _, state = _flow()
    v = view(state)
    assert [r.run_id for r in v.runs] == ["r-" + HOSTILE, "ok1"]
    doc = json.loads(json.dumps(flow_doc(v, LINKS, True)))
    assert doc["adobe_url"] == "https://experience.adobe.com/#/@acme/sname:prod/x/f1"
    assert doc["runs"][0]["adobe_url"].startswith("https://e.example/r-%3Cscript%3E")
    assert doc["runs"][0]["errors"] == [{"code": HOSTILE, "message": HOSTILE}]
    assert doc["name"] == HOSTILE and doc["schedule"] == "every 15 minute"
    plain = flow_doc(v, Links(), True)
    assert plain["adobe_url"] is None and plain["runs"][0]["adobe_url"] is None
    assert "Open in Adobe" not in page(v, Links(), NOW) and "Open in Adobe" in page(v, LINKS, NOW)


def test_the_status_row_links_the_flow_page_and_shows_the_strip():
    ledger, state = _flow()
    row = Rows().snapshot(ledger, NOW).rows[0].html
    assert 'href="/flows/f1"' in row
    assert row.index('class="sq good"') < row.index('class="sq bad"')  # oldest left, newest right
    assert strip(EMPTY) == ""
    assert len(unpack(state.history)) == 2


def test_the_dataset_name_replaces_its_id_once_known():
    ledger, state = _flow()
    assert "dataset ds1" in Rows().snapshot(ledger, NOW).rows[0].html
    state.dataset_name = "Orders"
    state.version += 1
    assert "→ Orders" in Rows().snapshot(ledger, NOW).rows[0].html
