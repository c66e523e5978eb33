"""Formats every app shares: dates for Django's localisation (FORMAT_MODULE_PATH: the admin shows times as
jitad.humantime does), and spreadsheet-safe CSV (``spreadsheet``)."""
