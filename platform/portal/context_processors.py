from django.http import HttpRequest

from accounts.selectors import membership_for_user


def portal(request: HttpRequest) -> dict:
    """The signed-in person's membership, for the navigation bar."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {"membership": None}
    if not hasattr(request, "_moat_membership"):
        request._moat_membership = membership_for_user(user=user)
    return {"membership": request._moat_membership}
