"""Reliability suite: bad input is refused with one line before any compute; outputs are never partial."""
