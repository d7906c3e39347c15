"""Pages of the core domain: contacts, leads, accounts (namespace "crm")."""

from django.urls import path  # noqa: F401

app_name = "crm"

urlpatterns: list = []
