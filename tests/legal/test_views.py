import pytest
from django.test import Client


@pytest.mark.django_db
def test_the_seeded_terms_forbid_scraping_reverse_engineering_and_training_on_outputs():
    page = Client().get("/terms/")

    assert page.status_code == 200
    text = page.content.decode()
    assert "2026-11-01" in text
    for clause in ("scrape", "reverse engineer", "train, fine-tune, distil"):
        assert clause in text
