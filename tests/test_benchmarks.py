"""Smoke tests of the benchmark scripts: each runs with ``--quick``, exits 0 and prints its
tables. Nothing here asserts a speed (timing lives in ``benchmarks/`` and only there); the
tests keep the scripts working, with and without the optional torch and Captum. Without
threadpoolctl (a dependency of the package) the whole module is skipped, with that reason.

The scripts are started together, each in its own process, when the first test needs one:
the whole module then takes about as long as the slowest script, not their sum.
"""

import importlib.util
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
HAVE_CAPTUM = all(importlib.util.find_spec(m) is not None for m in ("torch", "captum"))
# every script limits BLAS threads through threadpoolctl (a dependency of the package)
pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("threadpoolctl") is None,
    reason="the benchmark scripts need threadpoolctl: pip install threadpoolctl")
TIMEOUT = 600        # seconds per script: generous, a shared machine can be slow
#: Packages the benchmarks use when present; "bare" runs hide them, as on a fresh machine.
OPTIONAL = ("torch", "captum", "threadpoolctl")

#: name -> the script and its options (besides --quick); a name ending in "bare" runs with
#: the optional packages hidden
RUNS = {
    "methods": ["bench_methods.py"],
    "methods without torch": ["bench_methods.py", "--no-torch"],
    "startup": ["bench_startup.py", "--markdown", "{tmp}/startup.md"],
    "memory": ["bench_memory.py"],
    "conv": ["bench_conv.py"],
    "kernels": ["bench_kernels.py"],
    "pool": ["bench_pool.py"],
    "train": ["bench_train.py"],
    "model": ["bench_model.py", "--markdown", "{tmp}/model.md"],
    "model in-process": ["bench_model.py", "--in-process"],
    "contention": ["bench_contention.py"],
    "model bare": ["bench_model.py"],
    "methods bare": ["bench_methods.py"],
    "train bare": ["bench_train.py"],
    # Captum in both of torch's layouts, each in its own worker: needs torch and captum
    **({"after zf": ["bench_after_zf.py"]} if HAVE_CAPTUM else {}),
    "after zf bare": ["bench_after_zf.py"],
    "layers": ["bench_layers.py", "--markdown", "{tmp}/layers.md"],
    "layers bare": ["bench_layers.py"],
    "gemm": ["bench_gemm.py", "--markdown", "{tmp}/gemm.md"],
    "gemm bare": ["bench_gemm.py"],
    # as on a machine that sets OpenBLAS' kernel and cache size (whatever this one sets)
    "pool blas vars": ["bench_pool.py"],
}
#: What the "blas vars" runs are started with.
BLAS_VARS = {"OPENBLAS_CORETYPE": "Haswell", "OPENBLAS_L2_SIZE": "512"}


def hide_optional(tmp):
    """A directory whose packages shadow :data:`OPTIONAL`: importing one raises ImportError,
    as when it is not installed."""
    for name in OPTIONAL:
        (tmp / "hidden" / name).mkdir(parents=True, exist_ok=True)
        (tmp / "hidden" / name / "__init__.py").write_text(
            f"raise ImportError('{name} hidden by the test', name='{name}')\n")
    return str(tmp / "hidden")


@pytest.fixture(scope="module")
def started(tmp_path_factory):
    """Start every script of :data:`RUNS`; output goes to files (a full pipe would block)."""
    tmp = tmp_path_factory.mktemp("benchmarks")
    bare = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [hide_optional(tmp), *filter(None, [os.environ.get("PYTHONPATH")])]))
    procs = {}
    for name, (script, *args) in RUNS.items():
        out = open(tmp / f"{name}.out", "w+")
        err = open(tmp / f"{name}.err", "w+")
        cmd = [sys.executable, str(BENCHMARKS / script), "--quick",
               *(a.format(tmp=tmp) for a in args)]
        env = (bare if name.endswith("bare") else
               dict(os.environ, **BLAS_VARS) if name.endswith("blas vars") else
               # as a user who never set it: the torch worker must not get tinyconv's value
               {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
               if name == "model" else None)
        procs[name] = (subprocess.Popen(cmd, stdout=out, stderr=err, text=True, env=env),
                       out, err)
    yield procs, tmp
    for proc, out, err in procs.values():
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        out.close()
        err.close()


def finished(started, name):
    """Wait for one script; its stdout, or a failure with the end of its stderr."""
    procs, _ = started
    proc, out, err = procs[name]
    try:
        proc.wait(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail(f"{name}: no exit within {TIMEOUT} s")
    out.seek(0)
    err.seek(0)
    assert proc.returncode == 0, f"{name} exited {proc.returncode}:\n{err.read()[-3000:]}"
    return out.read()


def assert_tables(out, *titles):
    """The header, each title, and a column rule under it were printed."""
    assert out.startswith("bench_") and "threads:" in out
    for title in titles:
        assert title in out, f"missing table {title!r} in:\n{out}"
        after = out[out.index(title):].splitlines()
        assert after[2].startswith("---"), f"{title!r} has no column rule:\n{out}"


def test_methods(started):
    out = finished(started, "methods")
    assert_tables(out, "Projections of the class logit", "Where tinyconv's guided backprop goes",
                  "Occlusion of one digit", "Targets")
    if HAVE_CAPTUM:
        assert "GuidedBackprop" in out and "perturbations_per_eval=625" in out
        # Captum in both of torch's layouts: each row names the faster
        assert re.search(r"GuidedBackprop \((NCHW|channels_last)\)", out), out
        assert re.search(r"perturbations_per_eval=625, (NCHW|channels_last)", out), out
    else:
        assert "not installed: skipped" in out


def test_methods_without_torch_prints_skipped_rows(started):
    out = finished(started, "methods without torch")
    assert_tables(out, "Projections of the class logit", "Occlusion of one digit")
    assert "--no-torch: skipped" in out and "fast=False" in out


def test_startup(started):
    out = finished(started, "startup")
    assert_tables(out, "Import time", "Where import tinyconv spends its time",
                  "First forward + backward")
    assert "| CODE |" in (started[1] / "startup.md").read_text()


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux /proc")
def test_memory(started):
    out = finished(started, "memory")
    assert_tables(out, "tinyconv tour", "tinyconv sanity", "max_activating(model, X, 'conv2')")
    assert "np.memmap" in out


#: script -> the tables it must print, and a line it must print whatever the optional packages
TABLES = {
    "conv": (["Conv2D, float32 NHWC", "Targets (tinyconv / torch",
              "Where tinyconv's fwd+bwd time goes"],
             "max rel. diff" if HAVE_CAPTUM else "torch not installed"),
    "kernels": (["im2col / col2im (float32) against memcpy of the same size"], "% of memcpy"),
    "pool": (["MaxPool2D, float32 NHWC"], "dx max abs diff" if HAVE_CAPTUM
             else "torch not installed"),
    "train": (["One training step", "Where tinyconv's step goes"],
              "same weights, one batch: loss tinyconv" if HAVE_CAPTUM else "Adam.step"),
}


@pytest.mark.parametrize("name", list(TABLES))
def test_layer_benchmarks_print_their_tables(started, name):
    out = finished(started, name)
    titles, line = TABLES[name]
    assert_tables(out, *titles)
    assert line in out
    assert "separate processes: tinyconv and torch each in a fresh worker" in out or \
        name == "kernels"
    if name in ("conv", "pool"):
        # the A/A control: a second tinyconv worker, its ratio the last cell of each pass
        assert "worker tinyconv again (pid" in out and "A/A (median)" in out
        passes = [line.split() for line in out.splitlines()
                  if re.search(r"\s{2}(forward|fwd\+bwd)\s{2}", line)
                  and not line.startswith("shape")]                 # rows, not headers
        assert passes and all(float(row[-1]) > 0 for row in passes), passes
    if name == "conv" and HAVE_CAPTUM:
        # its targets (--quick: the cut batches), each verdict following from its row
        rows, floor = target_rows(out, "Targets (tinyconv / torch")
        assert [r[0] for r in rows] == ["forward,", "fwd+bwd,", "forward,"], rows
        assert_verdicts_follow([(float(r[-3]), float(r[-4]), number(r[-2]), r[-1])
                                for r in rows], floor)


def test_a_script_started_with_openblas_overrides_runs_without_them(started):
    out = finished(started, "pool blas vars")
    assert_tables(out, "MaxPool2D, float32 NHWC")   # the report alone on stdout, from its start
    assert "env: started without OPENBLAS_CORETYPE=Haswell OPENBLAS_L2_SIZE=512" in out
    workers = [line for line in out.splitlines()        # the workers that ran (torch's may
               if line.startswith("worker ") and "(pid" in line]   # be "not installed")
    assert workers and all(
        "OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset before NumPy loaded" in w for w in workers)
    _, tmp = started
    assert "re-executing without OPENBLAS_CORETYPE=Haswell" in \
        (tmp / "pool blas vars.err").read_text()


#: The targets table's rows in --quick (the smaller batches that stand in for the targets').
MODEL_TARGET_ROWS = ("forward, batch 16", "train step, batch 16", "gradient (saliency), batch 8",
                     "guided backprop, batch 8", "occlusion 4x4, zero", "occlusion 4x4, grey")
MODEL_TABLES = ("Forward pass of the shipped model", "Training (forward", "Explanation methods",
                "Targets")


def test_model(started):
    out = finished(started, "model")
    assert_tables(out, *MODEL_TABLES)
    # every worker says what it runs on: the overrides gone, the threads pinned
    assert "worker tinyconv (pid" in out and "unset before NumPy loaded" in out
    assert "NUMBA_NUM_THREADS=2, OMP_NUM_THREADS=2, OPENBLAS_NUM_THREADS=2" in out
    # the A/A control: tinyconv's worker in a second process, its ratio on every timed row
    assert "worker tinyconv again (pid" in out and "A/A (median)" in out
    timed = out.split("\nTargets (tinyconv / reference")[0]     # not the targets' rows
    forward = [line.split() for line in timed.splitlines() if line.startswith("forward, batch")]
    assert forward
    if HAVE_CAPTUM:
        # after the reference's layout: the two ratios against it, then the A/A ratio
        for row in forward:
            at = next(i for i, c in enumerate(row) if c in ("NCHW", "channels_last"))
            assert float(row[at + 3]) > 0, row
    for row in ("forward, batch 1", "train step", "train epoch", "guided backprop, batch",
                "deconvnet, batch", "gradient (saliency), batch", "zero occluder",
                "grey occluder", "MaxAct conv2"):
        assert row in out, row
    if HAVE_CAPTUM:
        assert "worker torch (pid" in out and "max rel. diff" in out
        # torch loaded before the worker imported tinyconv (which sets OMP_WAIT_POLICY for
        # its own pool): torch's OpenMP runs as in a torch user's program
        assert "torch loaded before tinyconv, OMP_WAIT_POLICY unset" in out
        # the reference is timed in both of torch's layouts and each row names the faster
        rows = [line for line in timed.splitlines()
                if line.startswith(("forward, batch", "gradient (saliency), batch"))]
        assert rows and all(re.search(r"\s(NCHW|channels_last)\s", line) for line in rows), rows
        # activation maximisation against the same ascent written in torch: the same
        # images, step for step, over --quick's 5 steps (a wrong update, blur or jitter in
        # either would part them by far more)
        ascents = [line.split() for line in out.splitlines()
                   if line.startswith(("class models, 10 logits", "preferred image, conv3"))]
        assert len(ascents) == 2, out
        for row in ascents:
            assert float(row[-1]) < 1e-5, row
    else:
        assert "class models, 10 logits at once, 5 steps" in out
    assert "| case |" in (started[1] / "model.md").read_text()
    # the targets table (--quick: on the smaller batches): each verdict follows from the
    # row's printed median and A/A and the run's floor (the rule's own test is
    # test_verdict_reads_a_ratio_...)
    rows, floor = target_rows(out, "Targets (tinyconv / reference")
    if HAVE_CAPTUM:
        assert len(rows) == len(MODEL_TARGET_ROWS), rows
        assert all(" ".join(row).startswith(label) for row, label
                   in zip(rows, MODEL_TARGET_ROWS, strict=True)), rows
        # comparison ... <= target, median, best, A/A, verdict
        assert_verdicts_follow([(float(r[-4]), float(r[-5]), number(r[-2]), r[-1])
                                for r in rows], floor)


@pytest.mark.skipif(not HAVE_CAPTUM, reason="bench_after_zf.py compares with Captum: "
                    "pip install torch==2.13.0 captum")
def test_after_zf_times_captum_in_both_layouts(started):
    out = finished(started, "after zf")
    assert "Captum NCHW" in out and "Captum ch-last" in out
    rows = [line.split() for line in out.split("\nA/A control")[0].splitlines()
            if line.startswith(("IG ", "SmoothGrad ", "Grad-CAM "))]
    assert len(rows) == 3
    for row in rows:
        # the faster layout is named, then the ratios, which are positive numbers
        assert row[10] in ("NCHW", "channels_last"), row
        assert float(row[11]) > 0 and float(row[12]) > 0, row
    assert_control(out)
    # the verdict of each task against its target, with the A/A control as the margin
    lines = out.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("Target: tinyconv"))
    verdicts = [line.split() for line in lines[at:]
                if line.startswith(("IG ", "SmoothGrad ", "Grad-CAM "))]
    assert [row[0] for row in verdicts] == ["IG", "SmoothGrad", "Grad-CAM"], out
    assert all(len(row) == 4 for row in verdicts), out
    # each follows from its ratio and A/A against the printed target, at the floor printed
    # above them: the median spread of the three A/As of the control table (as far as
    # their rounding tells)
    target = float(lines[at].split("<=")[1].split()[0])
    floor = printed_floor(lines[at:])
    control = [float(row[9]) for row in (line.split() for line in lines)
               if row[:1] == ["A/A"] and row[1] in ("IG", "SmoothGrad", "Grad-CAM")]
    assert len(control) == 3, out
    lo, hi = sorted(spread_interval(c) for c in control)[1]
    assert lo - 0.0005 <= floor <= hi + 0.0005, (control, floor)
    assert_verdicts_follow([(float(r[1]), target, number(r[2]), r[3]) for r in verdicts],
                           floor)


def test_the_timed_ascents_are_the_galleries_ascents():
    """bench_model.py times the ascents of gallery.class_models and preferred_images: the
    same layer and the settings each passes to maximize_features (the unit one of conv3's
    features, where the gallery takes the top-ranked ones, at the same centre unit)."""
    code = textwrap.dedent("""
        import bench_model as bm, tinyconv as tc
        from tinyconv import gallery
        from tinyconv.units import centre_unit

        class Called(Exception):
            pass

        def fake(model, layer, ks, idx=None, **settings):
            raise Called(model.index(layer), list(ks), idx, settings)

        gallery.maximize_features = fake
        model = tc.pretrained("mnist")
        X, _ = bm.digits("bundled-test", 64)
        for name, run in (("classes", lambda: gallery.class_models(model)),
                          ("unit", lambda: gallery.preferred_images(model, X, n=1))):
            try:
                run()
            except Called as called:
                l, ks, idx, settings = called.args
            steps = settings["steps"]
            layer, bks, bsettings = bm.ascent_case(name, steps)
            assert model.index(layer) == l, (name, layer, l)
            assert bsettings == settings, (name, bsettings, settings)
            if name == "classes":
                assert bks == ks and idx is None, (bks, ks, idx)
            else:
                assert len(bks) == 1 and tuple(idx) == centre_unit(model, l), (bks, idx)
            # and full mode times this many steps
            assert any(case == f"ascent|{name}|{steps}" for _, _, case, _, _
                       in bm.cases(False)), (name, steps)
            print(name, "ok")
        """)
    out = subprocess.run([sys.executable, "-c", code], cwd=BENCHMARKS, capture_output=True,
                         text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["classes", "ok", "unit", "ok"], out.stdout


def test_verdict_reads_a_ratio_at_the_resolution_of_its_control():
    """met / tie / missed against a target, the A/A control's factor as the margin (either
    side of 1.00, at least the run's typical one), the median alone without a control; and
    the run's typical factor is the median over its rows."""
    cases = [((0.72, 1.0, 1.06), "met"), ((0.97, 1.0, 1.07), "tie"),
             ((1.19, 1.0, 1.07), "missed"), ((0.90, 1.0, 0.85), "tie"),
             ((0.80, 1.0, 0.85), "met"), ((0.33, 0.2, 1.02), "missed"),
             ((0.21, 0.2, 1.10), "tie"), ((1.0, 1.0, None), "met"),
             ((1.01, 1.0, None), "missed"), ((None, 1.0, 1.0), None),
             # a lucky A/A of 1.00 on this row: the run's typical spread is the margin
             ((0.99, 1.0, 1.00, 1.03), "tie"), ((0.95, 1.0, 1.01, 1.03), "met"),
             ((1.10, 1.0, None, 1.08), "missed")]
    code = ("import _setup; print(repr([_setup.verdict(*a) for a in "
            f"{[a for a, _ in cases]!r}])); "
            "print(repr(_setup.margin_floor([None])[0])); "
            "print(repr(_setup.margin_floor([1.04, None, 0.98, 1/1.10])[0]))")
    out = subprocess.run([sys.executable, "-c", code], cwd=BENCHMARKS, capture_output=True,
                         text=True, check=True).stdout.strip().splitlines()
    assert out[-3] == repr([v for _, v in cases])
    assert float(out[-2]) == 1.0                     # no control: the median alone decides
    assert abs(float(out[-1]) - 1.04) < 1e-12        # the median of 1.04, 1/0.98, 1.10


def away_from_one(a):
    """How far an A/A ratio ``a`` is from 1.00, as a factor: ``max(a, 1 / a)``."""
    return max(a, 1 / a)


def verdicts_allowed(ratio, target, aa, floor):
    """Every verdict that a printed ratio of medians, A/A control and floor allow, the rule
    of benchmarks/README.md restated: the margin s is the larger of the A/A's distance from
    1.00 (as a factor) and the floor; met when ratio * s <= target, missed when ratio >=
    target * s, a tie between. The printed cells are rounded (2 and 3 decimals), so every
    value they could have stood for is tried."""
    aas = [None] if aa is None else [aa - 0.005, aa + 0.005] + ([1.0] if abs(aa - 1) <= 0.005
                                                                 else [])
    # the ends of the ratio's rounding interval, and the target if it lies inside: a tie
    # band narrower than the interval (a low target, no A/A) can fall between the ends
    ratios = [ratio - 0.005, ratio + 0.005] + ([target] if abs(ratio - target) <= 0.005
                                               else [])
    out = set()
    for r in ratios:
        for a in aas:
            for f in (floor - 0.0005, floor + 0.0005):
                s = max(f, 1.0 if a is None else away_from_one(a))
                out.add("met" if r * s <= target else "missed" if r >= target * s else "tie")
    return out


def test_the_restated_verdict_rule_tells_the_verdicts_apart():
    # the oracle of the tests below can fail: each verdict, far from the edges, is alone
    assert verdicts_allowed(0.50, 1.0, 1.02, 1.03) == {"met"}
    assert verdicts_allowed(1.00, 1.0, 1.02, 1.03) == {"tie"}
    assert verdicts_allowed(1.50, 1.0, 0.90, 1.03) == {"missed"}
    assert verdicts_allowed(0.95, 1.0, 1.10, 1.03) == {"tie"}       # the A/A's margin
    # and it allows for rounding: a ratio printed as its target may be a tie (0.2 at 1.02)
    assert "tie" in verdicts_allowed(0.20, 0.2, 1.00, 1.020)
    assert "tie" in verdicts_allowed(0.33, 0.33, None, 1.010)


def target_rows(out, title):
    """The rows of the targets table ``title``: ``(ratio, target, A/A or None, verdict)``,
    read from the right (the labels hold spaces), and the floor its last note names."""
    lines = out[out.index(title):].splitlines()
    floor = printed_floor(lines)
    rows = []
    for line in lines[3:]:
        cells = line.split()
        if len(cells) < 5 or cells[-1] not in ("met", "tie", "missed"):
            break
        rows.append(cells)
    return rows, floor


def printed_floor(lines):
    """The floor of the first "margin floor" line of ``lines``: 1.0 when it says "none" (no
    A/A control: the median alone decides)."""
    line = next(line for line in lines if line.startswith("margin floor"))
    return 1.0 if line.startswith("margin floor: none") else float(line.split()[-1])


def spread_interval(printed):
    """The interval of :func:`away_from_one` over every A/A that rounds to ``printed``."""
    lo, hi = printed - 0.005, printed + 0.005
    ends = [away_from_one(a) for a in (lo, hi)]
    return (1.0 if lo <= 1 <= hi else min(ends)), max(ends)


def assert_verdicts_follow(rows, floor):
    """Each printed verdict is one its own printed cells allow."""
    assert rows
    for ratio, target, aa, verdict in rows:
        assert verdict in verdicts_allowed(ratio, target, aa, floor), (ratio, target, aa,
                                                                       verdict, floor)


def number(cell):
    return None if cell == "-" else float(cell)


def assert_control(out):
    """bench_after_zf.py's A/A table: one row per task, tinyconv's and its twin's best /
    median, then the ratios."""
    assert "A/A control: tinyconv / tinyconv again" in out
    rows = [line.split() for line in out.splitlines()
            if line.startswith(("A/A IG ", "A/A SmoothGrad ", "A/A Grad-CAM "))]
    assert [row[1] for row in rows] == ["IG", "SmoothGrad", "Grad-CAM"], out
    for row in rows:
        # A/A task, best / median twice, ratio best, ratio median, one per-round ratio and
        # its median in parentheses (--quick: one round)
        assert len(row) == 12 and row[3] == row[6] == "/", row
        assert all(float(c) > 0 for c in row[2:3] + row[4:6] + row[7:11]), row
        assert row[11] == f"({row[10]})", row


def test_model_in_process_says_so(started):
    out = finished(started, "model in-process")
    assert_tables(out, *MODEL_TABLES)
    assert "IN-PROCESS" in out and "worker tinyconv (pid" not in out
    assert "worker tinyconv again" not in out     # one process: no A/A control to run
    # no control, no floor: each verdict is the median's alone, which the rows must show
    rows, floor = target_rows(out, "Targets (tinyconv / reference")
    assert "margin floor: none" in out and floor == 1.0
    if HAVE_CAPTUM:
        assert len(rows) == len(MODEL_TARGET_ROWS) and all(r[-2] == "-" for r in rows), rows
        assert_verdicts_follow([(float(r[-4]), float(r[-5]), None, r[-1]) for r in rows], 1.0)


def test_contention(started):
    out = finished(started, "contention")
    assert_tables(out, "One training epoch")
    assert "neighbour:" in out and "as shipped" in out and "busy / idle" in out
    if importlib.util.find_spec("torch") is not None:
        # torch's row holds times, not the message of a case its worker could not build
        row = next(line for line in out.splitlines() if line.startswith("torch "))
        assert "Error" not in row and "torch defaults, 2 threads, channels_last" in row, row


@pytest.mark.parametrize("name", ["model bare", "methods bare", "train bare"])
def test_runs_without_the_optional_packages(started, name):
    """A fresh machine without torch, Captum or threadpoolctl: tinyconv's side still runs and
    the missing ones are named, not a traceback."""
    out = finished(started, name)
    assert "threadpoolctl not installed" in out
    assert "torch not installed" in out
    assert "Traceback" not in out


def test_after_zf_without_torch_times_tinyconv_and_says_why(started):
    out = finished(started, "after zf bare")
    assert "Traceback" not in out
    assert "Captum: torch not installed: skipped" in out
    rows = [line.split() for line in out.splitlines()
            if line.startswith(("IG ", "SmoothGrad ", "Grad-CAM "))]
    assert len(rows) == 3 and all(row[-2:] == ["skipped", "skipped"] for row in rows)
    assert all(float(row[1]) > 0 for row in rows)            # tinyconv's best, in ms
    assert_control(out)                   # the A/A control needs no Captum: it still runs


STEPS = ("conv1", "relu1 + pool1", "conv2", "relu2 + pool2", "conv3", "relu3 + pool3",
         "flatten", "logits", "sum of steps", "whole pass")


def layer_rows(out):
    """``{step: cells}`` of bench_layers.py's table (one batch in --quick mode)."""
    rows = {}
    for line in out.splitlines():
        step = next((s for s in STEPS if line.startswith(s + " ")), None)
        if step:
            rows[step] = line[len(step):].split()
    return rows


def test_layers_times_every_step_of_the_shipped_model(started):
    out = finished(started, "layers")
    assert "batch 8" in out and "Traceback" not in out
    rows = layer_rows(out)
    assert list(rows) == list(STEPS)
    torch = importlib.util.find_spec("torch") is not None
    for step, cells in rows.items():
        # tinyconv forward, torch NCHW, torch channels_last, ratio, tinyconv backward
        assert len(cells) == 5, (step, cells)
        numbers = cells if torch else [cells[0], cells[4]]
        assert all(float(c) > 0 for c in numbers), (step, cells)
    assert "torch's backward, whole: NCHW" in out if torch else "torch not installed" in out
    assert "Command: python benchmarks/bench_layers.py --quick" in (
        started[1] / "layers.md").read_text()


def test_layers_without_torch_times_tinyconv_and_says_why(started):
    out = finished(started, "layers bare")
    assert "Traceback" not in out
    assert "torch: torch not installed: skipped" in out
    rows = layer_rows(out)
    assert list(rows) == list(STEPS)
    assert all(cells[1:4] == ["-", "-", "-"] and float(cells[0]) > 0 and float(cells[4]) > 0
               for cells in rows.values())


#: bench_gemm.py's column headers, table by table.
GEMM_HEADERS = {"GEMM": ["layer", "[cols,", "1]", "NumPy", "torch.mm", "NumPy/torch"],
                "whole": ["layer", "tinyconv", "im2col", "torch", "im2col", "tinyconv", "layer",
                          "torch", "NCHW", "ch-last", "layer/torch", "torch", "im2col/conv"]}
#: Cells per row: the matrix, then ms and GFLOP/s for two libraries, and their ratio; or
#: three routes, the layer's path and two torch layouts (ms and GFLOP/s each), two ratios.
GEMM_CELLS = {"GEMM": 6, "whole": 13}


def gemm_rows(out):
    """``[(table, layer, cells)]`` of bench_gemm.py's two tables (one batch in --quick mode),
    after checking each table's header."""
    rows, table, lines = [], None, iter(out.splitlines())
    for line in lines:
        if line.startswith("batch 8: "):
            table = "GEMM" if "alone" in line else "whole"
            assert next(lines).split() == GEMM_HEADERS[table], line
        elif table and line.startswith("conv"):
            name, *cells = line.split()
            assert len(cells) == GEMM_CELLS[table], (table, line)
            rows.append((table, name, cells))
    assert [(t, n) for t, n, _ in rows] == [(t, f"conv{i}") for t in ("GEMM", "whole")
                                            for i in (1, 2, 3)], out
    return rows


def times_and_rates(cells):
    """Whether ``cells`` are pairs of a time in ms (never 0) and a GFLOP/s (a busy machine
    may round it down to 0.0)."""
    return all(float(ms) > 0 <= float(rate)
               for ms, rate in zip(cells[::2], cells[1::2], strict=True))


def test_gemm_times_each_convolution_every_way(started):
    out = finished(started, "gemm")
    assert "Traceback" not in out
    torch = importlib.util.find_spec("torch") is not None
    for table, name, cells in gemm_rows(out):
        if table == "GEMM":
            # [cols, 1]: rows x (kh kw C_in + 1) at batch 8, then ms and GFLOP/s per library,
            # then NumPy / torch
            assert cells[0] == {"conv1": "6272x26", "conv2": "1568x401",
                                "conv3": "392x289"}[name]
            pairs, ratios = (cells[1:5], cells[5:]) if torch else (cells[1:3], [])
        else:
            # tinyconv im2col, torch im2col, the layer's path, the layer, torch NCHW and
            # channels_last (ms and GFLOP/s each), then two ratios
            assert cells[4] in ("im2col", "Winograd"), cells
            pairs, ratios = ((cells[:4] + cells[5:11], cells[11:]) if torch
                             else (cells[:2] + cells[5:7], []))
        assert times_and_rates(pairs), cells
        assert all(float(r) > 0 for r in ratios), cells
    assert "Command: python benchmarks/bench_gemm.py --quick" in (
        started[1] / "gemm.md").read_text()


def test_gemm_without_torch_times_tinyconv_and_says_why(started):
    out = finished(started, "gemm bare")
    assert "Traceback" not in out and "torch: torch not installed: skipped" in out
    for table, _, cells in gemm_rows(out):
        ours, torch_cells = ((cells[1:3], cells[3:]) if table == "GEMM"
                             else (cells[:2] + cells[5:7], cells[2:4] + cells[7:]))
        assert set(torch_cells) == {"-"}, (table, cells)
        assert times_and_rates(ours), (table, cells)


def test_hidden_packages_really_are_hidden(tmp_path):
    """The negative control of the bare runs: the shadowing directory makes the import fail."""
    env = dict(os.environ, PYTHONPATH=hide_optional(tmp_path))
    for name in OPTIONAL:
        proc = subprocess.run([sys.executable, "-c", f"import {name}"], env=env,
                              capture_output=True, text=True)
        assert proc.returncode != 0 and "hidden by the test" in proc.stderr


def test_run_lists_every_benchmark():
    out = subprocess.run([sys.executable, str(BENCHMARKS / "run.py"), "--list"],
                         capture_output=True, text=True, check=True).stdout.split()
    assert {"bench_model.py", "bench_contention.py", "bench_conv.py"} <= set(out)
