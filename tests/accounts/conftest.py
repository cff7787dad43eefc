import pytest

from tests.accounts.helpers import SIGNUP_PASSWORD


@pytest.fixture
def signup_data() -> dict:
    return {
        "email": "Ada.Lovelace@Example.com",
        "password": SIGNUP_PASSWORD,
        "organization": "Analytical Engines",
        "accept_terms": "on",
    }
