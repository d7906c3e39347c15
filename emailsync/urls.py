from django.urls import path

from . import views

app_name = "emailsync"

urlpatterns = [
    path("mailboxes/", views.mailbox_list, name="mailbox-list"),
    path("mailboxes/new/", views.mailbox_add, name="mailbox-add"),
    path("mailboxes/test/", views.mailbox_test_new, name="mailbox-test-new"),
    path("mailboxes/smtp/", views.smtp_settings, name="smtp-settings"),
    path("mailboxes/<int:pk>/edit/", views.mailbox_edit, name="mailbox-edit"),
    path("mailboxes/<int:pk>/test/", views.mailbox_test, name="mailbox-test"),
    path("mailboxes/<int:pk>/sync/", views.mailbox_sync, name="mailbox-sync"),
    path("mailboxes/<int:pk>/status/", views.mailbox_status, name="mailbox-status"),
    path("emails/<int:pk>/", views.email_detail, name="email-detail"),
    path("emails/<int:pk>/body/", views.email_body, name="email-body"),
    path("contacts/<int:contact_pk>/email/new/", views.compose, name="compose"),
    path("outgoing/<int:pk>/", views.outgoing_detail, name="outgoing-detail"),
]
