"""Where settings come from: the environment (django-environ), the checkout, and the var dir.

JITAD_ENV=production turns on the fail-fast checks in the other parts; JITAD_VAR_DIR holds
everything jitad writes on a single machine (SQLite, the broker folder, generated keys).
"""
from pathlib import Path

import environ

# jitad/settings/env.py -> the checkout.
BASE_DIR = Path(__file__).resolve().parent.parent.parent
env = environ.Env()

JITAD_ENV = env.str("JITAD_ENV", default="development")
PRODUCTION = JITAD_ENV == "production"
VAR_DIR = Path(env.str("JITAD_VAR_DIR", default=str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)
