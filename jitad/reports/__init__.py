"""Evidence for the security and audit people: KPIs, who was admin when, and the JIT PAM document.

Reads only (through selectors of the apps below it), apart from the daily snapshots and the
retention it owns.
"""
