"""What the pages of a sandbox's listings looked like, and what they taught: Adobe documents
neither page sizes nor token lengths nor whether a token remembers the question, so each is
measured or learned here (`--check` reports them; the client holds later pages to what was
learned)."""

from __future__ import annotations

from dataclasses import dataclass

RELEARN_PAGES = 200  # pages answered before a refused request line's length is tried again


@dataclass
class ListingStats:
    """What the pages of one sandbox's listings looked like: Adobe documents neither page sizes nor token
    lengths, so they are measured (`--check` reports them; the batched strategy sizes its
    requests by the page size served)."""

    largest_page: int = 0  # most items on one page
    smallest_full_page: int | None = None  # fewest items on a page that still had a next link
    largest_full_page: int | None = None  # most items on a page that had a next link (the page size served)
    longest_token: int = 0  # longest continuationToken (or next link, when it has none)
    # Whether a next link followed as given (its token alone, without our filters) answers the
    # question: learned once by asking a page both ways (_learn_tokens), and "no" as soon as a page
    # followed as given holds an item that does not answer it (the token holds only a position:
    # our filters are re-sent with it from then on). Followed as given only once "yes".
    tokens_carry_query: str = "unknown"
    # A later page did not fit with our filters while that was unknown: learn it (_learn_tokens).
    tokens_wanted: bool = False
    # The shortest later page's request line a gateway refused, while it is remembered: pages
    # are kept under it (the link as given where it is shorter), and after RELEARN_PAGES pages
    # answered it is forgotten and tried again, so a refusal that was not about size costs little.
    refused_line: int | None = None
    answered_since_refusal: int = 0

    def line_budget(self, budget: int | None) -> int | None:
        """The request-line budget for a later page: the configured one, under what was refused."""
        if self.refused_line is None:
            return budget
        return self.refused_line - 1 if budget is None else min(budget, self.refused_line - 1)

    def line_refused(self, length: int) -> None:
        self.refused_line = length if self.refused_line is None else min(self.refused_line, length)
        self.answered_since_refusal = 0

    def page_answered(self) -> None:
        if self.refused_line is not None:
            self.answered_since_refusal += 1
            if self.answered_since_refusal >= RELEARN_PAGES:
                self.refused_line = None

    def count_page(self, items: int, next_token: str | None) -> None:
        self.largest_page = max(self.largest_page, items)
        if next_token is not None:
            self.longest_token = max(self.longest_token, len(next_token))
            if self.smallest_full_page is None or items < self.smallest_full_page:
                self.smallest_full_page = items
            self.largest_full_page = max(self.largest_full_page or 0, items)
