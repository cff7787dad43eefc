"""How often the region watermark proves a natural-data thief's copy, over many secrets.

The red-team exercise measures one secret (its platform's). This replays its natural-data campaign offline, under
SECRETS secrets per public tier: the thief's 269 public digits, then variants of them (`redteam.strategies.
NaturalData`), answered as the tier answers them (`abuse.simulation.answer`: the defended demo model, the tier's
output defenses, the watermark under that secret); a copy is trained on the first N answers with the red team's
recipes (`close`: fitting them as closely as it can; `light`: the platform's own recipe, 60 epochs, weight decay)
and checked with `verify_watermark` on the thief's inputs, as the exercise does.

    .venv/bin/python bench/watermark_copies.py [--secrets 12] [--answers 3000] [--copies light,close] [--width W]
    # writes bench/results/watermark-copies-<answers>.json (with --width: a sweep, nothing written)

No database, no server. `--width` overrides `REGION_WIDTH` for a sweep of the region size.
"""

import argparse
import json
from pathlib import Path

import numpy as np

import serving.watermark
from abuse.simulation.served import TIERS, answer, demo_model, digits_schema, digits_split
from redteam.copies import LABEL_RECIPE, LIGHT_RECIPE, SOFT, predict_labels, soft_targets, train_copy
from redteam.measure import WATERMARK_ALPHA
from redteam.strategies import NaturalData
from serving.ml.mlp import forward_logits
from serving.watermark import RegionWatermark
from serving.watermark_verification import verify_watermark

RESULTS = Path(__file__).parent / "results"
RECIPES = {"close": LABEL_RECIPE, "light": LIGHT_RECIPE}
BATCH = {"free": 10, "pro": 100}  # the tiers' batch limits, as the exercise sends them


def copy_verdicts(tier: str, recipe: str, *, secrets: int, answers: int) -> list[dict]:
    split, schema, model = digits_split(), digits_schema(), demo_model()
    reference = schema.codes(split.X_train)
    config = TIERS[tier].defenses

    def clean_labels(rows: np.ndarray) -> np.ndarray:
        return forward_logits(model, np.asarray(rows, dtype=np.float64)).argmax(axis=1)

    verdicts = []
    for secret in range(secrets):
        watermark = RegionWatermark.fit(schema, reference, secret=b"copies-%d" % secret, n_classes=10)
        strategy = NaturalData(split.X_public, seed=secret)
        inputs = np.concatenate([strategy.next_batch(BATCH[tier]) for _ in range(answers // BATCH[tier])])
        labels, confidences = answer(model, config, inputs, watermark=watermark)
        targets = soft_targets(np.array([int(label) for label in labels]), np.array(confidences), n_classes=10)
        copy = train_copy(
            inputs.astype(np.float64),
            targets,
            kind=SOFT,
            recipe=RECIPES[recipe],
            bounds=(schema.low, schema.high),
            seed=0,
        )
        result = verify_watermark(
            inputs,
            predict_labels(copy, inputs.astype(np.float64)),
            clean_label_fn=clean_labels,
            n_classes=10,
            watermark=watermark,
            fraction=config.watermark_fraction,
            alpha=WATERMARK_ALPHA,
        )
        verdicts.append(
            {
                "matches": result.matches,
                "inputs": result.watermark_inputs,
                "regions": result.regions,
                "p": result.p_value,
            }
        )
        print(
            f"  {tier} {recipe} secret {secret}: {result.matches}/{result.watermark_inputs} in {result.regions} "
            f"regions, p = {result.p_value:.2g}",
            flush=True,
        )
    return verdicts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--secrets", type=int, default=12)
    parser.add_argument("--answers", type=int, default=3_000)
    parser.add_argument("--copies", default="light,close")
    parser.add_argument("--width", type=float, default=None)
    options = parser.parse_args()
    if options.width is not None:
        serving.watermark.REGION_WIDTH = options.width
    results: dict = {
        "answers": options.answers,
        "secrets": options.secrets,
        "alpha": WATERMARK_ALPHA,
        "region_width": serving.watermark.REGION_WIDTH,
        "tiers": {},
    }
    for tier in BATCH:
        for recipe in options.copies.split(","):
            verdicts = copy_verdicts(tier, recipe, secrets=options.secrets, answers=options.answers)
            flagged = sum(v["p"] < WATERMARK_ALPHA for v in verdicts)
            results["tiers"].setdefault(tier, {})[recipe] = {"flagged": flagged, "verdicts": verdicts}
            print(f"{tier} {recipe}: flagged under {flagged} of {options.secrets} secrets", flush=True)
    if options.width is None:
        path = RESULTS / f"watermark-copies-{options.answers}.json"
        path.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
