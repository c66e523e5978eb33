"""Elevation's read side: queries for the views, the API, the admin and the services; nothing here changes state.

Import from the module that holds the subject (``selectors.eligibility``,
``selectors.approvers``...). Writes live in ``jitad.elevation.services``.
"""
