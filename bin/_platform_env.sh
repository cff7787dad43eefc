# Sourced after _bootstrap.sh by bin/run and bin/bench: data stores, secrets and settings for a running platform.
# The embedded servers for unset URLs, and per-machine secrets (made once in the state folder, kept out of the
# repository) for unset ones; recorded in $MOAT_STATE_DIR/platform.env so `python manage.py ...` in another terminal
# finds the same platform with nothing to export.
eval "$(python -m embedded "$MOAT_STATE_DIR")"
export DJANGO_SETTINGS_MODULE=config.settings
export MOAT_PORT="${MOAT_PORT:-8000}"

prepare_platform() {
  python manage.py migrate --noinput
  python manage.py collectstatic --noinput -v 0
  python manage.py train_demo_model --if-missing
}
