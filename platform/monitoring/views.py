"""`GET /metrics`: the Prometheus text format, for the scraper the operator allows and nobody else.

Access: an `Authorization: Bearer <METRICS_TOKEN>` header. Without the setting, or without the right token, the
answer is the site's ordinary 404: an anonymous caller cannot tell the route exists.
"""

import hmac
import os

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotAllowed
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest, multiprocess
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

from apikeys.authentication import bearer_token
from monitoring.collectors import PlatformStateCollector

_STATE = CollectorRegistry(auto_describe=False)
_STATE.register(PlatformStateCollector())


def _allowed(request: HttpRequest) -> bool:
    expected = settings.METRICS_TOKEN
    if not expected:
        return False
    token = bearer_token(request.META.get("HTTP_AUTHORIZATION", "")) or ""
    return hmac.compare_digest(token.encode(), expected.encode())


def _process_series() -> bytes:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # Every worker's files in the folder, added up (bin/web gives each server a fresh folder).
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry)
    return generate_latest(REGISTRY)


# The classic text format (0.0.4), which every Prometheus and compatible scraper reads.
def metrics(request: HttpRequest) -> HttpResponse:
    if not _allowed(request):
        raise Http404  # for every method: nothing tells an anonymous caller the route exists
    if request.method not in ("GET", "HEAD"):
        return HttpResponseNotAllowed(["GET", "HEAD"])
    return HttpResponse(_process_series() + generate_latest(_STATE), content_type=CONTENT_TYPE_PLAIN_0_0_4)
