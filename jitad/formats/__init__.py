"""Date formats for Django's localisation (FORMAT_MODULE_PATH): the admin shows times as jitad.humantime does."""
