"""Sealed break-glass accounts, checkouts under dual control, runbooks."""
