from datetime import timedelta

from django.utils import timezone

from serving.predictions.models import QueryLog
from serving.predictions.querylog import querylog_append, querylog_flush
from serving.predictions.services import querylog_prune_raw_inputs
from tests.serving.predictions.test_querylog import record_for


def test_raw_inputs_older_than_the_retention_period_are_pruned_and_the_evidence_kept(organization, settings):
    from apikeys.models import ApiKey
    from tests.factories import raw_key_for

    raw_key_for(organization)
    api_key = ApiKey.objects.get(organization=organization)
    settings.QUERY_LOG_RAW_INPUT_RETENTION_DAYS = 30
    old, recent = record_for(api_key), record_for(api_key)
    old.created_at = (timezone.now() - timedelta(days=31)).timestamp()
    recent.created_at = (timezone.now() - timedelta(days=29)).timestamp()
    querylog_append(old)
    querylog_append(recent)
    querylog_flush()

    assert querylog_prune_raw_inputs(batch_size=1) == 1
    assert querylog_prune_raw_inputs() == 0

    pruned = QueryLog.objects.get(request_id=old.request_id)
    kept = QueryLog.objects.get(request_id=recent.request_id)
    assert pruned.inputs is None and kept.inputs is not None
    assert bytes(pruned.input_hashes) == bytes(kept.input_hashes)
    assert (pruned.batch_size, pruned.labels) == (2, ["3", "1"])
