from django.urls import path  # noqa: F401

app_name = "activities"

from . import views as grid_views  # noqa: E402

urlpatterns: list = []

# The activity grid (issue 3).
urlpatterns += [
    path("activities/", grid_views.grid, name="grid"),
    path("activities/count/", grid_views.grid_count, name="grid-count"),
    path("activities/export.csv", grid_views.export_csv, name="export"),
    path("activities/views/", grid_views.saved_view_create, name="saved-view-create"),
    path("activities/views/<int:pk>/", grid_views.saved_view_open, name="saved-view-open"),
    path("activities/views/<int:pk>/delete/", grid_views.saved_view_delete, name="saved-view-delete"),
]
