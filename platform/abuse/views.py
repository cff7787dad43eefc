"""The appeal page: members of a frozen, throttled, warned or suspended organization tell the review team why."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from abuse.errors import ReviewActionError
from abuse.forms import AppealForm
from abuse.selectors import organization_standing
from abuse.services import appeal_submit
from accounts.selectors import membership_for_user


@login_required
@require_http_methods(["GET", "POST"])
def appeal(request: HttpRequest) -> HttpResponse:
    membership = membership_for_user(user=request.user)
    if membership is None:
        raise Http404
    organization = membership.organization
    form = AppealForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            appeal_submit(organization=organization, user=request.user, message=form.cleaned_data["message"])
        except ReviewActionError as exc:
            form.add_error("message", exc.message)
        else:
            messages.success(request, "Your appeal reached our review team. We answer by email.")
            return redirect("abuse:appeal")
    context = {"organization": organization, "form": form, "standing": organization_standing(organization=organization)}
    return render(request, "abuse/appeal.html", context, status=400 if form.errors else 200)
