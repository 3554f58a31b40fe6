"""Creating and following flow runs, for the `trigger` and `backfill` commands.

In: an Adobe session (exporter/adobe/session.py) and what the user asked for. Out: runs created
in Adobe, the lines a person reads, and the backfill's plan file. Nothing here builds the daemon's
ledger, poller, collectors or event service.

- create.py: `POST /runs` with the parameter types Adobe accepts;
- follow.py: waiting on a run until it ends; progress.py: the lines and the end table;
- backfill.py: a range as a sequence of windows; plan.py: the plan file that makes it resumable.
"""
