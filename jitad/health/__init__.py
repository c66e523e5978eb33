"""jitad's own health: processes that died, domain controllers that stopped answering; /healthz, /readyz, /metrics.

Above the engine, the seams and notifications; below the domain apps. Its checks run on
the engine's watchdog signal and alert through conditions (one alert while it lasts, one
"Resolved" when it ends). Its views answer load balancers (``readiness``) and Prometheus
(``figures``, beside the counters of ``jitad.metrics``).
"""
