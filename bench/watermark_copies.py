"""How often the region watermark proves a natural-data thief's copy, over many secrets, for a demo model.

The red-team exercise measures one secret (its platform's). This replays its natural-data campaign offline, under
SECRETS secrets per public tier: the thief's public rows of the model (`redteam.public_data`: the digits' 269, the
tumours' 86), then natural variants of them (`redteam.strategies.NaturalData`), answered as the tier answers them
(`abuse.simulation.answer`: the model's public variant as the simulation serves it, the tier's output defenses, the
watermark under that secret); a copy is trained on the first N answers with the red team's recipes (`close`:
fitting them as closely as it can; `light`: the platform's own recipe, 60 epochs, weight decay) and checked with
`verify_watermark` on the thief's inputs, as the exercise does.

    .venv/bin/python bench/watermark_copies.py [--model digits|breast-cancer] [--secrets 12] [--answers 3000]
        [--copies light,close] [--width W] [--projections P]
    # writes bench/results/watermark-copies-[<model>-]<answers>.json (with --width or --projections: a sweep,
    # nothing written)

No database, no server. `--width` overrides `REGION_WIDTH` (and `--projections` `REGION_PROJECTIONS`) for a sweep
of the region geometry.
"""

import argparse
import json
from pathlib import Path

import numpy as np

import serving.watermark
from abuse.simulation import SimulatedModel, breast_cancer_model, digits_model
from abuse.simulation.served import TIERS, answer
from redteam.copies import LABEL_RECIPE, LIGHT_RECIPE, SOFT, predict_labels, soft_targets, train_copy
from redteam.measure import WATERMARK_ALPHA
from redteam.strategies import NaturalData
from serving.watermark import RegionWatermark
from serving.watermark_verification import verify_watermark

RESULTS = Path(__file__).parent / "results"
RECIPES = {"close": LABEL_RECIPE, "light": LIGHT_RECIPE}
BATCH = {"free": 10, "pro": 100}  # the tiers' batch limits, as the exercise sends them
MODELS = {"digits": digits_model, "breast-cancer": breast_cancer_model}


def copy_verdicts(model: SimulatedModel, tier: str, recipe: str, *, secrets: int, answers: int) -> list[dict]:
    schema, n_classes = model.schema, len(model.class_labels)
    config = TIERS[tier].defenses

    def clean_labels(codes: np.ndarray) -> np.ndarray:
        return model.logits(schema.check_codes(np.ascontiguousarray(codes, dtype=schema.code_dtype))).argmax(axis=1)

    verdicts = []
    for secret in range(secrets):
        watermark = RegionWatermark.fit(schema, model.reference, secret=b"copies-%d" % secret, n_classes=n_classes)
        strategy = NaturalData(schema, model.public, seed=secret)
        inputs = np.concatenate([strategy.next_batch(BATCH[tier]) for _ in range(answers // BATCH[tier])])
        labels, confidences = answer(model, config, inputs, watermark=watermark)
        index = {label: i for i, label in enumerate(model.class_labels)}
        targets = soft_targets(np.array([index[label] for label in labels]), np.array(confidences), n_classes=n_classes)
        copy = train_copy(
            schema.values(inputs),
            targets,
            kind=SOFT,
            recipe=RECIPES[recipe],
            bounds=(schema.low, schema.high),
            seed=0,
        )
        result = verify_watermark(
            inputs,
            predict_labels(copy, schema.values(inputs)),
            clean_label_fn=clean_labels,
            n_classes=n_classes,
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
    parser.add_argument("--model", choices=sorted(MODELS), default="digits")
    parser.add_argument("--secrets", type=int, default=12)
    parser.add_argument("--answers", type=int, default=3_000)
    parser.add_argument("--copies", default="light,close")
    parser.add_argument("--width", type=float, default=None)
    parser.add_argument("--projections", type=int, default=None)
    options = parser.parse_args()
    if options.width is not None:
        serving.watermark.REGION_WIDTH = options.width
    if options.projections is not None:
        serving.watermark.REGION_PROJECTIONS = options.projections
    model = MODELS[options.model]()
    results: dict = {
        "model": options.model,
        "answers": options.answers,
        "secrets": options.secrets,
        "alpha": WATERMARK_ALPHA,
        "region_width": serving.watermark.REGION_WIDTH,
        "region_projections": serving.watermark.REGION_PROJECTIONS,
        "tiers": {},
    }
    for tier in BATCH:
        for recipe in options.copies.split(","):
            verdicts = copy_verdicts(model, tier, recipe, secrets=options.secrets, answers=options.answers)
            flagged = sum(v["p"] < WATERMARK_ALPHA for v in verdicts)
            results["tiers"].setdefault(tier, {})[recipe] = {"flagged": flagged, "verdicts": verdicts}
            print(f"{tier} {recipe}: flagged under {flagged} of {options.secrets} secrets", flush=True)
    if options.width is None and options.projections is None:
        name = "" if options.model == "digits" else f"{options.model}-"
        path = RESULTS / f"watermark-copies-{name}{options.answers}.json"
        path.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
