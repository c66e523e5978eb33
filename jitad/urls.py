"""URL configuration. The admin requires a verified OTP device (django-otp's OTPAdminSite)."""
from django.contrib import admin
from django.urls import path
from django_otp.admin import OTPAdminSite

admin.site.__class__ = OTPAdminSite
admin.site.site_header = "jitad administration"
admin.site.site_title = "jitad"

urlpatterns = [
    path("admin/", admin.site.urls),
]
