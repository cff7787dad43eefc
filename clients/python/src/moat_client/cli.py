"""`moat`: quick calls from a shell. The key comes from MOAT_API_KEY (or --api-key), the server from MOAT_BASE_URL
(or --base-url); answers are printed as JSON, errors as one line on stderr with exit status 1.

    moat models
    moat usage
    moat predict digits '[[0, 0, 5, 13, ...]]'        # a JSON list of inputs, or @file.json, or - for stdin
    moat predict-image digits seven.png
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from moat_client.client import Moat
from moat_client.errors import MoatError


def _inputs(argument: str) -> list:
    text = (
        sys.stdin.read()
        if argument == "-"
        else Path(argument[1:]).read_text()
        if argument.startswith("@")
        else argument
    )
    rows = json.loads(text)
    if not isinstance(rows, list) or not rows:
        raise ValueError("inputs must be a non-empty JSON list of inputs")
    return rows


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="moat", description="Call the Moat prediction API.")
    parser.add_argument("--api-key", help="the API key (default: $MOAT_API_KEY)")
    parser.add_argument("--base-url", help="the deployment (default: $MOAT_BASE_URL or http://127.0.0.1:8000)")
    parser.add_argument("--max-retry-wait", type=float, default=60.0, help="seconds to wait out 429/503 in all")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("models", help="the models your plan is served")
    commands.add_parser("usage", help="this period's usage and your plan's limits")
    predict = commands.add_parser("predict", help="predict a list of inputs")
    predict.add_argument("model")
    predict.add_argument("inputs", help="a JSON list of inputs, @file.json, or - for stdin")
    image = commands.add_parser("predict-image", help="predict one picture (PNG or JPEG)")
    image.add_argument("model")
    image.add_argument("path", type=Path)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        with Moat(api_key=args.api_key, base_url=args.base_url, max_retry_wait=args.max_retry_wait) as moat:
            if args.command == "models":
                result: object = [dataclasses.asdict(model) for model in moat.models()]
            elif args.command == "usage":
                result = dataclasses.asdict(moat.usage())
            elif args.command == "predict":
                result = [dataclasses.asdict(p) for p in moat.predict(args.model, _inputs(args.inputs))]
            else:
                result = dataclasses.asdict(moat.predict_image(args.model, args.path))
    except (MoatError, ValueError, OSError) as error:
        print(f"moat: {error}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
