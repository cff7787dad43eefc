"""abuse.profiles: every served model's reference profile is fitted from its registered data, the same way for all."""

import logging

import numpy as np
import pytest

from abuse import simulation
from abuse.extraction import LOW_CONFIDENCE, InputProfile
from abuse.extraction.constants import PROFILE_FORMAT
from abuse.profiles import model_profile_fit, model_profiles_ensure, natural_served_confidences
from serving.ml import breast_cancer, digits
from serving.registry.models import ModelVersion
from serving.registry.selectors import model_get, model_heldout, model_reference_codes
from tiers.models import Tier

pytestmark = pytest.mark.django_db


def _profiles(slug: str) -> dict[str, dict]:
    return dict(ModelVersion.objects.filter(model__slug=slug, is_active=True).values_list("variant", "input_profile"))


def test_each_models_profile_is_fitted_once_and_shared_by_its_active_versions(
    registered_digits, registered_breast_cancer
):
    assert _profiles(digits.SLUG) == {"full": {}, "defended": {}}  # registration fits nothing

    assert sorted(model_profiles_ensure()) == [breast_cancer.SLUG, digits.SLUG]
    assert model_profiles_ensure() == []  # every active version has one now

    for slug in (digits.SLUG, breast_cancer.SLUG):
        stored = _profiles(slug)
        assert stored["full"] == stored["defended"] and stored["full"]["format"] == PROFILE_FORMAT


def test_the_schema_chooses_the_space(registered_digits, registered_breast_cancer):
    digits_profile = model_profile_fit(model=model_get(slug=digits.SLUG))
    cancer_profile = model_profile_fit(model=model_get(slug=breast_cancer.SLUG))

    # An 8x8 image keeps its pixels; 30 measurements of very different scales are standardised.
    assert np.array_equal(digits_profile.space.scale, np.ones(64))
    assert cancer_profile.space.scale.shape == (30,) and cancer_profile.space.scale.min() > 1.0
    # The digits profile is the simulation's (same reference rows, same space), up to the secrets the answers use.
    simulated = simulation.reference_profile()
    assert digits_profile.distance_q99 == pytest.approx(simulated.distance_q99)
    assert digits_profile.nn_distance_q01 == simulated.nn_distance_q01
    # New natural inputs of either model stay within its threshold about as often as the q99 promises.
    for slug, profile in ((digits.SLUG, digits_profile), (breast_cancer.SLUG, cancer_profile)):
        heldout, _ = model_heldout(model=model_get(slug=slug))
        assert np.mean(profile.distances(heldout) > profile.distance_q99) < 0.06


def test_the_low_confidence_baseline_is_the_least_confident_tiers(registered_digits):
    model = model_get(slug=digits.SLUG)
    heldout, _ = model_heldout(model=model)

    served = natural_served_confidences(model=model, natural=heldout)
    profile = model_profile_fit(model=model)

    assert profile.low_confidence_share == float(np.mean(served < LOW_CONFIDENCE))
    # The free tier (noisiest, one decimal) answers natural digits least confidently of all tiers: its share is
    # the baseline, and it is well above what the full model alone gives.
    Tier.objects.exclude(code="free").delete()
    assert natural_served_confidences(model=model, natural=heldout).tolist() == served.tolist()
    Tier.objects.all().delete()
    undefended = natural_served_confidences(model=model, natural=heldout)
    assert float(np.mean(undefended < LOW_CONFIDENCE)) < profile.low_confidence_share


def test_a_model_whose_data_cannot_be_read_is_left_without_a_profile(registered_breast_cancer, caplog):
    model = model_get(slug=breast_cancer.SLUG)
    reference = model_reference_codes(model=model)
    model.reference_sha256 = "0" * 64  # the file no longer matches what was registered
    model.save(update_fields=["reference_sha256"])

    with caplog.at_level(logging.ERROR, logger="abuse.profiles"):
        assert model_profiles_ensure() == []

    assert _profiles(breast_cancer.SLUG) == {"full": {}, "defended": {}}
    assert "could not fit the reference profile of model breast-cancer" in caplog.text
    assert reference.shape[1] == 30


def test_a_profile_of_an_older_format_is_refitted(registered_digits):
    ModelVersion.objects.filter(model__slug=digits.SLUG).update(input_profile={"format": 1, "mean": [0.0]})

    assert model_profiles_ensure() == [digits.SLUG]

    assert InputProfile.from_dict(_profiles(digits.SLUG)["full"]).space.center.shape == (64,)
