"""Domain fixtures shared by every test. Service fixtures (Dovecot, Celery worker, SMTP, Chromium)
live in tests/plugins/. Every test module gets a second tenant to prove isolation against."""

import pytest

from crm.models import Role

from .factories import MembershipFactory, TeamFactory, TenantFactory, UserFactory

pytest_plugins = ["tests.plugins.services", "tests.plugins.browser"]

PASSWORD = "pw-for-tests-1"  # set by UserFactory

# What every signed-in request adds to a pinned query count in tests: its tenant transaction
# (crm.middleware.TenantMiddleware) is a savepoint inside the test's transaction, so SAVEPOINT, the
# set_config of role/tenant/user, restoring them, RELEASE. In production it is one set_config (BEGIN and
# COMMIT are not queries).
REQUEST_TRANSACTION_QUERIES = 4


@pytest.fixture
def tenant(db):
    return TenantFactory(name="Acme Test")


@pytest.fixture
def other_tenant(db):
    return TenantFactory(name="Other Test")


@pytest.fixture
def team(tenant):
    return TeamFactory(tenant=tenant, name="Sales")


@pytest.fixture
def other_team(tenant):
    """A second team of the same tenant (for team-scoping tests)."""
    return TeamFactory(tenant=tenant, name="Support")


@pytest.fixture
def make_member(db):
    """make_member(tenant, role="agent", teams=(), email=False) -> Membership (user in .user)."""

    def _make(tenant, role=Role.AGENT, teams=(), email=False, **user_kwargs):
        user = UserFactory(**user_kwargs)
        return MembershipFactory(
            tenant=tenant, user=user, role=role, teams=list(teams), can_manage_email=email
        )

    return _make


@pytest.fixture
def admin_member(tenant, team, other_team, make_member):
    return make_member(tenant, Role.ADMIN, teams=[team, other_team], email=True)


@pytest.fixture
def manager_member(tenant, team, make_member):
    return make_member(tenant, Role.MANAGER, teams=[team], email=True)


@pytest.fixture
def agent_member(tenant, team, make_member):
    """An agent of `team` without the email permission."""
    return make_member(tenant, Role.AGENT, teams=[team], email=False)


@pytest.fixture
def foreign_member(other_tenant, make_member):
    return make_member(other_tenant, Role.ADMIN, teams=[TeamFactory(tenant=other_tenant)], email=True)


@pytest.fixture
def client_for(client):
    """client_for(membership_or_user) -> a Django test client logged in as that user."""

    def _login(who):
        user = getattr(who, "user", who)
        client.force_login(user)
        return client

    return _login
