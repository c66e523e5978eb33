"""Errors the elevation services raise for people (a bad request), never for faults."""


class RequestRefused(Exception):
    """The request breaks policy or the lifecycle; ``code`` is stable, the message is for humans."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message
