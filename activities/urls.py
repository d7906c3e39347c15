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

# Capturing activities (issue 5): log / edit / delete manual entries; the activities API.
from . import api as capture_api  # noqa: E402
from . import capture_views  # noqa: E402

urlpatterns += [
    path("activities/log/", capture_views.activity_log_view, name="log"),
    path("activities/<int:pk>/edit/", capture_views.activity_edit_view, name="edit"),
    path("activities/<int:pk>/delete/", capture_views.activity_delete_view, name="delete"),
    path("api/v1/activities", capture_api.activities_create, name="api-activities"),
    path("api/v1/schema", capture_api.schema, name="api-schema"),
]

# Communication analytics (issue 9).
from . import analytics_views  # noqa: E402

urlpatterns += [
    path("analytics/", analytics_views.dashboard, name="analytics"),
    path("analytics/export.csv", analytics_views.export_csv, name="analytics-export"),
    path("contacts/<int:pk>/analytics/", analytics_views.contact_analytics, name="contact-analytics"),
    path("accounts/<int:pk>/analytics/", analytics_views.account_analytics, name="account-analytics"),
]
