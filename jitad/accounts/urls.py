from django.urls import path

from . import views

app_name = "accounts"
urlpatterns = [
    path("login/", views.login_view, name="login"),
    path("logout/", views.logout_view, name="logout"),
    path("mfa/verify/", views.mfa_verify, name="mfa-verify"),
    path("mfa/enrol/", views.mfa_enrol, name="mfa-enrol"),
    path("mfa/enrol/code/", views.mfa_enrol_code, name="mfa-enrol-code"),
    path("mfa/backup-codes/", views.backup_codes, name="backup-codes"),
    path("security/", views.security, name="security"),
    path("security/devices/remove/", views.device_remove, name="device-remove"),
    path("security/tokens/", views.token_create, name="token-create"),
    path("security/tokens/<int:pk>/revoke/", views.token_revoke, name="token-revoke"),
]
