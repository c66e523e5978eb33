"""Django settings for jitad, read from the environment with safe single-machine defaults.

Every variable is documented in ops/jitad.env.example. With nothing set, jitad runs on
one machine: SQLite and a filesystem broker under ./var. Production (JITAD_ENV=production)
must set the secret key, the database, the broker and the directory bind explicitly.

Each part is a module of this package, run in the order below: a later part imports what it
needs from an earlier one (PRODUCTION and VAR_DIR from ``env``), and in production the
fail-fast checks list their problems in this order. A part records what it cannot use
(``env.refuse``) and carries on; once every part has run, jitad refuses to start with the whole
list, so an operator sees every problem of an environment at once. Django reads the UPPERCASE
names of this module, so every part's UPPERCASE names are gathered here.
"""
# Imported in this order on purpose (not sorted): each part runs when it is first imported.
from . import env, security, core, celery, kerberos, directory, hosts, vault, breakglass, engine, portal, notifications, siem, reports, retention, reviews, health

_parts = (
    env,            # the environment, PRODUCTION, BASE_DIR, VAR_DIR
    security,       # secret key, login and MFA, sessions and cookies, TLS proxy, CSP
    core,           # apps, middleware, templates, database, time zone, static files, logging
    celery,         # broker, queues, routes, beat
    kerberos,       # jitad's own Kerberos identity: realm, KDCs, keytab
    directory,      # Active Directory over LDAPS
    hosts,          # Windows hosts over WinRM
    vault,          # keys for the secrets jitad keeps
    breakglass,     # sealed accounts, checkouts, runbooks
    engine,         # sweeps, reconciler, leases, watchdog, retries, policy file
    portal,         # JITAD_BASE_URL, passkeys, REST API
    notifications,  # alerts, approvals, deliveries, e-mail
    siem,           # audit stream to SIEM destinations
    reports,        # KPI period, revocation SLA, working hours, risk thresholds
    retention,      # how long closed records and audit events are kept
    reviews,        # eligibility reviews: the sweep's interval
    health,         # /readyz and /metrics: time limits, thresholds, who may read them
)
for _part in _parts:
    globals().update({name: value for name, value in vars(_part).items() if name.isupper()})

if env.problems:
    raise env.problems_error(env.problems)

__all__ = [name for name in globals() if name.isupper()]
