"""Errors the elevation services raise for people (a bad request), never for faults.

RequestRefused is shared with break-glass, so it lives in jitad.errors; importing it
from here keeps working.
"""
from jitad.errors import RequestRefused

__all__ = ["RequestRefused"]
