"""The admin is django-otp's OTPAdminSite: a password alone never opens it."""

from django_otp.oath import totp

from jitad.accounts.devices import AuthenticatorDevice


def test_admin_refuses_password_only_session(client, django_user_model):
    """GIVEN a superuser logged in with a password only WHEN they open the admin THEN they are
    sent to MFA (enrolment without a device, verification with one), and the admin's own
    login page asks for an OTP token."""
    admin = django_user_model.objects.create_superuser("root-admin", password="A-long-passphrase-1")
    client.force_login(admin)
    response = client.get("/admin/")
    assert response.status_code == 302 and response.url.startswith("/account/mfa/enrol/")
    AuthenticatorDevice.objects.create(user=admin, name="phone", confirmed=True)
    response = client.get("/admin/elevation/grant/")
    assert response.status_code == 302 and response.url.startswith("/account/mfa/verify/")
    client.logout()
    page = client.get("/admin/login/")
    assert b'name="otp_token"' in page.content


def test_admin_opens_with_password_and_totp(client, django_user_model):
    admin = django_user_model.objects.create_superuser("otp-admin", password="A-long-passphrase-2")
    device = AuthenticatorDevice.objects.create(user=admin, name="phone", confirmed=True)
    code = f"{totp(device.bin_key, step=device.step, t0=device.t0, digits=device.digits, drift=0):06d}"
    response = client.post("/admin/login/", {"username": "otp-admin", "password": "A-long-passphrase-2",
                                              "otp_device": device.persistent_id, "otp_token": code})
    assert response.status_code == 302, response.content[:500]
    assert client.get("/admin/").status_code == 200
    client.logout()
    wrong = client.post("/admin/login/", {"username": "otp-admin", "password": "A-long-passphrase-2",
                                          "otp_device": device.persistent_id, "otp_token": "000000"})
    assert wrong.status_code == 200  # refused: the form comes back
    assert client.get("/admin/").status_code == 302


def test_the_admin_header_names_the_release_to_those_it_lets_in(client, verified_client, django_user_model):
    """GIVEN the release in jitad.__version__ WHEN staff open the admin with a verified device THEN its
    header names it; the login page, which anyone may load, does not."""
    import jitad

    header = f"jitad administration · {jitad.__version__}"
    login = client.get("/admin/login/")
    assert login.status_code == 200 and jitad.__version__ not in login.content.decode()
    staff = django_user_model.objects.create_user("staff-reader", password="A-long-passphrase-3", is_staff=True)
    page = verified_client(staff).get("/admin/")
    assert page.status_code == 200
    assert header in page.content.decode()
