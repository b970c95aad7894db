"""Run every ``bench_*.py`` beside this file, each in its own Python process, and print them.

A fresh process per script keeps the benchmarks apart: each sets up its own environment (see
``_setup.py``: it may re-execute itself without OpenBLAS overrides, which only works before
NumPy loads), its own thread pools and its own first numba calls.

Usage::

    python benchmarks/run.py                    # all of them, full size
    python benchmarks/run.py --quick            # smoke test: small shapes, few runs
    python benchmarks/run.py conv pool          # only bench_conv.py and bench_pool.py
    python benchmarks/run.py --markdown out.md  # also collect every table into one file

Any other option (e.g. ``--threads 1``) is passed on to every script.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def discover(names=()):
    """The ``bench_*.py`` scripts in this folder, sorted; ``names`` keeps only those matching
    (``conv`` or ``bench_conv`` or ``bench_conv.py``)."""
    scripts = sorted(f for f in os.listdir(HERE) if f.startswith("bench_") and f.endswith(".py"))
    if names:
        wanted = {n.removesuffix(".py").removeprefix("bench_") for n in names}
        unknown = wanted - {s[len("bench_"):-len(".py")] for s in scripts}
        if unknown:
            raise SystemExit(f"run.py: no benchmark named {sorted(unknown)}; "
                             f"have {', '.join(scripts)}")
        scripts = [s for s in scripts if s[len("bench_"):-len(".py")] in wanted]
    return scripts


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("names", nargs="*", help="benchmarks to run (default: all)")
    ap.add_argument("--quick", action="store_true", help="passed on: small shapes, few runs")
    ap.add_argument("--markdown", metavar="PATH", help="write every script's tables to PATH")
    ap.add_argument("--list", action="store_true", help="list the benchmarks and stop")
    args, passthrough = ap.parse_known_args(argv)

    scripts = discover(args.names)
    if args.list or not scripts:
        print("\n".join(scripts) if scripts else "no bench_*.py found")
        return 0

    failed, parts = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for script in scripts:
            cmd = [sys.executable, os.path.join(HERE, script), *passthrough]
            if args.quick:
                cmd.append("--quick")
            md = os.path.join(tmp, script + ".md")
            if args.markdown:
                cmd += ["--markdown", md]
            print(f"\n{'=' * 100}\n{script}\n{'=' * 100}", flush=True)
            t0 = time.perf_counter()
            rc = subprocess.call(cmd)       # output goes straight to our terminal
            print(f"[{script}: exit {rc}, {time.perf_counter() - t0:.0f} s]", flush=True)
            if rc != 0:
                failed.append(script)
            elif args.markdown and os.path.exists(md):
                with open(md) as f:
                    parts.append(f.read())
        if args.markdown:
            with open(args.markdown, "w") as f:
                f.write("\n".join(parts))
            print(f"markdown for {len(parts)} benchmark(s) written to {args.markdown}")

    if failed:
        print(f"FAILED: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
