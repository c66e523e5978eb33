"""Rows the reports own, and the ``view_reports`` permission."""
from django.db import models


class ReportAccess(models.Model):
    """No table: the holder of the ``reports.view_reports`` permission sees the Reports area.

    Give it to the security and audit people (a group in the admin) without making them
    approvers or superusers.
    """

    class Meta:
        managed = False
        default_permissions = ()
        permissions = [("view_reports", "Can view reports, access history and exports")]
