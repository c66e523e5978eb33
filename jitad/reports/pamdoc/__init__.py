"""The JIT privileged-access document (NIST SP 800-207): gathered from live configuration, rendered, validated.

``gather`` reads configuration and records into :class:`~.gather.PamFacts`; ``render`` writes
Markdown (canonical), HTML and PDF; ``validate`` checks any such document as text;
``evidence`` holds its claims against jitad's records for a period.
"""
