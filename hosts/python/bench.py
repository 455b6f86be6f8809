"""Benchmark of the Python host: evaluations per second single-threaded
(one flag; evaluate-all), microseconds per evaluation, and process start to
first evaluation. Not a test: figures depend on the machine.

    BUNTING_TARGET_DIR=/path/to/target python hosts/python/bench.py [SNAPSHOT] [--seconds N]

The native reference runs in the same bench, on the same snapshot and
context: ``target/release/examples/native_bench`` (``cargo build --release -p
bunting-core --example native_bench``), whose medians give the ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
TARGET = Path(os.environ.get("BUNTING_TARGET_DIR") or REPO / "target")
sys.path.insert(0, str(HERE / "src"))
if not os.environ.get("BUNTING_CORE_WASM") and not (HERE / "src" / "bunting" / "bunting_core_abi.wasm").is_file():
    os.environ["BUNTING_CORE_WASM"] = str(TARGET / "wasm" / "bunting_core_abi.wasm")

FIRST_EVAL = r"""
import sys, time
t0 = float(sys.argv[1])
sys.path.insert(0, sys.argv[2])
from bunting import BuntingClient
c = BuntingClient.from_snapshot(open(sys.argv[3], 'rb').read(), require_checksum=False)
c.start()
c.evaluate(sys.argv[4], {"targetingKey": "user-1"})
print(time.time() - t0)
"""


def rate(fn, seconds: float) -> tuple[float, int]:
    n, start = 0, time.perf_counter()
    while True:
        for _ in range(200):
            fn()
        n += 200
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return n / elapsed, n


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("snapshot", nargs="?", default=str(REPO / "examples" / "demo-snapshot.json"))
    ap.add_argument("--seconds", type=float, default=3.0)
    args = ap.parse_args()

    from bunting import BuntingClient

    raw = Path(args.snapshot).read_bytes()
    doc = json.loads(raw)
    flag = doc["flags"][0]["key"]
    client = BuntingClient.from_snapshot(raw, require_checksum=False)
    client.start()
    ctx = {"targetingKey": "user-42", "country": "US", "email": "a@example.com",
           "app": {"version": "4.3.1"}, "plan": "pro", "device": {"type": "mobile"}}
    nflags = len(doc["flags"])
    print(f"snapshot {args.snapshot}: {nflags} flags; flag {flag!r}")

    one, _ = rate(lambda: client.evaluate(flag, ctx), args.seconds)
    print(f"single flag:   {one:12,.0f} evaluations/s  {1e6 / one:8.2f} µs/evaluation")
    allr, _ = rate(lambda: client.evaluate_all(ctx), args.seconds)
    print(f"evaluate-all:  {allr:12,.0f} calls/s        {1e6 / allr:8.2f} µs/call  "
          f"= {allr * nflags:,.0f} flag evaluations/s ({1e6 / (allr * nflags):.2f} µs/flag)")

    native = TARGET / "release" / "examples" / "native_bench"
    if native.is_file():
        with tempfile.TemporaryDirectory() as d:
            cf = Path(d) / "contexts.json"
            cf.write_text(json.dumps([ctx]))
            out = subprocess.run([str(native), args.snapshot, str(cf), flag, str(int(time.time() * 1000))],
                                 check=True, capture_output=True, text=True)
        ref = json.loads(out.stdout)
        print(f"native bunting-core: {ref['oneUs']:.2f} µs/evaluation (one flag), "
              f"{ref['allPerFlagUs']:.2f} µs/flag (evaluate-all)")
        print(f"python/native: one flag {(1e6 / one) / ref['oneUs']:.0f}x, "
              f"evaluate-all per flag {(1e6 / (allr * nflags)) / ref['allPerFlagUs']:.0f}x")
    else:
        print(f"native: {native} not built (cargo build --release -p bunting-core --example native_bench); no ratio")

    # Process start -> first evaluation (fresh interpreters; the first may fill the compile cache).
    for label in ("cold cache" if not os.environ.get("BUNTING_CACHE_DIR") else "cache", "warm cache"):
        t0 = time.time()
        out = subprocess.run([sys.executable, "-c", FIRST_EVAL, str(t0), str(HERE / "src"), args.snapshot, flag],
                             check=True, capture_output=True, text=True)
        print(f"process start -> first evaluation ({label}): {float(out.stdout) * 1000:.0f} ms")


if __name__ == "__main__":
    main()
