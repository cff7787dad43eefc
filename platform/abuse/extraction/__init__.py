"""Model-extraction risk of a window of API traffic, as pure functions (numpy and scipy; no Django, no database).

Modules: `window` (what is read and answered), `profile` (natural inputs), `distances` (between queries),
`signals` (one component each), `score` (their sum, explained), `constants`.

The abuse pipeline reads an organization's (or a sign-up ring's) recent query log into a `QueryWindow`, calls
`extraction_risk` with the served model's `InputProfile`, stores the `RiskResult` and throttles or freezes at
`THROTTLE_SCORE` / `FREEZE_SCORE`. The score is a sum of capped points, one `Component` per signal, each with the
measured value and a sentence a reviewer (and the customer) can read. The signals and what each detects:

- **volume** — far more inputs than an honest organization of the tier sends in the window. Extraction needs
  many answers (Tramèr et al., "Stealing Machine Learning Models via Prediction APIs", USENIX Security 2016), but
  so does a big honest customer, so volume is weighted to stay well below the freeze level on its own.
- **unique_inputs** — every input distinct: query synthesis never repeats itself, while real applications re-send
  some inputs. Weak on its own (natural data is mostly unique too).
- **unnatural_inputs** — inputs far from the model's reference data (Mahalanobis distance beyond what 99% of
  natural inputs reach, in the profile's space: standardised features for a table, pixels or their principal
  components for an image; `profile.FeatureSpace`). Synthetic query sets — random images, interpolations,
  adversarial-style steps — are off-manifold (Papernot et al., "Practical Black-Box Attacks against Machine
  Learning", AsiaCCS 2017; Tramèr et al. 2016; Pal et al., "ActiveThief", AAAI 2020 discuss why natural data is
  needed to avoid exactly this).
- **input_entropy** — the entropy of an input's histogram on 17 levels of each feature's grid: handwritten digits
  are mostly background and full strokes (about 2-3 bits), uniform noise uses all 17 levels (about 4.1 bits);
  the natural range is each model's own, measured on its reference data.
- **low_confidence** — many answers with low confidence, far more than natural inputs get: queries placed on the
  decision boundary (line search, Tramèr et al. 2016; boundary-seeking synthesis, Papernot et al. 2017).
- **class_coverage** — the traffic exercises every class evenly: systematic exploration (a retrainer wants a
  balanced training set). Natural traffic looks the same, so it is weighted low.
- **prada** — PRADA (Juuti et al., "PRADA: Protecting against DNN Model Stealing Attacks", EuroS&P 2019): the
  minimum distances between each new query and earlier queries of the same predicted class follow a roughly
  normal distribution for natural queries and a clearly non-normal one for query sets that mix natural seeds
  with synthetic samples around them; a Shapiro-Wilk W below `PRADA_DELTA` flags an attack. On the digits it
  separates less than in the paper (see PRADA_DELTA): it is one signal among several, not the detector.
- **perturbation_walk** — many queries a small non-zero step from an earlier query, chained into long walks or
  families descending from one input: the Jacobian-based augmentation of Papernot et al. 2017 and the step-wise
  probing of Juuti et al. 2019 (their "T-RND" and "I-FGSM" query sets), and line searches (Tramèr et al. 2016).
- **reconnaissance** — a burst of failed calls of several distinct kinds (endpoints x error codes) before the
  traffic starts: someone mapping the API, not an application that was wired up once.
- **linked_accounts** — for a sign-up ring scored as one window: linked accounts whose merged traffic exceeds what
  one organization sends. A ring that retrains on natural data looks honest input by input (Orekondy et al.,
  "Knockoff Nets", CVPR 2019); what gives it away is that it is one actor spread over several accounts.

Every threshold and weight is a constant in `abuse.extraction.constants` with the reason for its value.
`abuse.simulation` and tests/abuse/test_calibration.py measure them against simulated honest users and attackers
served by the real demo model.
"""

from abuse.extraction.constants import FREEZE_SCORE, LOW_CONFIDENCE, THROTTLE_SCORE
from abuse.extraction.distances import nearest_earlier_distances, perturbation_steps, prada_distances, prada_statistic
from abuse.extraction.profile import FeatureSpace, InputProfile, grid_entropy, ledoit_wolf_covariance
from abuse.extraction.score import extraction_risk
from abuse.extraction.signals import wilson_lower_bound
from abuse.extraction.window import Component, QueryWindow, RiskResult

__all__ = [
    "FREEZE_SCORE",
    "LOW_CONFIDENCE",
    "THROTTLE_SCORE",
    "Component",
    "FeatureSpace",
    "InputProfile",
    "QueryWindow",
    "RiskResult",
    "extraction_risk",
    "grid_entropy",
    "ledoit_wolf_covariance",
    "nearest_earlier_distances",
    "perturbation_steps",
    "prada_distances",
    "prada_statistic",
    "wilson_lower_bound",
]
