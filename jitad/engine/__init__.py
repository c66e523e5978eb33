"""The engine: what keeps background work alive and single-flight across processes and machines.

Bottom layer: it imports no jitad app above it. Domain apps hear from it through signals
(``signals.watch``) and use its leases, heartbeats and guarded enqueue.
"""
