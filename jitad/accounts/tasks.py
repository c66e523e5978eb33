"""Celery tasks of the accounts app: thin, each calling one service."""
import logging

from celery import shared_task

from jitad.directory import DirectoryUnavailable

from .directory_sync import accounts_refresh_from_directory

log = logging.getLogger(__name__)


@shared_task(name="jitad.accounts.refresh_from_directory", expires=600)
def accounts_refresh() -> dict:
    try:
        return accounts_refresh_from_directory()
    except DirectoryUnavailable as e:
        log.warning("directory sync skipped, no DC answered: %s", e)
        return {}
