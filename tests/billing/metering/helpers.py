"""Query-log rows for the metering tests, written directly with explicit fields."""

import uuid
from datetime import datetime

from accounts.models import Organization
from serving.predictions.models import QueryLog


def log(
    organization: Organization,
    *,
    at: datetime,
    batch_size: int = 1,
    tier_code: str = "free",
    endpoint: str = "predict",
    status: int = 200,
) -> QueryLog:
    return QueryLog.objects.create(
        request_id=uuid.uuid4(),
        created_at=at,
        organization=organization,
        tier_code=tier_code,
        endpoint=endpoint,
        status=status,
        batch_size=batch_size,
        latency_us=1,
    )
