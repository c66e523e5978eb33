"""Reads behind the reports: KPIs, access history, the evidence the JIT PAM document is held to."""
