"""Signals the elevation app sends for the layers above it (they never import upwards).

``group_read``: the reconciler read a managed JIT group. Keyword arguments: ``group_dn``,
``members`` (how many members it read), ``unbacked`` (how many of them no grant backed
before this run removed or held any), ``read_at``. The reports keep the first reading of
each right as the baseline of standing access.
"""
from django.dispatch import Signal

group_read = Signal()
