"""Pages of the core domain: contacts, leads, accounts (namespace "crm")."""

from django.urls import path

from . import entity_views

app_name = "crm"

urlpatterns: list = [
    # Grids with activity badges.
    path("contacts/", entity_views.contact_list, name="contact-list"),
    path("leads/", entity_views.lead_list, name="lead-list"),
    path("accounts/", entity_views.account_list, name="account-list"),
    # Detail pages (the contact's Activity tab is the timeline).
    path("contacts/<int:pk>/", entity_views.contact_detail, name="contact-detail"),
    path("leads/<int:pk>/", entity_views.lead_detail, name="lead-detail"),
    path("accounts/<int:pk>/", entity_views.account_detail, name="account-detail"),
    # Timeline windows: modal over the grid with htmx, a full page without. The same URL serves
    # "load older" (?before=<cursor>) and the real-time poller (?after=<cursor>, htmx only).
    path("contacts/<int:pk>/timeline/", entity_views.contact_timeline, name="contact-timeline"),
    path("leads/<int:pk>/timeline/", entity_views.lead_timeline, name="lead-timeline"),
    path("accounts/<int:pk>/timeline/", entity_views.account_timeline, name="account-timeline"),
]

# Capturing activities (issue 5): lead conversion, contact edits, API keys, deleted activities.
from . import capture_views  # noqa: E402

urlpatterns += [
    path("leads/<int:pk>/convert/", capture_views.lead_convert_view, name="lead-convert"),
    path("contacts/<int:pk>/edit/", capture_views.contact_edit_view, name="contact-edit"),
    path("settings/api-keys/", capture_views.api_key_list_view, name="api-keys"),
    path("settings/api-keys/<int:pk>/revoke/", capture_views.api_key_revoke_view, name="api-key-revoke"),
    path("activities/deleted/", capture_views.deleted_activity_list_view, name="activity-deleted-list"),
    path("activities/<int:pk>/restore/", capture_views.activity_restore_view, name="activity-restore"),
]

# Members and teams (admins; managers for the agents of their teams). Object ids are membership / team ids.
from . import member_views  # noqa: E402

urlpatterns += [
    path("settings/members/", member_views.member_list_view, name="member-list"),
    path("settings/members/add/", member_views.member_add_view, name="member-add"),
    path("settings/members/<int:pk>/", member_views.member_edit_view, name="member-edit"),
    path(
        "settings/members/<int:pk>/deactivate/", member_views.member_deactivate_view, name="member-deactivate"
    ),
    path(
        "settings/members/<int:pk>/reactivate/", member_views.member_reactivate_view, name="member-reactivate"
    ),
    path("settings/teams/", member_views.team_list_view, name="team-list"),
    path("settings/teams/<int:pk>/", member_views.team_edit_view, name="team-edit"),
    path("settings/teams/<int:pk>/delete/", member_views.team_delete_view, name="team-delete"),
]

# The operations page (tenant admins): mail sync, outbox and workers. Ids are mailbox / outgoing email ids.
from . import operations_views  # noqa: E402

urlpatterns += [
    path("settings/operations/", operations_views.operations_view, name="operations"),
    path(
        "settings/operations/mailboxes/<int:pk>/sync/",
        operations_views.operations_mailbox_sync,
        name="operations-mailbox-sync",
    ),
    path(
        "settings/operations/outgoing/<int:pk>/retry/",
        operations_views.operations_outgoing_retry,
        name="operations-outgoing-retry",
    ),
]
