"""Streaming the audit chain to SIEM destinations: formats, the network seam, the outbox."""
