"""The estate every load part of the bench starts from: targets, policies, people, sessions.

2,000 targets (1,980 servers, 40 of them disabled, and 20 tier-0 domain roles), five
policies (auto and manual approval, one disabled), AD groups mirrored into Django groups,
``n_people`` simulated people (pu000…) and 450 more (hu000…) who make up the history.
bench/portal.py and bench/admin.py seed their own history on top. Call after
``django.setup()``; nothing at module level touches Django.
"""
import time
import uuid
from dataclasses import dataclass

N_TARGETS, N_DOMAIN_ROLES, N_DISABLED = 2000, 20, 40
N_HISTORY_USERS = 450
BASE_DN = "DC=corp,DC=example,DC=com"
FIRST_NAMES = ["Alice", "Bruno", "Chloe", "Dmitri", "Elena", "Farid", "Greta", "Hugo", "Ines", "Jonas", "Karin",
               "Lucas", "Maya", "Nils", "Olga", "Pavel", "Quentin", "Rosa", "Sven", "Tara"]
LAST_NAMES = ["Andersen", "Baptiste", "Castillo", "Dubois", "Eriksson", "Fischer", "Garcia", "Horvat", "Ivanova",
              "Jansen", "Kowalski", "Lindqvist", "Moreau", "Novak", "Okafor", "Petrov", "Quinlan", "Rossi", "Schmidt",
              "Tanaka", "Ulrich", "Varga", "Weber", "Xu", "Yilmaz", "Zimmermann", "Bianchi", "Costa", "Dimitrov",
              "Esposito", "Fontaine", "Greco", "Hansen", "Iversen", "Jovanovic", "Keller", "Lambert", "Marino",
              "Nielsen", "Olsen", "Perrin", "Russo", "Santos", "Toth", "Vidal", "Wagner", "Bauer", "Conti", "Duval",
              "Lefebvre"]


@dataclass
class Catalog:
    users: dict  # username -> User
    specs: list  # (username, AD groups), simulated people first
    pools: dict  # AD groups -> [(target, policy)] the person may request
    approvers: list  # users in JIT-Approvers
    groups: dict  # name -> Django Group


def person_name(i: int) -> tuple[str, str]:
    """A first and last name for the i-th person; each last name is shared by about 1 in 50."""
    return FIRST_NAMES[i % len(FIRST_NAMES)], LAST_NAMES[(i * 7) % len(LAST_NAMES)]


def catalog_seed(n_people: int) -> Catalog:
    from django.contrib.auth import get_user_model
    from django.contrib.auth.hashers import make_password
    from django.contrib.auth.models import Group

    from jitad.elevation.models import Policy, Target
    from jitad.elevation.selectors.eligibility import eligibility_search

    sites, roles = ["PAR", "LON", "NYC", "FRA", "SIN"], ["SQL", "WEB", "APP", "FS", "PRT", "RDS"]
    depts = ["finance", "payroll", "logistics", "sales", "research", "hr", "plant", "it"]
    servers = []
    for i in range(N_TARGETS - N_DOMAIN_ROLES):
        name = f"SRV-{sites[i % 5]}-{roles[(i // 5) % 6]}{i:04d}"
        servers.append(Target(name=name, hostname=f"{name.lower()}.corp.example.com",
                              description=f"{roles[(i // 5) % 6]} server for {depts[i % 8]}, site {sites[i % 5]}",
                              group_dn=f"CN=JIT-{name},OU=JIT,{BASE_DN}", enabled=i % 50 != 49))
    domain_roles = [Target(name=f"Domain role {j:02d}", kind=Target.Kind.DOMAIN_ROLE, tier=Target.Tier.IDENTITY,
                           description="Tier 0 role", group_dn=f"CN=JIT-Tier0-{j:02d},OU=JIT,{BASE_DN}")
                    for j in range(N_DOMAIN_ROLES)]
    Target.objects.bulk_create(servers + domain_roles, batch_size=1000)
    servers = list(Target.objects.filter(kind=Target.Kind.SERVER).order_by("id"))
    domain_roles = list(Target.objects.filter(kind=Target.Kind.DOMAIN_ROLE).order_by("id"))

    ticket = r"CHG[0-9]{6}"
    policies = [
        (Policy(name="tier0-domain-roles", priority=5, approval_mode="manual", approvals_required=2,
                eligible_groups=["JIT-Domain-Admins"], approver_groups=["JIT-Approvers"], require_ticket=True,
                ticket_pattern=ticket, max_duration_minutes=120), domain_roles),
        (Policy(name="servers-standard", priority=10, approval_mode="auto", eligible_groups=["JIT-Server-Admins"],
                max_duration_minutes=480), servers[:1200]),
        (Policy(name="servers-sensitive", priority=20, approval_mode="manual", eligible_groups=["jit-server-admins"],
                approver_groups=["JIT-Approvers"], require_ticket=True, ticket_pattern=ticket), servers[1000:1900]),
        (Policy(name="database-servers", priority=30, approval_mode="manual", eligible_groups=["JIT-DBA"],
                approver_groups=["JIT-DBA-Leads"]), [t for t in servers if "-SQL" in t.name]),
        (Policy(name="legacy-contractors", priority=40, enabled=False, eligible_groups=["JIT-Server-Admins"]),
         servers[1900:]),
    ]
    for policy, targets in policies:
        policy.save()
        policy.targets.add(*targets)

    User = get_user_model()
    groups = {n: Group.objects.create(name=n) for n in
              ["JIT-Server-Admins", "JIT-Domain-Admins", "JIT-Approvers", "JIT-DBA", "JIT-DBA-Leads", "Domain Users"]}

    def profile(i: int, simulated: bool) -> tuple[str, ...]:
        if simulated:
            extra = ("JIT-Domain-Admins",) if i < n_people // 5 else ("JIT-Approvers",) if i >= n_people * 4 // 5 else ()
            return ("Domain Users", "JIT-Server-Admins", *extra)
        if i < 300:
            return ("Domain Users", "JIT-Server-Admins")
        if i < 400:
            return ("Domain Users", "JIT-DBA")
        return ("Domain Users", "JIT-Server-Admins", "JIT-Approvers", "JIT-DBA-Leads")

    specs = [(f"pu{i:03d}", profile(i, True)) for i in range(n_people)]
    specs += [(f"hu{i:03d}", profile(i, False)) for i in range(N_HISTORY_USERS)]
    unusable = make_password(None)
    people = []
    for i, (u, _) in enumerate(specs):
        first, last = person_name(i)
        people.append(User(username=u, first_name=first, last_name=last, email=f"{u}@corp.example.com",
                           password=unusable))
    User.objects.bulk_create(people)
    users = {u.username: u for u in User.objects.all()}
    groups_add(users, specs, groups)

    # What each profile may request, from the service the API uses (one representative each).
    pools: dict[tuple, list] = {}
    for u, gs in specs:
        if gs not in pools:
            pools[gs] = eligibility_search(user=users[u], limit=100_000).items
    approvers = [users[u] for u, gs in specs if "JIT-Approvers" in gs]
    return Catalog(users=users, specs=specs, pools=pools, approvers=approvers, groups=groups)


def groups_add(users: dict, specs: list, groups: dict) -> None:
    """Django group memberships and the AD account record, as a login leaves them."""
    from django.contrib.auth import get_user_model

    from jitad.accounts.models import DirectoryAccount

    through = get_user_model().groups.through
    through.objects.bulk_create([through(user_id=users[u].id, group_id=groups[g].id) for u, gs in specs for g in gs])
    DirectoryAccount.objects.bulk_create([
        DirectoryAccount(user=users[u], guid=str(uuid.uuid4()), dn=f"CN={u},OU=People,{BASE_DN}", groups=list(gs))
        for u, gs in specs])


def verified_session(user, device) -> str:
    """A session as a login with MFA leaves it (auth and django-otp keys, verification fresh
    for the whole run); returns its key, for the session cookie."""
    from importlib import import_module

    from django.conf import settings
    from django_otp import DEVICE_ID_SESSION_KEY

    from jitad.accounts.mfa import FRESH_DEVICE_KEY, FRESH_KEY

    session = import_module(settings.SESSION_ENGINE).SessionStore()
    session.update({
        "_auth_user_id": str(user.pk), "_auth_user_backend": "jitad.accounts.backends.ThrottledModelBackend",
        "_auth_user_hash": user.get_session_auth_hash(), DEVICE_ID_SESSION_KEY: device.persistent_id,
        FRESH_KEY: time.time(),  # fresh (JITAD_MFA_FRESH_SECONDS, 15 min) for the whole run
        FRESH_DEVICE_KEY: device.persistent_id,
    })
    session.save()
    return session.session_key
