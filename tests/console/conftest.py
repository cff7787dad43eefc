"""Fixtures of the console tests: staff who only read, reviewers who act, and query-log rows made with the ORM."""

from collections.abc import Sequence
from datetime import datetime
from uuid import uuid4

import pytest
from django.contrib.auth.models import Group
from django.test import Client
from django.utils import timezone

from accounts.models import Organization, User
from apikeys.models import ApiKey
from serving.predictions.models import QueryLog
from tests.conftest import signed_in
from tests.factories import UserFactory

REVIEWERS = "Abuse reviewers"


@pytest.fixture
def staff(db) -> User:
    """Staff without the reviewer permission: the console is theirs to read, not to act from."""
    return UserFactory(email="staff@moat.example", is_staff=True)


def reviewers_group() -> Group:
    """The group the abuse migration creates (put back for transactional tests by the root conftest)."""
    return Group.objects.get(name=REVIEWERS)


def make_reviewer(email: str = "reviewer@moat.example") -> User:
    """A staff member in the "Abuse reviewers" group: the one who may act on an organization."""
    user = UserFactory(email=email, is_staff=True)
    user.groups.add(reviewers_group())
    return user


@pytest.fixture
def reviewer(db) -> User:
    return make_reviewer()


@pytest.fixture
def staff_client(staff) -> Client:
    return signed_in(staff)


@pytest.fixture
def reviewer_client(reviewer) -> Client:
    return signed_in(reviewer)


def log_call(
    organization: Organization,
    *,
    created_at: datetime | None = None,
    api_key: ApiKey | None = None,
    endpoint: str = "predict",
    status: int = 200,
    batch_size: int = 1,
    confidences: Sequence[float] | None = None,
    client_ip: str | None = "198.51.100.7",
    limit_window: str = "",
    error_code: str = "",
) -> QueryLog:
    """One API call as the serving layer logs it. Successful predictions get one confidence per input (0.95 unless
    given), as served."""
    if confidences is None:
        confidences = [0.95] * batch_size if endpoint == "predict" and status == 200 else []
    return QueryLog.objects.create(
        request_id=uuid4(),
        created_at=created_at or timezone.now(),
        organization=organization,
        api_key=api_key,
        tier_code=organization.tier.code,
        endpoint=endpoint,
        status=status,
        error_code=error_code,
        limit_window=limit_window,
        latency_us=1500,
        batch_size=batch_size,
        client_ip=client_ip,
        labels=["7"] * len(confidences),
        confidences=list(confidences),
    )
