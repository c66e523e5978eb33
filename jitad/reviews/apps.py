from django.apps import AppConfig


class ReviewsConfig(AppConfig):
    name = "jitad.reviews"
    label = "reviews"
    verbose_name = "eligibility reviews"
