"""Accounting: what has been counted, per flow, and the state file that carries it over restarts.

In: results handed over by the fetch strategies and the events intake, only through the methods of
`Ledger` (ledger.py). Out: the records (records.py) the collectors, the status page and the state
file read. The ledger decides what is counted: the first poll is the baseline, then each run the
first time it is seen completed, and never again.

- ledger.py: the one writer, and the exactly-once rule; records.py: the records and the pure rules
  one poll applies to a flow's record; discovery.py: which flows each discovering sandbox has;
- store.py: the state file (a base, and appends.py: the changes appended beside it; codec.py: how
  each record is written and read back).
"""
