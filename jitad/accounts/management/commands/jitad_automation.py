"""Automation identities for operators: create one, set its rights and signing key, give it tokens, list and revoke
them, disable it."""
import getpass
from pathlib import Path

from django.contrib.auth import get_user_model

from jitad import directory
from jitad.accounts.automation import (SCOPES, AutomationRefused, UnknownToken, automation_create, automation_disable,
                                       automation_key_set, automation_rights_check, automation_rights_set,
                                       automation_token_create, automation_token_revoke, automation_tokens)
from jitad.accounts.models import AutomationIdentity
from jitad.accounts.provisioning import ProvisionRefused, account_provision
from jitad.commands import JitadCommand, problems_error, unreachable_error, usage_error

User = get_user_model()


class UnknownIdentity(Exception):
    """No automation identity has that name (bad usage, exit 2)."""


class Command(JitadCommand):
    help = ("Automation identities: API clients that are not people (docs/mfa.md, 'Automation identities'). "
            f"Scopes: {', '.join(sorted(SCOPES))}. Exit codes: 0 done, 1 refused, 2 no such identity or token, "
            "69 no DC answered (--ad-account).")

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        create = sub.add_parser("create", help="a new identity")
        rights = sub.add_parser("rights", help="replace an identity's scopes and targets")
        for p in (create, rights):
            p.add_argument("--scope", action="append", default=[], help="a scope it may use (repeat)")
            p.add_argument("--target", action="append", default=[], help="a target requests.create may name (repeat)")
        create.add_argument("--ad-account", default="", help="an AD service account to act as (needed to be granted "
                                                             "rights itself); default: a local user named NAME")
        create.add_argument("--description", default="")
        key = sub.add_parser("key", help="set its signing key: --public-key, or a new pair (private key printed once)")
        key.add_argument("--public-key", default="", help="an Ed25519 public key (PEM or base64url), or a file holding it")
        token = sub.add_parser("token", help="a new API token (printed once)")
        token.add_argument("--days", type=int, default=90)
        token.add_argument("--token-name", default="", help="what the token is for (default: the identity's name)")
        tokens = sub.add_parser("tokens", help="its tokens, live or not: prefix, name, created, expires, last used, revoked")
        revoke = sub.add_parser("token-revoke", help="revoke one token (its others keep working)")
        disable = sub.add_parser("disable", help="stop it: inactive, every token revoked")
        for p in (revoke, disable):
            p.add_argument("--reason", default="")
        sub.add_parser("list", help="every identity and its rights")
        for p in (create, rights, key, token, tokens, revoke, disable):
            p.add_argument("name", help="the identity's name (with --ad-account: the name it gets from AD)")
            if p is not tokens:
                p.add_argument("--by", default="", help="who does it (default: your login on this machine)")
        revoke.add_argument("prefix", help="the token's prefix (jitad_automation tokens NAME lists them)")

    def handle(self, *args, **options):
        action = options["action"]
        actor = (options.get("by") or "").strip() or f"manage.py:{getpass.getuser()}"
        try:
            out, text = getattr(self, f"_{action.replace('-', '_')}")(options, actor)
        except (UnknownIdentity, UnknownToken) as e:
            raise usage_error(str(e)) from None
        except (AutomationRefused, ProvisionRefused) as e:
            raise problems_error(str(e)) from None
        except directory.DirectoryError as e:
            raise unreachable_error(f"Active Directory: {e}") from None
        self.result = out
        self.say(text)

    @staticmethod
    def _identity(name: str) -> AutomationIdentity:
        identity = AutomationIdentity.objects.select_related("user").filter(user__username__iexact=name.strip()).first()
        if identity is None:
            raise UnknownIdentity(f"no automation identity {name!r}")
        return identity

    @staticmethod
    def _describe(identity: AutomationIdentity) -> dict:
        return {"name": identity.user.get_username(), "active": identity.user.is_active, "scopes": identity.scopes,
                "targets": identity.targets, "signing_key": bool(identity.public_key),
                "directory": hasattr(identity.user, "directory_account")}

    def _create(self, options, actor):
        user = None
        if options["ad_account"]:
            automation_rights_check(scopes=options["scope"], targets=options["target"])
            user = account_provision(name=options["ad_account"], actor=actor).user
        identity = automation_create(name=options["name"], actor=actor, scopes=options["scope"],
                                     targets=options["target"], description=options["description"], user=user)
        out = self._describe(identity)
        return out, (f"automation identity {out['name']} created: scopes {', '.join(out['scopes']) or 'none'}; "
                     f"next: jitad_automation key {out['name']}, then jitad_automation token {out['name']}")

    def _rights(self, options, actor):
        identity = automation_rights_set(identity=self._identity(options["name"]), actor=actor, scopes=options["scope"],
                                         targets=options["target"])
        out = self._describe(identity)
        return out, f"{out['name']}: scopes {', '.join(out['scopes']) or 'none'}; targets {', '.join(out['targets']) or 'none'}"

    def _key(self, options, actor):
        given = options["public_key"].strip()
        if given and not given.startswith("-----") and Path(given).is_file():
            given = Path(given).read_text()
        identity = self._identity(options["name"])
        private = automation_key_set(identity=identity, actor=actor, public_key=given)
        identity.refresh_from_db()
        out = {"name": identity.user.get_username(), "public_key": identity.public_key}
        if private:
            out["private_key"] = private
            return out, (f"{private}\nThe private key above is shown once: store it where {out['name']} runs "
                         "(a secret store), never here.")
        return out, f"{out['name']}: public key {identity.public_key} set"

    def _token(self, options, actor):
        token, raw = automation_token_create(identity=self._identity(options["name"]), actor=actor,
                                             name=options["token_name"] or options["name"],
                                             days=options["days"] or None)
        out = {"name": token.user.get_username(), "token": raw, "prefix": token.prefix,
               "expires_at": token.expires_at.isoformat() if token.expires_at else None}
        return out, f"{raw}\nShown once; expires {out['expires_at'] or 'never'}."

    def _tokens(self, options, actor):
        identity = self._identity(options["name"])
        rows = [{"prefix": t.prefix, "name": t.name, "created_at": _iso(t.created_at),
                 "state": "revoked" if t.revoked_at else "live" if t.is_live else "expired",
                 "expires_at": _iso(t.expires_at), "last_used_at": _iso(t.last_used_at), "revoked_at": _iso(t.revoked_at)}
                for t in automation_tokens(identity=identity)]
        text = "\n".join(f"{r['prefix']:10} {r['state']:8} {r['name'][:24]:24} created {r['created_at'][:16]} "
                         f"expires {(r['expires_at'] or 'never')[:16]} last used {(r['last_used_at'] or 'never')[:16]}"
                         + (f" revoked {r['revoked_at'][:16]}" if r["revoked_at"] else "") for r in rows)
        return {"name": identity.user.get_username(), "tokens": rows}, text or "no tokens"

    def _token_revoke(self, options, actor):
        identity = self._identity(options["name"])
        token, revoked = automation_token_revoke(identity=identity, actor=actor, prefix=options["prefix"],
                                                 reason=options["reason"])
        out = {"name": identity.user.get_username(), "prefix": token.prefix, "revoked": revoked,
               "revoked_at": _iso(token.revoked_at)}
        return out, (f"token {token.prefix} of {out['name']} revoked" if revoked
                     else f"token {token.prefix} of {out['name']} was revoked already ({out['revoked_at']})")

    def _disable(self, options, actor):
        identity = self._identity(options["name"])
        revoked = automation_disable(identity=identity, actor=actor, reason=options["reason"])
        return {"name": identity.user.get_username(), "tokens_revoked": revoked}, f"disabled; {revoked} token(s) revoked"

    def _list(self, options, actor):
        rows = [self._describe(i) for i in AutomationIdentity.objects.select_related("user").order_by("user__username")]
        return {"identities": rows}, "\n".join(
            f"{r['name']:24} {'active' if r['active'] else 'disabled':8} {','.join(r['scopes']) or '-'} "
            f"targets={','.join(r['targets']) or '-'} key={'yes' if r['signing_key'] else 'no'}" for r in rows) or "none"


def _iso(moment) -> str | None:
    return moment.isoformat() if moment else None


