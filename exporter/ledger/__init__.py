"""Accounting: what has been counted, per flow, and the state file that carries it over restarts.

In: results handed over by the fetch strategies and the events intake, only through the methods of
`Ledger` (ledger.py). Out: the records (records.py) the collectors, the status page and the state
file read. The ledger decides what is counted: the first poll is the baseline, then each run the
first time it is seen completed, and never again. store.py writes and replays the state file
(a base plus appended changes, codec.py the per-flow documents); discovery.py holds what the
sandboxes' listings found.
"""
