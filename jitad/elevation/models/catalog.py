"""Targets (the servers and their JIT groups) and the policies that make people eligible for them."""
import ipaddress
import re

from django.core.exceptions import ValidationError
from django.db import models

from jitad import directory


# A SID (S-1-5-21-...-1105), or *-<RID> for that RID on any machine or domain (*-500).
# \Z, not $: "$" would also accept a value ending in a newline.
ALLOWED_ADMIN_PATTERN = r"^(S-1-[0-9]+(-[0-9]+)+|\*-[0-9]+)\Z"
WINRM_URL_PATTERN = r"^https?://[^\s/?#@]+(/[^\s?#]*)?\Z"


def ephemeral_problem(value) -> str:
    """Why an ``ephemeral`` setting (docs/ephemeral.md) is not valid, or "" (an empty one is valid: none)."""
    if not value:
        return ""
    if not isinstance(value, dict) or not isinstance(value.get("ou"), str) or not value["ou"]:
        return "an object with at least the OU: {\"ou\": \"OU=Ephemeral,OU=JIT,DC=corp,DC=example\"}"
    if set(value) - {"ou", "suffix_length", "password"}:
        return f"unknown keys: {', '.join(sorted(set(value) - {'ou', 'suffix_length', 'password'}))}"
    if not directory.under_jit_ou(value["ou"]):
        return f"{value['ou']!r} is not under the JIT OU: jitad creates ephemeral accounts only there"
    suffix = value.get("suffix_length", 4)
    if type(suffix) is not int or not 3 <= suffix <= 8:
        return "suffix_length is a whole number from 3 to 8"
    password = value.get("password", {})
    if not isinstance(password, dict) or set(password) - {"length", "classes"}:
        return "password is {\"length\": 16-128, \"classes\": [upper, lower, digit, symbol]}"
    length, classes = password.get("length", 24), password.get("classes", ["upper", "lower", "digit", "symbol"])
    if type(length) is not int or not 16 <= length <= 128:
        return "the password length is a whole number from 16 to 128"
    if (not isinstance(classes, list) or len(set(map(str, classes))) < 3 or len(classes) != len(set(map(str, classes)))
            or set(map(str, classes)) - {"upper", "lower", "digit", "symbol"}):
        return "the password classes are at least three of upper, lower, digit, symbol, each once"
    return ""


def networks_problem(value) -> str:
    """Why a list of networks (CIDRs) is not valid, or ""."""
    if not isinstance(value, list):
        return "a list of networks such as 10.20.0.0/16"
    for cidr in value:
        try:
            ipaddress.ip_network(cidr, strict=True)
        except (TypeError, ValueError):
            return f"{cidr!r} is not a network such as 10.20.0.0/16 or 2001:db8::/32"
    return ""


class Target(models.Model):
    """Something a person can be made admin of: a server, or a domain-level role.

    The right is conferred by membership of ``group_dn`` (a JIT group, normally empty).
    ``standing_members`` lists DNs the reconciler must leave in that group (e.g. a
    nested break-glass group); everyone else must be backed by a live grant.
    """

    class Kind(models.TextChoices):
        SERVER = "server", "Server"
        DOMAIN_ROLE = "domain_role", "Domain role"

    class Tier(models.IntegerChoices):
        """Microsoft's enterprise access model: what a compromise of the target would expose."""

        IDENTITY = 0, "Tier 0: identity (domain controllers, AD)"
        SERVERS = 1, "Tier 1: servers and applications"
        DEVICES = 2, "Tier 2: workstations and devices"

    name = models.CharField(max_length=128, unique=True)
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.SERVER)
    tier = models.PositiveSmallIntegerField(choices=Tier.choices, default=Tier.SERVERS, db_index=True)
    hostname = models.CharField(max_length=255, blank=True, help_text="FQDN, for servers")
    description = models.TextField(blank=True)
    group_dn = models.CharField(max_length=512, help_text="the AD group that grants the right")
    standing_members = models.JSONField(default=list, blank=True)
    nested_into_protected = models.BooleanField(
        "nested into a protected group on purpose (tier 0)", default=False,
        help_text="the JIT group is nested into Domain Admins or another protected group by design, so AD's "
                  "SDProp marks it adminCount=1: accept that for this group (never Domain Admins itself "
                  "or another well-known privileged group)",
    )
    approver_groups = models.JSONField(
        default=list, blank=True,
        help_text="AD group names whose members may approve requests for this target, besides the policy's",
    )
    winrm_url = models.CharField(
        "WinRM URL", max_length=255, blank=True,
        help_text="e.g. https://srv01.corp.example:5986/wsman; blank: the right is not checked on the server",
    )
    winrm_transport = models.CharField(
        "WinRM authentication", max_length=16, default="kerberos",
        choices=[("kerberos", "Kerberos"), ("ntlm", "NTLM (only where its profile allows it)"),
                 ("certificate", "Client certificate (HTTPS)"), ("basic", "Basic (HTTPS only)")],
        help_text="Kerberos names the server by its hostname above (HTTP/<hostname>), else by the URL's host",
    )
    winrm_profile = models.CharField(
        "WinRM credential profile", max_length=64, blank=True,
        help_text="JITAD_WINRM_PROFILE_<NAME>_* in the environment; blank: the default JITAD_WINRM_* profile",
    )
    allowed_admins = models.JSONField(
        default=list, blank=True,
        help_text="SIDs (or *-RID) allowed in this server's local Administrators besides the JIT group "
                  "and JITAD_HOST_ALLOWED_ADMINS",
    )
    class Exclusive(models.TextChoices):
        """One admin at a time (docs/approvals.md, "Exclusive elevation")."""

        NO = "", "No: several people may hold it at once"
        WAIT = "wait", "One at a time: a second grant waits for the first to end"
        REFUSE = "refuse", "One at a time: a second request is refused while it is held"

    exclusive = models.CharField(max_length=8, choices=Exclusive.choices, blank=True, default="")
    ephemeral = models.JSONField(
        default=dict, blank=True,
        help_text="grant through an account created for each grant (docs/ephemeral.md): {ou, name_suffix_length, "
                  "password: {length, classes}}; empty: as the policy says",
    )
    logon_sources = models.JSONField(
        default=list, blank=True,
        help_text="networks (CIDRs) admins are expected to log on to this server from; a logon from elsewhere "
                  "during a grant is a signal; empty: any",
    )
    enabled = models.BooleanField(default=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def clean(self):
        if self.allowed_admins is None:  # an emptied admin field
            self.allowed_admins = []
        self.ephemeral = self.ephemeral or {}
        self.logon_sources = self.logon_sources or []
        for field, problem in (("ephemeral", ephemeral_problem(self.ephemeral)),
                               ("logon_sources", networks_problem(self.logon_sources))):
            if problem:
                raise ValidationError({field: problem})
        url = (self.winrm_url or "").strip()
        if url and not re.match(WINRM_URL_PATTERN, url):
            raise ValidationError({"winrm_url": "a WinRM URL looks like https://srv01.corp.example:5986/wsman"})
        if url.lower().startswith("http://") and self.winrm_transport in ("basic", "certificate"):
            raise ValidationError({"winrm_transport": "Basic and certificate authentication need an https:// URL"})
        if not isinstance(self.allowed_admins, list) or any(
            not isinstance(a, str) or not re.match(ALLOWED_ADMIN_PATTERN, a) for a in self.allowed_admins
        ):
            raise ValidationError({"allowed_admins": "a list of SIDs (S-1-5-21-...) or *-RID entries (*-500)"})

    @property
    def host_checked(self) -> bool:
        """True when grants of this target are verified on the server over WinRM."""
        return bool(self.winrm_url)

    def __str__(self):
        return self.name


class Policy(models.Model):
    """Who may request which targets, for how long, and who must approve."""

    class ApprovalMode(models.TextChoices):
        AUTO = "auto", "Automatic"
        MANUAL = "manual", "Approvers"

    name = models.SlugField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    priority = models.PositiveIntegerField(default=100, help_text="lowest number wins when several policies match")
    targets = models.ManyToManyField(Target, related_name="policies", blank=True)
    eligible_groups = models.JSONField(default=list, blank=True, help_text="AD group names (sAMAccountName)")
    eligible_users = models.JSONField(default=list, blank=True, help_text="AD user names (sAMAccountName)")
    default_duration_minutes = models.PositiveIntegerField(default=60)
    max_duration_minutes = models.PositiveIntegerField(
        default=240, help_text="the longest a grant may last, its extensions included",
    )
    approval_mode = models.CharField(max_length=8, choices=ApprovalMode.choices, default=ApprovalMode.MANUAL)
    approvals_required = models.PositiveSmallIntegerField(default=1)
    approver_groups = models.JSONField(default=list, blank=True, help_text="AD group names whose members may approve")
    distinct_approver_groups = models.BooleanField(
        default=False,
        help_text="each approval must come from a different approver group (e.g. a peer and a manager)",
    )
    allow_bulk_decisions = models.BooleanField(
        default=False, help_text="approvers may decide several of these requests in one admin action"
    )
    notify = models.JSONField(
        default=list, blank=True,
        help_text="names of notification destinations (JITAD_NOTIFY_<NAME>) told of new requests to decide",
    )
    pending_timeout_minutes = models.PositiveIntegerField(default=240)
    require_justification = models.BooleanField(default=True)
    min_justification_length = models.PositiveIntegerField(default=10)
    require_ticket = models.BooleanField(default=False)
    ticket_pattern = models.CharField(max_length=200, blank=True, help_text="regular expression a ticket must match")
    max_extensions = models.PositiveSmallIntegerField(default=2)
    # -- approval workflows (docs/approvals.md); the policy file's shapes, normalised by the loader ----------
    stages = models.JSONField(
        default=list, blank=True,
        help_text="approval stages in order (AND): [{name, approvals_required, approver_groups, distinct_groups, "
                  "escalation: {after_minutes, groups, notify, add_as_approvers} | null, "
                  "timeout: {after_minutes, action: deny|approve} | null}]; empty: one stage from the fields above",
    )
    time_windows = models.JSONField(
        default=dict, blank=True,
        help_text="{timezone, rules: [{days: [mon..sun], start: 'HH:MM', end: 'HH:MM', then}], otherwise, "
                  "extra_stage: {stage}}; then/otherwise: policy | auto | extra_stage | refuse; empty: always 'policy'",
    )
    schedule_max_lead_minutes = models.PositiveIntegerField(
        default=0, help_text="how far ahead a request may ask its access to start; 0: scheduled requests are refused",
    )

    class ScheduleClock(models.TextChoices):
        SCHEDULED_START = "scheduled_start", "from the scheduled start (a late approval shortens the grant)"
        APPROVAL = "approval", "from when the grant starts (a late approval keeps the whole duration)"

    schedule_clock = models.CharField(max_length=16, choices=ScheduleClock.choices, default=ScheduleClock.SCHEDULED_START)
    networks = models.JSONField(
        default=list, blank=True, help_text="client networks (CIDRs) requests must come from; empty: any",
    )
    review = models.JSONField(
        default=dict, blank=True,
        help_text="eligibility review: {every_minutes, deadline_minutes, reviewers, default: remove|keep, "
                  "remind_before_minutes: [...], managed_group: DN under the JIT OU or ''}; empty: no reviews",
    )
    end_sessions_on_revoke = models.BooleanField(
        default=False,
        help_text="when a grant ends, log the user off the server and stop their processes, "
                  "so no logon token keeps the right",
    )
    ephemeral = models.JSONField(
        default=dict, blank=True,
        help_text="grant through an account created for each grant (docs/ephemeral.md): {ou, name_suffix_length, "
                  "password: {length, classes}}; empty: the person's own account (a target's setting wins)",
    )
    enabled = models.BooleanField(default=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["priority", "name"]
        verbose_name_plural = "policies"

    def __str__(self):
        return self.name

    def clean(self):
        self.ephemeral = self.ephemeral or {}
        if ephemeral_problem(self.ephemeral):
            raise ValidationError({"ephemeral": ephemeral_problem(self.ephemeral)})
        if self.default_duration_minutes > self.max_duration_minutes:
            raise ValidationError("the default duration exceeds the maximum")
        if self.approval_mode == self.ApprovalMode.MANUAL and self.approvals_required < 1:
            raise ValidationError("manual approval needs at least one approver")
        if self.distinct_approver_groups and self.approvals_required > len(self.approver_groups or []):
            # Target approver groups may add more at decision time; the policy alone must suffice.
            raise ValidationError("distinct approver groups need at least as many groups as approvals required")
        if self.ticket_pattern:
            try:
                re.compile(self.ticket_pattern)
            except re.error as e:
                raise ValidationError(f"ticket pattern is not a valid regular expression: {e}") from e
