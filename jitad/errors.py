"""The error every app's services raise for people (a refused step), never for faults.

It sits below every app, so break-glass can refine it (BreakglassRefused) without
importing elevation; views and the API catch it once for all of them.
"""


class RequestRefused(Exception):
    """The request breaks policy or the lifecycle; ``code`` is stable, the message is for humans."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message
