"""Email addresses as identities: one canonical form per mailbox, and the disposable-domain policy."""

from disposable_email_domains import blocklist as _DISPOSABLE_DOMAINS
from django.conf import settings

# Providers that deliver `a.b.c@` to `abc@`.
DOT_INSENSITIVE_DOMAINS = frozenset({"gmail.com"})
# Providers that deliver `name+anything@` to `name@`.
PLUS_TAG_DOMAINS = frozenset(
    {
        "gmail.com",
        "outlook.com",
        "hotmail.com",
        "live.com",
        "msn.com",
        "icloud.com",
        "me.com",
        "mac.com",
        "fastmail.com",
        "fastmail.fm",
        "protonmail.com",
        "proton.me",
        "pm.me",
        "yandex.com",
        "yandex.ru",
        "zoho.com",
        "hey.com",
        "gmx.com",
        "gmx.net",
        "mail.com",
    }
)
# Yahoo's disposable addresses are `base-keyword@`.
HYPHEN_TAG_DOMAINS = frozenset({"yahoo.com", "ymail.com"})
DOMAIN_ALIASES = {"googlemail.com": "gmail.com"}


# RFC 5321 / RFC 1035 limits. They bind after IDNA: a Unicode domain within a 254-character address can grow
# several-fold as punycode, past the columns that store the canonical form.
MAX_ADDRESS_LENGTH = 254
MAX_DOMAIN_LENGTH = 253
MAX_LABEL_LENGTH = 63


def split_email(email: str) -> tuple[str, str]:
    """Local part and lower-cased, IDNA-encoded domain; raises ValueError for anything that is not an address,
    including a domain over 253 characters or with a label over 63 once IDNA-encoded."""
    local, sep, domain = email.strip().rpartition("@")
    if not sep or not local or not domain:
        raise ValueError("not an email address")
    try:
        domain = domain.lower().rstrip(".").encode("idna").decode("ascii")
    except UnicodeError as exc:
        raise ValueError("invalid domain") from exc
    if len(domain) > MAX_DOMAIN_LENGTH or any(len(label) > MAX_LABEL_LENGTH for label in domain.split(".")):
        raise ValueError("domain too long")
    return local, domain


def canonical_email(email: str) -> str:
    """The mailbox an address delivers to, used for uniqueness: case-folded, with dots and tags removed for the
    providers that ignore them. `John.Doe+moat@GoogleMail.com` and `johndoe@gmail.com` are one mailbox. Raises
    ValueError for a non-address and for one whose canonical form is over 254 characters."""
    local, domain = split_email(email)
    local = local.lower()
    domain = DOMAIN_ALIASES.get(domain, domain)
    if domain in PLUS_TAG_DOMAINS:
        local = local.split("+", 1)[0]
    if domain in HYPHEN_TAG_DOMAINS:
        local = local.split("-", 1)[0]
    if domain in DOT_INSENSITIVE_DOMAINS:
        local = local.replace(".", "")
    canonical = f"{local}@{domain}"
    if len(canonical) > MAX_ADDRESS_LENGTH:
        raise ValueError("address too long")
    return canonical


def email_domain(email: str) -> str:
    return split_email(email)[1]


def is_disposable_domain(domain: str) -> bool:
    """True for a domain (or a subdomain of one) on the maintained disposable-email list, unless allowlisted."""
    allowlist = {entry.lower() for entry in settings.DISPOSABLE_EMAIL_ALLOWLIST}
    labels = domain.lower().split(".")
    candidates = {".".join(labels[i:]) for i in range(len(labels) - 1)}
    if candidates & allowlist:
        return False
    return bool(candidates & _DISPOSABLE_DOMAINS)
