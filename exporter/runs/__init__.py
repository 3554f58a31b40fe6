"""Creating, following, listing and retrying flow runs, for the `trigger`, `backfill`, `runs` and
`retry` commands.

In: an Adobe session (exporter/adobe/session.py) and what the user asked for. Out: runs created
or retried in Adobe, the lines a person reads, and the backfill's plan file. Nothing here builds
the daemon's ledger, poller, collectors or event service.

- post.py: the one error of a POST that may act, and learning which form Adobe accepts by trying;
- create.py: `POST /runs` with the parameter types Adobe accepts;
- retry.py: `POST /runs/{id}/action` in either spelling of its op; sent.py: the note that keeps a
  lost retry from being sent twice;
- follow.py: waiting on a run until it ends; progress.py: the lines and the end table;
- listing.py: a flow's runs as `runs` shows them;
- backfill.py: a range as a sequence of windows; plan.py: the plan file that makes it resumable.
"""
