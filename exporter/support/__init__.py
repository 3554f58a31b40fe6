"""What every room uses and that belongs to none: logs and secret masking, retry policy, the
exporter's own metrics, atomic file writes, the event loop's lag, and the process tuning
(tuning.py: every setting that trades memory, latency or CPU, with the figure it rests on).
Imports nothing of the exporter's other rooms."""
