from core.errors import ApplicationError


class ReviewActionError(ApplicationError):
    """A review action that can't be taken as asked (no reason given, already suspended...)."""

    code = "review_action_refused"
