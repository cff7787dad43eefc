from django.db import migrations

REVIEWERS = "Abuse reviewers"

# Rows can be neither changed nor deleted. TRUNCATE stays possible for the database owner (test databases are
# flushed with it); the application never issues it.
APPEND_ONLY = """
CREATE FUNCTION abuse_auditentry_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'the abuse audit log is append-only';
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER abuse_auditentry_append_only
    BEFORE UPDATE OR DELETE ON abuse_auditentry
    FOR EACH ROW EXECUTE FUNCTION abuse_auditentry_append_only();
"""

DROP_APPEND_ONLY = """
DROP TRIGGER abuse_auditentry_append_only ON abuse_auditentry;
DROP FUNCTION abuse_auditentry_append_only();
"""


def seed(apps, schema_editor):
    # Permissions are normally created after all migrations (post_migrate); the group needs its permission now,
    # and post_migrate later finds it in place.
    ContentType = apps.get_model("contenttypes", "ContentType")
    Permission = apps.get_model("auth", "Permission")
    Group = apps.get_model("auth", "Group")
    content_type, _ = ContentType.objects.get_or_create(app_label="abuse", model="auditentry")
    permission, _ = Permission.objects.get_or_create(
        content_type=content_type,
        codename="review_abuse",
        defaults={"name": "Can act on abuse reviews (warn, throttle, freeze, suspend)"},
    )
    group, _ = Group.objects.get_or_create(name=REVIEWERS)
    group.permissions.add(permission)


def delete_reviewers_group(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name=REVIEWERS).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("abuse", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [
        migrations.RunSQL(APPEND_ONLY, DROP_APPEND_ONLY),
        migrations.RunPython(seed, delete_reviewers_group),
    ]
