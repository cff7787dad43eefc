"""The attacker's mailbox reads what the platform's file email backend writes."""

import pytest
from django.core.mail import EmailMessage
from django.core.mail.backends.filebased import EmailBackend

from redteam.client import ApiAnswer, ClientError, Mailbox


def _send(folder, *messages: tuple[str, str]) -> None:
    backend = EmailBackend(file_path=str(folder))
    backend.send_messages([EmailMessage("Verify", body, "Moat <no-reply@moat.local>", [to]) for to, body in messages])


def test_the_latest_verification_link_for_the_address_is_found(tmp_path):
    _send(
        tmp_path,
        ("ada@one.example", "Open http://moat.example:8000/verify-email/old.token-1/ to verify."),
        ("bob@two.example", "Open http://moat.example:8000/verify-email/bobs-token/ to verify."),
    )
    _send(tmp_path, ("Ada@One.example", "Open http://moat.example:8000/verify-email/new.token-2/ now."))
    mailbox = Mailbox(tmp_path)
    assert mailbox.verification_path("ada@one.example", timeout=0) == "/verify-email/new.token-2/"
    assert mailbox.verification_path("bob@two.example", timeout=0) == "/verify-email/bobs-token/"
    assert len(mailbox.messages_to("ada@one.example")) == 2


def test_no_email_is_an_error_after_the_timeout(tmp_path):
    with pytest.raises(ClientError, match="no verification email"):
        Mailbox(tmp_path / "missing").verification_path("ada@one.example", timeout=0.3)


def test_an_api_answer_exposes_its_error_code_and_integer_headers():
    answer = ApiAnswer(429, {"error": {"code": "rate_limited"}}, {"retry-after": "7", "x-ratelimit-limit": "x"})
    assert answer.error_code == "rate_limited"
    assert answer.header_int("Retry-After") == 7
    assert answer.header_int("X-RateLimit-Limit") is None
    assert ApiAnswer(200, {"predictions": []}).error_code == ""


def test_only_http_addresses_are_opened():
    from redteam.client import ApiClient

    with pytest.raises(ClientError, match="http"):
        ApiClient("file:///etc", "moat_live_x", user_agent="test")
    assert ApiClient("http://127.0.0.1:8000/", "moat_live_x", user_agent="test").base_url == "http://127.0.0.1:8000"
