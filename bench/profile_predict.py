"""Where a web worker's time goes on the prediction path: py-spy samples every worker of a running server while wrk
drives one scenario, and the samples are summed by frame (inclusive: the share of samples a function is on the stack;
self: at the top). Run by `MOAT_BENCH_PROFILE=1 make bench` (bin/bench) against the platform it starts.

    python bench/profile_predict.py --base-url http://127.0.0.1:8765 --key moat_live_... --pids "$(pgrep -d, -P MASTER)"
"""

import argparse
import collections
import json
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from api_load import natural_inputs, run_wrk

RESULTS = Path(__file__).parent / "results"


def _frame_name(frame: str) -> str:
    # py-spy's raw frames read "function (path/to/module.py:line)": keep the function and the module's last parts.
    function, _, where = frame.partition(" (")
    path = where.rsplit(":", 1)[0]
    if not path or not Path(path).name:
        return function  # a frame with no source file
    parts = Path(path).with_suffix("").parts
    module = ".".join(parts[parts.index("site-packages") + 1 :] if "site-packages" in parts else parts[-2:])
    return f"{module}.{function}"


def summarise(raw_files: list[Path], top: int) -> dict:
    inclusive: collections.Counter = collections.Counter()
    own: collections.Counter = collections.Counter()
    total = 0
    for raw in raw_files:
        for line in raw.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            if not stack:
                continue
            samples = int(count)
            frames = [_frame_name(frame) for frame in stack.split(";")]
            total += samples
            own[frames[-1]] += samples
            for name in set(frames):
                inclusive[name] += samples
    share = lambda counter: [(name, round(100 * n / total, 1)) for name, n in counter.most_common(top)]  # noqa: E731
    return {"samples": total, "inclusive_percent": share(inclusive), "self_percent": share(own)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--pids", required=True, help="the web server's worker processes, comma-separated")
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--batch", type=int, default=1, help="inputs per request")
    parser.add_argument("--top", type=int, default=60)
    parser.add_argument("--label", default="profile-predict")
    args = parser.parse_args()
    body = json.dumps({"inputs": natural_inputs(args.batch)})
    predict = f"{args.base_url}/v1/models/digits/predict"
    load = threading.Thread(
        target=run_wrk,
        args=(predict,),
        kwargs={"method": "POST", "key": args.key, "body": body, "seconds": args.seconds + 4, "connections": 16},
    )
    load.start()
    with tempfile.TemporaryDirectory() as folder:
        records = []
        for pid in args.pids.split(","):
            raw = Path(folder) / f"{pid}.txt"
            sampling = ["--duration", str(args.seconds), "--rate", "250", "--format", "raw", "--output", str(raw)]
            command = ["py-spy", "record", "--pid", pid, "--nonblocking", *sampling]
            records.append((raw, subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)))  # noqa: S603
        for _, process in records:
            process.wait()
        summary = summarise([raw for raw, _ in records if raw.exists()], args.top)
    load.join()
    print(f"{summary['samples']} samples over the workers; inclusive share of samples (on the stack):")
    for name, percent in summary["inclusive_percent"]:
        print(f"  {percent:5.1f}%  {name}")
    print("self share (at the top of the stack):")
    for name, percent in summary["self_percent"][:15]:
        print(f"  {percent:5.1f}%  {name}")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.label}.json").write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
