from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from . import observability, views

urlpatterns = [
    path("", views.home, name="home"),
    path("login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("tenant/switch/", views.tenant_switch, name="tenant-switch"),
    path("admin/", admin.site.urls),
    path("healthz", observability.healthz, name="healthz"),
    path("readyz", observability.readyz, name="readyz"),
    path("metrics", observability.metrics, name="metrics"),
]

# Each app's URLconf is namespaced and spells out its own full paths (no tenant id in any URL).
urlpatterns += [
    path("", include("crm.app_urls")),
    path("", include("activities.urls")),
    path("", include("contactcenter.urls")),
    path("", include("emailsync.urls")),
]
