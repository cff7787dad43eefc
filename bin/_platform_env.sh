# Sourced after _bootstrap.sh by bin/run and bin/bench: data stores, secrets and settings for a running platform.
eval "$(python -m embedded "$MOAT_STATE_DIR")"
# Per-machine secrets, made once and kept out of the repository, for any that the environment does not set.
for name in SECRET_KEY WATERMARK_SECRET OUTPUT_NOISE_SECRET; do
  if [ -z "${!name:-}" ]; then
    file="$MOAT_STATE_DIR/$(echo "$name" | tr 'A-Z' 'a-z')"
    [ -s "$file" ] || (umask 077; python -c 'import secrets; print(secrets.token_urlsafe(50))' > "$file")
    export "$name=$(cat "$file")"
  fi
done
export DJANGO_SETTINGS_MODULE=config.settings
export MOAT_PORT="${MOAT_PORT:-8000}"

prepare_platform() {
  python manage.py migrate --noinput
  python manage.py collectstatic --noinput -v 0
  python manage.py train_demo_model --if-missing
}
