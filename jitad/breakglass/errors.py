"""Errors the break-glass services raise for people (a refused step), never for faults."""
from jitad.errors import RequestRefused


class BreakglassRefused(RequestRefused):
    """A break-glass step breaks the rules or the lifecycle; ``code`` is stable, the message is for people."""
