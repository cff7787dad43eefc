"""Fill the text fingerprint of acceptances recorded before it was stored, from their version's text as it is now
(the best evidence left of what was accepted)."""

import hashlib

from django.db import migrations


def fill(apps, schema_editor):
    TermsVersion = apps.get_model("legal", "TermsVersion")
    TermsAcceptance = apps.get_model("legal", "TermsAcceptance")
    for version in TermsVersion.objects.filter(acceptances__body_sha256="").distinct():
        TermsAcceptance.objects.filter(terms=version, body_sha256="").update(
            body_sha256=hashlib.sha256(version.body.encode()).hexdigest()
        )


class Migration(migrations.Migration):
    dependencies = [("legal", "0003_termsacceptance_body_sha256")]
    operations = [migrations.RunPython(fill, migrations.RunPython.noop)]
