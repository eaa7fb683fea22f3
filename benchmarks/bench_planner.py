"""``make bench-planner``: the planner page's first paint and control-change time in Chromium, 1,000,000 leads vs 1,000.

Trains a small model on synthetic data into a temporary MLflow store, writes two scored open bases
(1,000 and 1,000,000 leads, the same probability distribution), and for each starts
``lead-serve http --scores`` on 127.0.0.1 and opens ``/planner`` in Debian's Chromium (Playwright):

- first paint (the browser's first-contentful-paint) and the page ready (DOMContentLoaded: the inline
  script has filled every table), on the first load (the server bins the base) and on reloads;
- a control change: the SQL slider set and its ``input`` event handled until the tables, the answer
  and the curve are rebuilt and laid out, measured inside the page; and an arrow key sent from Python
  (the browser round trip included).

The 1,000-lead base is the baseline of the same run; targets: first paint under 1 s, a control change
under 100 ms at 1,000,000 leads.

    python benchmarks/bench_planner.py [--leads 1000000] [--changes 60] [--reloads 5]
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

PROJECT = Path(__file__).resolve().parents[1]
TARGETS = {"first_paint_ms": 1000.0, "change_ms": 100.0}
CHROMIUM_ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=1_000_000, help="leads of the large base")
    parser.add_argument("--baseline-leads", type=int, default=1_000, help="leads of the baseline base")
    parser.add_argument("--changes", type=int, default=60, help="slider changes timed per base")
    parser.add_argument("--reloads", type=int, default=5, help="warm reloads timed per base")
    args = parser.parse_args(argv)
    if shutil.which("chromium") is None:
        print("error: no Chromium (apt-get install chromium)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="bench-planner-") as folder:
        folder = Path(folder)
        env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{folder / 'mlflow.db'}"}
        started = time.perf_counter()
        _run([sys.executable, "-m", "training", "generate", "--leads", "2500", "--months", "15", "--seed", "7",
              "--out", str(folder / "crm")], env, folder)
        _run([sys.executable, "-m", "training", "train", *[part for name in ("leads", "events", "deals")
                                                          for part in (f"--{name}", str(folder / "crm" / f"{name}.parquet"))]],
             env, folder)
        print(f"model trained in {time.perf_counter() - started:.0f} s")
        results = {}
        for leads in (args.baseline_leads, args.leads):
            scores = folder / f"scores_{leads}.parquet"
            rng = np.random.default_rng(leads)
            pd.DataFrame({"lead_id": np.arange(leads), "probability": rng.beta(0.6, 8, leads),
                          "model_version": "1"}).to_parquet(scores)
            results[leads] = _measure(scores, env, folder, changes=args.changes, reloads=args.reloads)
    _report(results, args.baseline_leads, args.leads)
    return 0


def _measure(scores: Path, env: dict, folder: Path, *, changes: int, reloads: int) -> dict:
    from playwright.sync_api import sync_playwright

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    log_path = folder / f"server_{port}.log"
    with open(log_path, "wb") as log:
        server = subprocess.Popen([sys.executable, str(PROJECT / "serve.py"), "http", "--workers", "1", "--port",
                                   str(port), "--scores", str(scores)], cwd=folder, env=env, stdout=log,
                                  stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 180
            while "worker " not in log_path.read_text():
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(log_path.read_text())
                time.sleep(0.2)
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=shutil.which("chromium"), args=CHROMIUM_ARGS)
                page = browser.new_page(viewport={"width": 1240, "height": 1300})
                loads = []
                for attempt in range(reloads + 1):
                    page.goto(f"http://127.0.0.1:{port}/planner")
                    page.wait_for_selector("td[data-cell='open-sql-leads']")
                    page.wait_for_function("performance.getEntriesByName('first-contentful-paint').length > 0")
                    loads.append(page.evaluate(
                        "() => ({paint: performance.getEntriesByName('first-contentful-paint')[0].startTime,"
                        " ready: performance.getEntriesByType('navigation')[0].domContentLoadedEventEnd})"))
                in_page = page.evaluate(_CHANGES, changes)
                page.focus("#sql-slider")
                keys = []
                for _ in range(min(changes, 30)):
                    before = time.perf_counter()
                    page.keyboard.press("ArrowLeft")
                    page.evaluate("() => document.body.offsetHeight")
                    keys.append((time.perf_counter() - before) * 1000)
                bytes_sent = page.evaluate("() => performance.getEntriesByType('navigation')[0].transferSize")
                browser.close()
        finally:
            server.terminate()
            server.wait(timeout=30)
    warm = loads[1:]
    return {"cold_paint": loads[0]["paint"], "cold_ready": loads[0]["ready"],
            "warm_paint": statistics.median(x["paint"] for x in warm),
            "warm_ready": statistics.median(x["ready"] for x in warm),
            "change_median": statistics.median(in_page), "change_max": max(in_page),
            "key_median": statistics.median(keys), "page_bytes": bytes_sent}


# One slider change after another, each until the tables, the answer and the curve are rebuilt and laid out.
_CHANGES = """(n) => {
  const slider = document.getElementById('sql-slider'), times = [];
  for (let i = 0; i < n; i++) {
    const started = performance.now();
    slider.value = 150 + (i % 40) * 5;
    slider.dispatchEvent(new Event('input'));
    document.body.offsetHeight;  // layout included
    times.push(performance.now() - started);
  }
  return times;
}"""


def _report(results: dict, small: int, large: int) -> None:
    rows = [("first paint, first load (ms)", "cold_paint"), ("page ready, first load (ms)", "cold_ready"),
            ("first paint, reload, median (ms)", "warm_paint"), ("page ready, reload, median (ms)", "warm_ready"),
            ("control change in page, median (ms)", "change_median"), ("control change in page, max (ms)", "change_max"),
            ("arrow key from Python, median (ms)", "key_median"), ("page bytes", "page_bytes")]
    print(f"\n{'':40}{small:>14,} leads{large:>14,} leads{'ratio':>10}")
    for label, key in rows:
        a, b = results[small][key], results[large][key]
        print(f"{label:40}{a:>20,.1f}{b:>20,.1f}{b / a if a else float('nan'):>10.2f}")
    big = results[large]
    print(f"\ntargets at {large:,} leads: first paint {big['cold_paint']:.0f} ms (first load) < "
          f"{TARGETS['first_paint_ms']:.0f} ms: {'met' if big['cold_paint'] < TARGETS['first_paint_ms'] else 'NOT met'}; "
          f"control change {big['change_max']:.1f} ms (max) < {TARGETS['change_ms']:.0f} ms: "
          f"{'met' if big['change_max'] < TARGETS['change_ms'] else 'NOT met'}")


def _run(command: list, env: dict, cwd: Path) -> None:
    done = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command[:4])} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")


if __name__ == "__main__":
    sys.exit(main())
