"""Simulated API traffic, honest and hostile, answered by a served model: the test bed of the extraction scorer.

Every generator is deterministic for its `seed` and returns the calls one API key would make, in time order, with
the answers the public API would serve: the model's logits through `serving.defenses.apply_defenses` with the
tier's defenses (the same pure function the prediction view calls). The model is a `SimulatedModel` (any schema:
its public variant's logits and its natural data; `SimulatedModel.from_data` builds one for any registered model)
and defaults to the defended digits demo. The simulation has its own fixed
noise and watermark secrets, not the server's: the exact noisy answers differ from production's, their statistics
do not.

Who is simulated:

- `honest_user`: natural digits (held-out rows as they are, and augmented copies of real digits: now and then a
  one-pixel shift, a little stroke-intensity change and noise, so that a copy differs from its original as another
  writer's digit would), sent in sessions of a few calls a minute with random gaps and batch sizes, with a few
  honest mistakes and the odd retried batch.
- `uniform_random_attacker`, `boundary_prober`, `interpolation_prober`, `perturbation_walker`: the
  synthetic-query extraction attacks (Tramèr et al. 2016; Papernot et al. 2017; Juuti et al. 2019) at the tier's
  maximum allowed pace, in the model's own units.
- `natural_data_retrainer`: an attacker who owns natural digits and labels them through the API (Knockoff-style
  retraining); per input indistinguishable from honest use. `sybil_ring` splits it, or any other strategy, over
  several accounts.
- `recon_then_attack`: a burst of bad requests to several endpoints, then an attack.

Nothing here imports Django: the benchmark and operators run it from a plain Python prompt. `risk_progression`
replays a stream through `abuse.extraction.extraction_risk` the way the pipeline reads the query log (the last 24 h,
at most the latest 5,000 inputs), to find how many queries an attack needs to reach a score.
"""

from abuse.simulation.attackers import (
    boundary_prober,
    interpolation_prober,
    natural_data_retrainer,
    perturbation_walker,
    recon_then_attack,
    sybil_ring,
    uniform_random_attacker,
    walk_one_step,
)
from abuse.simulation.honest import honest_user
from abuse.simulation.served import (
    HONEST_ERRORS,
    RECON_ERRORS,
    TIERS,
    SimulatedCall,
    SimulatedModel,
    TierPace,
    answer,
    as_simulated,
    breast_cancer_model,
    demo_model,
    digits_model,
    digits_split,
    natural_digits,
    natural_variation,
    reference_profile,
    small_steps,
)
from abuse.simulation.windows import (
    ProgressPoint,
    merge_streams,
    queries_to_freeze,
    queries_to_reach,
    risk_progression,
    window_from_calls,
)

__all__ = [
    "HONEST_ERRORS",
    "RECON_ERRORS",
    "TIERS",
    "ProgressPoint",
    "SimulatedCall",
    "SimulatedModel",
    "TierPace",
    "answer",
    "as_simulated",
    "boundary_prober",
    "breast_cancer_model",
    "demo_model",
    "digits_model",
    "digits_split",
    "honest_user",
    "interpolation_prober",
    "merge_streams",
    "natural_data_retrainer",
    "natural_digits",
    "natural_variation",
    "perturbation_walker",
    "queries_to_freeze",
    "queries_to_reach",
    "recon_then_attack",
    "reference_profile",
    "risk_progression",
    "small_steps",
    "sybil_ring",
    "uniform_random_attacker",
    "walk_one_step",
    "window_from_calls",
]
