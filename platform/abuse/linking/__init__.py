"""Sign-up rings: which organizations were probably opened by one operator, judged from their sign-ups alone.

A model-extraction campaign is cheaper when it is split across many free accounts, each under its tier's limits.
The accounts of one operator tend to share where they came from (an address, a /24, a browser build, a burst of
sign-ups), how they were named (`user1@`, `user2@`, `name+7@`, `n.a.m.e@gmail.com`) and, once billing exists, how
they pay (one card). This module turns those coincidences into evidence:

- `signup_links` returns one `Link` per pair of organizations and signal, each with a weight (how strongly that
  signal alone says "same operator") and a sentence a reviewer can check;
- `pair_weight` combines the signals of one pair (noisy-OR: independent pieces of evidence, each of which may
  be a coincidence);
- `signup_rings` connects the pairs whose combined weight reaches `LinkingPolicy.ring_link_threshold` and keeps
  the groups whose score reaches `ring_score_threshold`: certain rings. Among the other organizations, groups held
  together by pairs of `likely_link_threshold` (0.45) with the same score are likely rings: not proven, but
  their merged traffic is worth scoring before they are.

No single weak signal reaches the link threshold, nor do the weak ones a crowd of honest people shares
(an office's /24 and its one Chrome build: 0.29; a class signing up in one burst from one /24 on one browser:
0.43); the strong ones do (one card, one mailbox, numbered addresses of one template on one domain, one public
address within hours), and so do weak ones that pile up on the same pair (a /24, a burst, numbered Gmail
addresses). Signals are also read together, as a fraud team reads them: the same user agent counts for little
when it is a browser's (everyone's Chrome sends the same string) and for much when it is a program's, and a burst
of one program's sign-ups from one network counts more again when their addresses are on one private domain.
`WEIGHTS` and the constants beside it give each weight with its reason.

Scale: the facts of ~30 days of sign-ups (up to ~100,000) are never compared all against all. Facts are grouped
by what they share (address, network, user agent, mailbox, naming template, card, burst), each fact is paired with the
few facts before it in each of its groups (`LinkingPolicy.lookback`) inside the signal's window, and every pair
found that way is then checked against every signal. A chain through a group is enough to connect it, every
member gets its evidence, and the work is linear in the number of facts however large a group grows (one
Chrome build, one carrier's network).

Pure: plain data in, plain data out. No ORM, no clock, no randomness; the output is sorted, so the pipeline can
store it idempotently (links are unique on `low, high, signal`). The only outside state is the disposable-domain
allowlist that `accounts.emails.is_disposable_domain` reads from the settings.
"""

from abuse.linking.groups import pair_weight, ring_score, rings_from_links, signup_rings
from abuse.linking.pairs import signup_links
from abuse.linking.records import CERTAIN, LIKELY, Link, LinkingPolicy, RingCandidate, SignupFact
from abuse.linking.weights import SIGNALS, WEIGHTS, is_scripted_client

__all__ = [
    "CERTAIN",
    "LIKELY",
    "SIGNALS",
    "WEIGHTS",
    "Link",
    "LinkingPolicy",
    "RingCandidate",
    "SignupFact",
    "is_scripted_client",
    "pair_weight",
    "ring_score",
    "rings_from_links",
    "signup_links",
    "signup_rings",
]
