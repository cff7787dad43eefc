"""The staff console. Everyone but staff gets 404 on every console URL: the console does not exist for them."""

from collections.abc import Callable
from functools import wraps

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone

from billing.dashboard.revenue import revenue_summary


def staff_only(view: Callable) -> Callable:
    @wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if not (request.user.is_authenticated and request.user.is_active and request.user.is_staff):
            raise Http404
        return view(request, *args, **kwargs)

    return wrapper


@staff_only
def home(request: HttpRequest) -> HttpResponse:
    return render(request, "console/home.html")


@staff_only
def revenue(request: HttpRequest) -> HttpResponse:
    return render(request, "console/revenue.html", {"summary": revenue_summary(now=timezone.now())})
