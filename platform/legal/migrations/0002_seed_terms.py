"""Seed the first version of the Terms of Service (effective at once)."""

from datetime import UTC, datetime

from django.db import migrations

VERSION = "2026-11-01"

BODY = """These Terms of Service ("Terms") govern your use of the Moat developer portal and the Moat prediction API (together, the "Service"). By creating an account, creating an API key or calling the API you accept these Terms on behalf of yourself and the organization you represent.

1. The Service. Moat provides predictions from machine-learning models through an API. The models, their parameters, their architecture and their outputs in aggregate are confidential property of Moat and its licensors. You receive a limited, non-exclusive, non-transferable, revocable licence to send queries and use individual predictions within your own products, subject to these Terms and your plan's limits.

2. Accounts. You must give a real, permanent email address and keep your credentials and API keys secret. One person or organization may not hold several free accounts, and you may not create accounts by automated means. You are responsible for all use of your keys.

3. Prohibited uses. You must not, and must not let anyone else:
(a) scrape, harvest or systematically collect outputs of the Service, by automated means or otherwise, beyond what your own product needs for its users;
(b) reverse engineer, decompile, or attempt to discover or reconstruct the models, their parameters, architecture, training data or decision boundaries, including by model-extraction, membership-inference or model-inversion techniques;
(c) use outputs of the Service, alone or combined with other data, to train, fine-tune, distil, calibrate or evaluate any machine-learning model that substitutes for, competes with or replicates the Service;
(d) split your use across several accounts or keys, or rotate accounts, addresses or payment methods, to avoid rate limits, quotas, pricing or detection;
(e) probe, scan or test the Service's security, or send queries designed to map its behaviour rather than to serve a genuine use;
(f) resell or sublicense access to the Service, or share API keys outside your organization.

4. Monitoring and enforcement. We log queries, their metadata and the answers we return to operate, bill and protect the Service. We analyse this data to detect abuse. Some answers carry marks that let us identify models trained on them. We may throttle, freeze or revoke keys, suspend organizations, and refuse service where we reasonably suspect a breach of these Terms; you may appeal by replying to our notice. We may use watermark evidence in legal proceedings.

5. Plans, quotas and payment. Your plan sets request limits and prices. Requests above your plan's limits may be refused. Paid plans are billed monthly in advance for the base price and in arrears for usage above the included amount. Fees are non-refundable except where the law requires otherwise.

6. Changes. We may publish new versions of these Terms. A new version takes effect on its effective date; you must accept it to keep using the portal, and API calls from an organization none of whose members has accepted the version in force are refused.

7. Termination. You may close your account at any time. We may terminate accounts that breach these Terms. Sections 3, 4 and 8 survive termination.

8. Disclaimers and liability. Predictions are statistical estimates and may be wrong. The Service is provided "as is" without warranties of any kind. To the extent the law allows, our total liability is limited to the fees you paid in the twelve months before the claim.
"""


def seed(apps, schema_editor):
    TermsVersion = apps.get_model("legal", "TermsVersion")
    TermsVersion.objects.get_or_create(
        version=VERSION,
        defaults={
            "title": "Moat Terms of Service",
            "body": BODY,
            "effective_at": datetime(2026, 11, 1, tzinfo=UTC),
        },
    )


class Migration(migrations.Migration):
    dependencies = [("legal", "0001_initial")]
    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
