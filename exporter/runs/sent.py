"""The `retry` command's note of a retry sent: one small JSON file per retried run, next to the
state file, written *before* the POST and again with the new run's id once Adobe answers.

A retry whose answer was lost leaves the note without a new run id. The next `retry` of that
run reads it and looks up the flow's runs created since the note's time before it sends
anything, so an operator who runs the command again never causes a second retry.

In: the config's state file and a run id. Out: the note (when the last retry was sent, and the
run it made, if known), written atomically.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

from exporter.support.atomicfile import write_atomic

KIND = "aep-flow-exporter retry"
VERSION = 1


@dataclass
class RetryNote:
    path: str
    run_id: str
    sent_at: float | None = None  # when the last POST for it was sent (epoch s); None: never
    new_run_id: str | None = None  # the run that POST made, once known

    @classmethod
    def open(cls, state_file: str | None, run_id: str) -> RetryNote:
        """The note for `run_id` (a run ID checked to be a safe file name), empty if there is none
        or it cannot be read (a note that cannot be read is no evidence of a retry)."""
        directory = os.path.dirname(os.path.abspath(state_file)) if state_file else os.getcwd()
        note = cls(os.path.join(directory, f"retry-{run_id}.json"), run_id)
        try:
            with open(note.path, encoding="utf-8") as f:
                doc = json.load(f)
        except (OSError, ValueError):
            return note
        if isinstance(doc, dict) and doc.get("kind") == KIND and doc.get("run_id") == run_id:
            sent_at, new = doc.get("sent_at"), doc.get("new_run_id")
            note.sent_at = float(sent_at) if isinstance(sent_at, (int, float)) else None
            note.new_run_id = new if isinstance(new, str) else None
        return note

    def save(self) -> None:
        doc = {
            "kind": KIND,
            "version": VERSION,
            "run_id": self.run_id,
            "sent_at": self.sent_at,
            "new_run_id": self.new_run_id,
        }
        text = json.dumps(doc, indent=1) + "\n"
        write_atomic(self.path, lambda f: f.write(text), ".retry-")

    def remove(self) -> None:
        """Nothing was retried after all (Adobe refused it, or no token): forget the attempt."""
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
