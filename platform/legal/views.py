"""The Terms pages: read the current version, accept it."""

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_http_methods, require_safe

from core.http import client_ip, user_agent
from legal.forms import AcceptTermsForm
from legal.selectors import terms_current, user_has_accepted_current_terms
from legal.services import terms_accept


@require_safe
def terms_show(request: HttpRequest) -> HttpResponse:
    terms = terms_current()
    if terms is None:
        raise Http404
    return render(request, "legal/terms.html", {"terms": terms})


@login_required
@require_http_methods(["GET", "POST"])
def terms_accept_view(request: HttpRequest) -> HttpResponse:
    terms = terms_current()
    if terms is None:
        return redirect("portal:overview")
    next_url = request.POST.get("next") or request.GET.get("next") or ""
    if not url_has_allowed_host_and_scheme(next_url, allowed_hosts={request.get_host()}):
        next_url = ""
    form = AcceptTermsForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        terms_accept(
            user_id=request.user.pk,
            terms=terms,
            ip_address=client_ip(request),
            user_agent=user_agent(request),
        )
        return redirect(next_url or "portal:overview")
    already = user_has_accepted_current_terms(user_id=request.user.pk)
    return render(request, "legal/accept.html", {"terms": terms, "form": form, "next": next_url, "already": already})
