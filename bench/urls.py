"""The project's URLs plus two benchmark-only views: the render floor and the naive baseline."""

from django.urls import path

from crm.urls import urlpatterns as project_urlpatterns

from .views import floor, naive

urlpatterns = [
    path("__bench/floor/", floor),
    path("__bench/naive/", naive),
    *project_urlpatterns,
]
