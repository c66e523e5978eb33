"""Writes the reports own: daily snapshots and retention."""
