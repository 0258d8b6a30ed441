"""The test bed's exceptions."""
from __future__ import annotations


class TestBedError(RuntimeError):
    """The test bed could not do what was asked; the message says why (with log excerpts)."""


class TestBedUnavailable(TestBedError):
    """The test bed cannot run on this machine at all (not Linux, or not root)."""
