"""Django admin: a tenant's staff admin sees and edits only their tenant; superusers see all."""

import pytest
from django.apps import apps
from django.contrib import admin
from django.contrib.contenttypes.models import ContentType
from django.urls import reverse

from activities.models import Activity
from crm.models import Contact, Role
from tests.crm.test_tenancy import FACTORIES
from tests.factories import (
    AccountFactory,
    ActivityFactory,
    ContactFactory,
    MembershipFactory,
    TeamFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def cheap_passwords(settings):
    """Every test here makes users and logs them in with force_login: hash their passwords cheaply."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def staff_admin(tenant, team):
    user = UserFactory(is_staff=True)
    return MembershipFactory(tenant=tenant, user=user, role=Role.ADMIN, teams=[team])


@pytest.fixture
def foreign_rows(other_tenant):
    team = TeamFactory(tenant=other_tenant, name="Foreign team")
    account = AccountFactory(tenant=other_tenant, name="Foreign Account Ltd")
    contact = ContactFactory(tenant=other_tenant, name="Foreign Contact", account=account, team=team)
    activity = ActivityFactory(tenant=other_tenant, summary="foreign activity", contact=contact)
    return {"team": team, "account": account, "contact": contact, "activity": activity}


@pytest.mark.parametrize("kind", ["contact", "account", "activity", "team"])
def test_foreign_change_page_is_404_like_a_missing_one(client, staff_admin, foreign_rows, kind):
    # given
    client.force_login(staff_admin.user)
    obj = foreign_rows[kind]
    opts = obj._meta
    # when
    foreign = client.get(reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[obj.pk]))
    missing = client.get(reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[99_999_999]))
    # then
    assert foreign.status_code == missing.status_code == 404


@pytest.mark.parametrize("view", ["delete", "history"])
def test_foreign_delete_and_history_are_404(client, staff_admin, foreign_rows, view):
    client.force_login(staff_admin.user)
    contact = foreign_rows["contact"]
    response = client.get(reverse(f"admin:crm_contact_{view}", args=[contact.pk]))
    assert response.status_code == 404


def test_foreign_post_changes_nothing(client, staff_admin, foreign_rows):
    client.force_login(staff_admin.user)
    contact = foreign_rows["contact"]
    response = client.post(
        reverse("admin:crm_contact_change", args=[contact.pk]), {"name": "hijacked", "status": "customer"}
    )
    assert response.status_code == 404
    contact.refresh_from_db()
    assert contact.name == "Foreign Contact"


def test_changelists_never_show_foreign_rows(client, staff_admin, foreign_rows, tenant):
    ContactFactory(tenant=tenant, name="Home Contact")
    ActivityFactory(tenant=tenant, summary="home activity")
    client.force_login(staff_admin.user)
    contacts = client.get(reverse("admin:crm_contact_changelist")).content.decode()
    assert "Home Contact" in contacts and "Foreign Contact" not in contacts
    activities = client.get(reverse("admin:activities_activity_changelist")).content.decode()
    assert "home activity" in activities and "foreign activity" not in activities
    teams = client.get(reverse("admin:crm_team_changelist")).content.decode()
    assert "Foreign team" not in teams
    tenants = client.get(reverse("admin:crm_tenant_changelist")).content.decode()
    assert "Other Test" not in tenants


def test_choice_fields_offer_only_the_tenants_rows(client, staff_admin, foreign_rows, team):
    client.force_login(staff_admin.user)
    page = client.get(reverse("admin:activities_activity_add")).content.decode()
    assert team.name in page
    assert "Foreign team" not in page
    membership_page = client.get(reverse("admin:crm_membership_add")).content.decode()
    assert "Foreign team" not in membership_page


def test_autocomplete_does_not_leak_foreign_rows(client, staff_admin, foreign_rows, tenant):
    AccountFactory(tenant=tenant, name="Home Account Ltd")
    client.force_login(staff_admin.user)
    response = client.get(
        reverse("admin:autocomplete"),
        {"app_label": "crm", "model_name": "contact", "field_name": "account", "term": "Account"},
    )
    assert response.status_code == 200
    names = [r["text"] for r in response.json()["results"]]
    assert "Home Account Ltd" in names
    assert "Foreign Account Ltd" not in names


def test_posting_a_foreign_choice_is_rejected(client, staff_admin, foreign_rows, tenant):
    client.force_login(staff_admin.user)
    response = client.post(
        reverse("admin:crm_contact_add"),
        {
            "name": "New",
            "status": "prospect",
            "account": foreign_rows["account"].pk,
            "team": foreign_rows["team"].pk,
        },
    )
    assert response.status_code == 200  # form redisplayed with errors
    assert "Select a valid choice" in response.content.decode()
    assert not Contact.objects.filter(name="New").exists()


def test_created_rows_land_in_the_admins_tenant(client, staff_admin, tenant):
    client.force_login(staff_admin.user)
    response = client.post(
        reverse("admin:crm_contact_add"), {"name": "Created In Admin", "status": "prospect"}
    )
    assert response.status_code == 302
    assert Contact.objects.get(name="Created In Admin").tenant_id == tenant.pk


def test_staff_agent_without_admin_role_has_no_admin_access(client, tenant, team):
    user = UserFactory(is_staff=True)
    MembershipFactory(tenant=tenant, user=user, role=Role.AGENT, teams=[team])
    client.force_login(user)
    assert client.get(reverse("admin:crm_contact_changelist")).status_code == 403


def test_users_changelist_lists_only_members(client, staff_admin, foreign_member):
    client.force_login(staff_admin.user)
    page = client.get(reverse("admin:auth_user_changelist")).content.decode()
    assert staff_admin.user.email in page
    assert foreign_member.user.email not in page
    foreign = client.get(reverse("admin:auth_user_change", args=[foreign_member.user.pk]))
    assert foreign.status_code == 404


def test_tenant_admin_cannot_grant_superuser(client, staff_admin, tenant):
    client.force_login(staff_admin.user)
    page = client.get(reverse("admin:auth_user_change", args=[staff_admin.user.pk])).content.decode()
    assert 'name="is_superuser"' not in page


def test_superuser_sees_every_tenant(client, foreign_rows, tenant):
    ActivityFactory(tenant=tenant, summary="home activity")
    root = UserFactory(is_staff=True, is_superuser=True)
    client.force_login(root)
    page = client.get(reverse("admin:activities_activity_changelist")).content.decode()
    assert "home activity" in page and "foreign activity" in page
    assert Activity.objects.count() == 2


# --- every tenant model registered in admin ------------------------------------------------------------
# The app's URLs with an id are in tests/test_url_isolation_matrix.py, which leaves admin:* to the tests
# below: change / delete / history (and view_on_site) of another tenant's row for every tenant model
# registered in admin, and every autocomplete field (Django admin's own history: CVE-2013-0305, the
# history view not permission-checked; CVE-2014-0483, a popup leaking other rows through to_field).

MISSING_ID = 99_999_999


def _is_tenant_model(model) -> bool:
    return model._meta.label in ("crm.Tenant", "auth.User") or any(
        f.name == "tenant" for f in model._meta.concrete_fields
    )


ADMIN_TENANT_MODELS = sorted(m._meta.label for m in admin.site._registry if _is_tenant_model(m))


def _row_in(label, tenant, member):
    """A row of `label` belonging to `tenant` (whose member is `member`)."""
    if label == "crm.Tenant":
        return tenant
    if label == "auth.User":
        return member.user
    return FACTORIES[label](tenant=tenant)


def _values(obj) -> dict:
    model = type(obj)
    names = [f.attname for f in model._meta.concrete_fields]
    return model._base_manager.filter(pk=obj.pk).values(*names).first()


def test_every_tenant_model_in_admin_is_in_the_admin_matrix():
    registered = {m._meta.label for m in admin.site._registry if _is_tenant_model(m)}
    assert registered == set(ADMIN_TENANT_MODELS)
    assert not registered - set(FACTORIES) - {"crm.Tenant", "auth.User"}, "add a factory in test_tenancy"


@pytest.mark.parametrize("label", ADMIN_TENANT_MODELS)
def test_admin_object_pages_of_another_tenant_are_404_like_missing(
    client, staff_admin, other_tenant, foreign_member, label
):
    # given another tenant's row
    client.force_login(staff_admin.user)
    foreign = _row_in(label, other_tenant, foreign_member)
    opts = foreign._meta
    before = _values(foreign)
    requests = [
        ("change", "get", {}),
        ("change", "post", {"name": "hijacked", "summary": "hijacked", "subject": "hijacked"}),
        ("delete", "get", {}),
        ("delete", "post", {"post": "yes"}),
        ("history", "get", {}),
    ]
    for view, method, data in requests:
        # when the staff admin asks for it, and for a missing id
        name = f"admin:{opts.app_label}_{opts.model_name}_{view}"
        response = getattr(client, method)(reverse(name, args=[foreign.pk]), data)
        missing = getattr(client, method)(reverse(name, args=[MISSING_ID]), data)
        # then the same answer (404, or 403 where the staff admin may not act at all), to the byte
        assert response.status_code == missing.status_code, (view, method)
        assert response.status_code in (403, 404), (view, method, response.status_code)
        assert response.content == missing.content, (view, method)
    content_type = ContentType.objects.get_for_model(type(foreign))
    on_site = client.get(reverse("admin:view_on_site", args=[content_type.pk, foreign.pk]))
    assert on_site.status_code == 404
    assert (
        on_site.content
        == client.get(reverse("admin:view_on_site", args=[content_type.pk, MISSING_ID])).content
    )
    # and the row is untouched
    assert _values(foreign) == before


AUTOCOMPLETE_FIELDS = sorted(
    (model._meta.label, field)
    for model, model_admin in admin.site._registry.items()
    for field in model_admin.autocomplete_fields
)


@pytest.mark.parametrize("label, field_name", AUTOCOMPLETE_FIELDS)
def test_every_autocomplete_offers_only_the_tenants_rows(
    client, staff_admin, tenant, other_tenant, foreign_member, label, field_name
):
    # given a row of the field's model in each tenant
    target = apps.get_model(label)._meta.get_field(field_name).related_model._meta.label
    home = _row_in(target, tenant, staff_admin)
    foreign = _row_in(target, other_tenant, foreign_member)
    client.force_login(staff_admin.user)
    app_label, model_name = label.split(".")
    # when the autocomplete lists every choice (no search term)
    response = client.get(
        reverse("admin:autocomplete"),
        {"app_label": app_label, "model_name": model_name.lower(), "field_name": field_name, "term": ""},
    )
    # then only the staff admin's tenant's rows are offered
    assert response.status_code == 200
    ids = {r["id"] for r in response.json()["results"]}
    assert str(home.pk) in ids
    assert str(foreign.pk) not in ids


@pytest.mark.parametrize(
    "query",
    [
        "tenant__name=Other+Test",  # a relation not offered as a filter
        "tenant__slug__startswith=o",
        "team__tenant__id__gt=0",
        "account__tenant__name__contains=Other",
        "owner__password__startswith=pbkdf2",  # probing another table's secrets through a relation
        "_to_field=tenant",  # raw-id popups may only name fields the admin exposes
    ],
)
def test_lookups_not_offered_in_the_query_string_are_refused(client, staff_admin, foreign_rows, query):
    """Admin changelists accept only the filters they offer: a lookup across relations in the query string
    (the "filter by a related field you cannot see" leak class) gets a 400, never a filtered page."""
    client.force_login(staff_admin.user)
    response = client.get(reverse("admin:crm_contact_changelist") + "?" + query)
    assert response.status_code == 400
    assert b"Foreign Contact" not in response.content


def test_offered_filters_still_work_for_a_tenant_admin(client, staff_admin, tenant):
    ContactFactory(tenant=tenant, name="Filtered Home Contact")
    client.force_login(staff_admin.user)
    response = client.get(reverse("admin:crm_contact_changelist") + "?q=Filtered")
    assert response.status_code == 200
    assert b"Filtered Home Contact" in response.content
