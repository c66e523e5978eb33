"""The reviewers' portal page and the reviews' REST API (under /api/v1/, with the API's own authentication)."""
from django.urls import path, re_path

from . import api, views

app_name = "reviews"
urlpatterns = [
    path("reviews/", views.page, name="page"),
    path("reviews/items/<int:pk>/decide/", views.item_decide, name="item-decide"),
    re_path(r"^api/v1/reviews(?:/)?$", api.ReviewListView.as_view(), name="api-reviews"),
    re_path(r"^api/v1/reviews/items/(?P<id>[^/]+)/decide(?:/)?$", api.ReviewItemDecideView.as_view(),
            name="api-item-decide"),
]
