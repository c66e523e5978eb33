"""Links from local users to AD accounts, and personal API tokens."""
import hashlib
import secrets

from django.conf import settings
from django.db import models
from django.utils import timezone


class DirectoryAccount(models.Model):
    """The AD account behind a local user, keyed by objectGUID so a rename finds the same person.

    A user without one is a local account (first admin, break-glass operators): it logs in
    with its Django password and never through AD. A user with one has no usable local
    password and its Django groups mirror its AD groups, refreshed at every login and by
    the periodic directory sync. ``missing_since`` is set when a sync could not find the
    account; a second miss blocks the person (one miss may be a DC's read gap).
    """

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="directory_account")
    guid = models.CharField(max_length=36, unique=True)
    dn = models.CharField(max_length=1024)
    sid = models.CharField(max_length=184, blank=True)
    groups = models.JSONField(default=list, blank=True, help_text="AD group names at the last login")
    synced_at = models.DateTimeField(default=timezone.now)
    missing_since = models.DateTimeField(null=True, blank=True)

    def __str__(self):
        return self.dn


class ApiTokenQuerySet(models.QuerySet):
    def live(self):
        return self.filter(revoked_at__isnull=True).filter(models.Q(expires_at__isnull=True) | models.Q(expires_at__gt=timezone.now()))


class ApiToken(models.Model):
    """A personal API token. Only a SHA-256 digest is stored: the token is shown once, at creation.

    Tokens look like ``jitad_<prefix>_<secret>``; the prefix finds the row, the digest of
    the whole string proves it. A token authenticates; it never stands in for the OTP code
    that every state-changing API call carries.
    """

    PREFIX_LEN = 8
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16, unique=True)
    digest = models.CharField(max_length=64)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    # Set on the tokens of an automation identity (and only there): the authentication reads the
    # identity's rights for these alone, so a person's call costs no extra query.
    automation = models.ForeignKey("AutomationIdentity", null=True, blank=True, on_delete=models.CASCADE,
                                   related_name="tokens")

    objects = ApiTokenQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return f"{self.name} ({self.prefix})"

    @staticmethod
    def hash(raw: str) -> str:
        return hashlib.sha256(raw.encode()).hexdigest()

    @classmethod
    def generate(cls) -> tuple[str, str, str]:
        """A new (raw token, prefix, digest)."""
        prefix = secrets.token_hex(cls.PREFIX_LEN // 2)
        raw = f"jitad_{prefix}_{secrets.token_urlsafe(32)}"
        return raw, prefix, cls.hash(raw)

    @property
    def is_live(self) -> bool:
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > timezone.now())


from .devices import BackupCode, BackupCodeDevice, AuthenticatorDevice  # noqa: E402,F401  (MFA devices, sealed secrets)


class LoginFailure(models.Model):
    """One wrong password (never the password itself): for which account, from which client, when.

    The login throttle (jitad.accounts.throttle) counts these rows, so every web process
    agrees without a shared cache. ``account`` is the AD account's sAMAccountName in lower
    case, or for a name no AD user has, the name as typed, normalised (``throttle.login_key``); ``client`` the client address (an IPv6 address by its /64).
    A correct password for the account marks its rows ``account_cleared``: they stop counting
    against the account (AD resets its own bad-password count then too) but still count
    against the client that made them. Rows older than the window are deleted.
    """

    at = models.DateTimeField(default=timezone.now, db_index=True)
    account = models.CharField(max_length=150)
    client = models.CharField(max_length=64)
    account_cleared = models.BooleanField(default=False)

    class Meta:
        indexes = [models.Index(fields=["account", "at"]), models.Index(fields=["client", "at"])]

    def __str__(self):
        return f"{self.account} from {self.client} at {self.at:%Y-%m-%d %H:%M:%S}"


class LoginSource(models.Model):
    """A client address from which an account completed a whole login (password and MFA).

    Wrong passwords for the account from such an address count on their own, not with those
    from everywhere else: someone guessing a person's name from elsewhere cannot pause that
    person where they normally log in. Forgotten after JITAD_LOGIN_KNOWN_ADDRESS_DAYS.
    """

    account = models.CharField(max_length=150)
    client = models.CharField(max_length=64)
    last_login_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["account", "client"], name="login_source_account_client")]

    def __str__(self):
        return f"{self.account} from {self.client}"


class LoginPauseNotice(models.Model):
    """The last time a login pause of one scope and key was audited (and how many attempts it refused since).

    One audit event per pause, not one per refused attempt, so a flood of attempts cannot
    flood the audit trail; scope ``alert:<kind>`` rows limit the security channel the same way.
    """

    scope = models.CharField(max_length=32)
    key = models.CharField(max_length=150)
    noticed_at = models.DateTimeField(default=timezone.now)
    refused = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["scope", "key"], name="login_pause_notice_scope_key")]

    def __str__(self):
        return f"{self.scope} {self.key}"


class ApiMfaStep(models.Model):
    """A passkey step for the REST API, for people who have no code to type: a challenge, then a single-use step.

    ``POST /api/v1/mfa/passkey/options`` makes a row holding the WebAuthn challenge for the
    caller (and the API token that authenticated it; none for a portal session). ``verify``
    takes the row's challenge out (a challenge is answered once), checks the assertion with
    django-otp-webauthn, and stores only the SHA-256 ``digest`` of the opaque step it
    returns: the step itself is in no table. A write's ``mfa_step`` is accepted once
    (``used_at``), from the same person and token, before ``expires_at``.
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_mfa_steps")
    api_token = models.ForeignKey(ApiToken, null=True, blank=True, on_delete=models.CASCADE, related_name="mfa_steps")
    challenge = models.CharField(max_length=128, blank=True, help_text="base64url; emptied once answered")
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    device = models.CharField(max_length=255, blank=True, help_text="the passkey that answered (persistent id)")
    verified_at = models.DateTimeField(null=True, blank=True)
    digest = models.CharField(max_length=64, blank=True, db_index=True, help_text="SHA-256 of the step given out")
    expires_at = models.DateTimeField(null=True, blank=True)
    used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["user", "created_at"])]

    def __str__(self):
        return f"passkey step {self.pk} of {self.user}"


class EnrolmentCode(models.Model):
    """A one-time code the service desk gives a person out of band; their first MFA enrolment must present it.

    Without it (JITAD_ENROLMENT_CODE_REQUIRED), whoever first logs in with a person's password
    would enrol the authenticator that then stands for that person. The code is shown once, to
    the operator who issues it (``manage.py jitad_enrolment_code issue`` or the admin), and is in
    no table: ``sealed_digest`` is its SHA-256 sealed in the vault for this row and person
    (``enrolment_code_ref``), so a database dump holds nothing to type, and someone who can
    write to the database but holds no vault key cannot plant a code of their own. A code is
    single use (``used_at``, set when a session presents it), expires (``expires_at``), dies
    after JITAD_ENROLMENT_CODE_MAX_ATTEMPTS wrong tries (``failed_attempts``), and a newer code
    for the same person voids it (``voided_at``, ``void_reason``). Issue and use are audited.
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="enrolment_codes")
    sealed_digest = models.TextField(editable=False)
    issued_by = models.CharField(max_length=150)
    issued_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)
    failed_attempts = models.PositiveSmallIntegerField(default=0)
    voided_at = models.DateTimeField(null=True, blank=True)
    void_reason = models.CharField(max_length=32, blank=True)

    class Meta:
        indexes = [models.Index(fields=["user", "issued_at"])]

    def __str__(self):
        return f"enrolment code {self.pk} of {self.user}"


def enrolment_code_ref(code_id, user_id) -> str:
    """What an enrolment code's digest is sealed for (its row and its person)."""
    return f"enrolment-code:{code_id}:user:{user_id}"


class AutomationIdentity(models.Model):
    """A non-human API client (a deployment pipeline, a report exporter) with its own scoped rights.

    It is a user (``user``: its name in the audit trail, its requests and grants, like a
    person's) that can never log in to the portal: a local one has no usable password, one
    linked to an AD service account (so that it can be granted rights on servers itself) is
    refused by the login backends, and it has no MFA device. It calls the API with its own
    tokens (``ApiToken.automation``), and only the calls its ``scopes`` name
    (jitad/accounts/automation_api.py); ``requests.create`` only for targets named in
    ``targets``. Its writes are signed (Ed25519) with a key only it holds: the database keeps
    ``public_key`` alone (docs/mfa.md, "Automation identities"). Every change is audited.
    """

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="automation_identity")
    description = models.CharField(max_length=200, blank=True)
    scopes = models.JSONField(default=list, blank=True)
    targets = models.JSONField(default=list, blank=True, help_text="names of the targets requests.create may name")
    public_key = models.CharField(max_length=64, blank=True, help_text="Ed25519, 32 bytes as base64url; writes need it")
    created_by = models.CharField(max_length=150)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name_plural = "automation identities"

    def __str__(self):
        return self.user.get_username()


class AutomationNonce(models.Model):
    """A signed write's nonce, kept while its timestamp is inside the window: a replay finds it here and is refused."""

    automation = models.ForeignKey(AutomationIdentity, on_delete=models.CASCADE, related_name="nonces")
    nonce = models.CharField(max_length=64)
    at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["automation", "nonce"], name="automation_nonce_once")]
        indexes = [models.Index(fields=["automation", "at"])]
