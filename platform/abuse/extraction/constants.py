"""Every threshold and weight of the extraction-risk score, each with the reason for its value."""

# 2: fitted per schema (a feature space, the grid's top codes); a format-1 profile (digits only) is refitted.
PROFILE_FORMAT = 2
PROFILE_NN_ROWS = 5_000  # rows used for the natural nearest-neighbour quantile (O(n^2) distances)
# Inputs wider than this are projected on their reference data's leading principal components (plus the residual's
# length): it bounds each window's O(n^2 k) distance work and the covariance's inverse. 64 keeps an 8x8 image (or a
# 64-feature table) as it is.
PROFILE_MAX_DIMENSIONS = 64
# The levels of `grid_entropy`: each feature's range cut in 16 steps (for the digits' 0..16 grid, one level a code).
ENTROPY_LEVELS = 17

# --- Decision levels (the pipeline reads them from settings, with these defaults) --------------------------------
# Throttle at 50: two strong signals, or one strong signal with corroboration. Freeze at 80: several independent
# signals agree; no single component's cap reaches it (see the caps below), so one ambiguous measure never freezes.
THROTTLE_SCORE = 50
FREEZE_SCORE = 80

# --- Scoring limits ------------------------------------------------------------------------------------------------
# The most recent inputs scored (the pipeline reads at most 5,000); bounds the O(n^2) distance work (0.1-0.2 s).
MAX_SCORED_INPUTS = 5_000
# One-sided z for the Wilson lower bound of a share: with few inputs, a share must be convincingly above the
# natural baseline (95%) before it counts, so a handful of odd inputs never scores.
SHARE_CONFIDENCE_Z = 1.645
# Below this many inputs the share-based signals count proportionally less, however clear the share: a developer
# trying the API with a few dozen random arrays is not an attack; an attacker gets there within two minutes.
SHARE_MIN_INPUTS = 100

# volume: points grow with log(inputs / normal_volume) from VOLUME_ONSET x normal to VOLUME_FULL x normal. The onset
# is "well above normal" (normal is a median: half of honest organizations send more); the cap of 25 keeps even an
# enormous honest customer, whose other signals are all natural, under the throttle level (25 + 8 + 5 < 50).
VOLUME_MAX_POINTS = 25.0
VOLUME_ONSET = 1.5
VOLUME_FULL = 10.0

# unique_inputs: full points when every input is distinct, none at 90% distinct; needs UNIQUE_MIN_INPUTS inputs to
# count fully (twenty natural inputs are trivially all distinct). Low weight: natural traffic is mostly unique.
UNIQUE_MAX_POINTS = 8.0
UNIQUE_ONSET = 0.90
UNIQUE_MIN_INPUTS = 500

# unnatural_inputs: the Wilson lower bound of the share of inputs beyond the natural q99 distance. Onset at 8%:
# new natural digits exceed about 1%, and the demo digits are centred, so an honest client that sometimes frames a
# digit one pixel off (40-85% of those exceed) stays around 5%. Full at 30% (uniform noise: 100%; a perturbation
# walk drifts past it within a few hundred steps). 40 points: with every ambiguous signal at its cap
# (25 + 8 + 5) it stays below the freeze level, so a customer whose digits are all preprocessed differently is at
# worst throttled and reviewed, never frozen by this alone.
UNNATURAL_MAX_POINTS = 40.0
UNNATURAL_ONSET = 0.08
UNNATURAL_FULL = 0.30

# input_entropy: the Wilson lower bound of the share of inputs whose pixel-histogram entropy is outside the natural
# [q01, q99] range (2% of natural digits by construction); onset 8%, full 50%.
ENTROPY_MAX_POINTS = 25.0
ENTROPY_ONSET = 0.08
ENTROPY_FULL = 0.50

# low_confidence: an answer is low-confidence below 0.6 (the free tier rounds to one decimal, so "0.5 or less").
# The share counts from twice the natural share (or natural + 5 points, whichever is higher) to 30%: the defended
# model answers ~8% of natural digits below 0.6 (it answers with probabilities softened at temperature 2), and a
# bisection onto its boundary or uniform-random inputs get 30-55%.
LOW_CONFIDENCE = 0.6
LOW_CONFIDENCE_MAX_POINTS = 30.0
LOW_CONFIDENCE_FULL = 0.30
# The natural share assumed when the profile has none measured: the demo's defended model answers ~8% of natural
# digits below 0.6 under the free tier's noise; 10% errs towards not flagging a model we know nothing about.
LOW_CONFIDENCE_DEFAULT_BASELINE = 0.10

# class_coverage: normalized entropy of the served labels, counted only after COVERAGE_MIN_PER_CLASS inputs per class.
COVERAGE_MAX_POINTS = 5.0
COVERAGE_MIN_PER_CLASS = 20

# prada: Juuti et al. compute W once |D| > 100 on all distances; we test the latest PRADA_MAX_DISTANCES (scipy's
# Shapiro-Wilk is exact to n = 5,000). The paper picks delta per data set so that benign traffic never alarms; on
# natural digits (30 simulated honest users, 150-2,000 queries each) W stays at or above 0.935, so delta = 0.92.
# Measured on the simulated attacks: uniform noise 0.99, boundary bisection 0.93-0.95, a walk from one image
# 0.97-0.98 (all its distances are small steps: unimodal). PRADA flags what mixes natural queries with synthetic
# ones around them (the paper's JbDA and T-RND); the attacks above are caught by the other signals.
PRADA_MIN_DISTANCES = 100
PRADA_MAX_DISTANCES = 5_000
PRADA_DELTA = 0.92
PRADA_FULL = 0.80  # W at or below this: full points
PRADA_MAX_POINTS = 40.0

# perturbation_walk: a query is a "step" when its nearest earlier distinct query is within the radius: half the 1%
# quantile of natural nearest-neighbour distances in the profile's space (different writers' digits are never this
# close; on the digits it is 5 intensity units, 4 pixels moved by 2.5 levels). Without a profile the walk is not
# measured: a distance means nothing without the model's natural spread. Two parts:
# - steps (45 points): the Wilson lower bound of the share of steps, from 10% (an honest app re-sending a slightly
#   re-scanned digit is rare: 1-4% measured) to 50%. Boundary bisection also scores here (each midpoint is close
#   to the previous one).
# - walk (30 points): the steps chain into a walk, either the longest chain (10 -> 40 steps in a row) or the
#   largest family of inputs descending from one input (20% -> 50% of the window, counted fully from 50 inputs):
#   perturbations *of one input*, not of many natural seeds.
# 75 together, below the freeze level alone; a walk that is also all-distinct (unique_inputs) or drifts off the
# natural digits is frozen. An honest client streaming near-identical camera frames of one digit for hours would
# look like a walk: the explanation says so to the reviewer.
PERTURBATION_SHARE_ONSET = 0.10
PERTURBATION_SHARE_FULL = 0.50
PERTURBATION_CHAIN_ONSET = 10
PERTURBATION_CHAIN_FULL = 40
PERTURBATION_FAMILY_ONSET = 0.20
PERTURBATION_FAMILY_FULL = 0.50
PERTURBATION_FAMILY_MIN = 50
PERTURBATION_STEPS_POINTS = 45.0
PERTURBATION_WALK_POINTS = 30.0
PERTURBATION_MAX_POINTS = PERTURBATION_STEPS_POINTS + PERTURBATION_WALK_POINTS

# reconnaissance: errors before 10% of the window's inputs were sent, more than 3 distinct kinds of them within
# RECON_BURST_SECONDS (an honest developer wiring up a client makes one or two kinds of mistake, plus the odd
# oversized batch), full at 6. 429s are the quota's doing, not probing, and are not a kind. Early errors must be at
# least half of all errors: a burst at the start, not a steady error rate.
RECON_EARLY_SHARE = 0.10
RECON_BURST_SECONDS = 1_800.0
RECON_MIN_KINDS = 4
RECON_FULL_KINDS = 6
RECON_IGNORED_CODES = frozenset({"rate_limited", "service_unavailable", "spend_cap_reached"})
RECON_MAX_POINTS = 20.0

# linked_accounts: a ring's merged inputs against ONE organization's normal volume (the ring is one actor), from 1x
# (log scale) to full at 2.5x. 60 points: a ring that sends several times an organization's normal is quota evasion
# at scale; with volume it freezes, on its own it stays below the freeze level.
LINKED_MAX_POINTS = 60.0
LINKED_FULL = 2.5
