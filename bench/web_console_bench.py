#!/usr/bin/env python3
"""What the web console costs, measured in Debian's headless chromium against a real
trainerd (tests/web_console_test.py's helpers):

- page weight: the bytes the browser received for the sign-in page and its files
  (compressed as sent, and as files);
- time to first render of the jobs list holding --jobs jobs, and of a job's page whose
  charts hold --points metric points (performance marks the page sets once the list or
  the charts are on the page, from navigation start; median of three loads);
- the daemon's cost of --browsers browsers following a running job (each the two
  streams a job's page opens: its changes and its logs): trainerd's CPU and resident
  memory over --seconds, beside the same time with nobody following.

Usage: web_console_bench.py BUILD_DIR [--jobs N] [--points N] [--browsers N] [--seconds S]
"""
import argparse
import http.client
import json
import os
import statistics
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
from web_console_test import SPEC, Trainerd, browser, wait_until  # noqa: E402

# One point per step and name: loss, grad_norm, learning_rate, epoch (logging_steps 1).
DENSE_SPEC = SPEC.replace("logging_steps: 5", "logging_steps: 1").replace("save_steps: 50", "save_steps: 1000000") \
                 .replace("eval_steps: 50", "eval_steps: 1000000").replace("hidden_sizes: [32]", "hidden_sizes: [8]")


def cancel_and_wait(daemon, job):
    daemon.api(f"/api/v1/jobs/{job}:cancel", method="POST")
    wait_until(f"{job} ended", lambda: daemon.api(f"/api/v1/jobs/{job}")[1]["state"] in
               ("CANCELLED", "SUCCEEDED", "FAILED"), timeout=120)


def process_usage(pid):
    """(CPU seconds, resident MB, threads) of process `pid`."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / ticks
    with open(f"/proc/{pid}/status") as f:
        status = dict(line.split(":", 1) for line in f if ":" in line)
    return cpu, int(status["VmRSS"].split()[0]) / 1024, int(status["Threads"])


def mark(driver, name, count):
    """startTime (ms from navigation) of the first performance mark `name` for `count` items."""
    return driver.execute_script(
        "const m = performance.getEntriesByName(arguments[0]).find(e => e.detail.count >= arguments[1]);"
        "return m ? m.startTime : null;", name, count)


def page_weight(driver, origin):
    driver.get(origin + "/")
    wait_until("the sign-in form", lambda: driver.find_elements("css selector", "#token"))
    time.sleep(0.5)
    sent, files = {}, {}
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        params = message["params"]
        if message["method"] == "Network.responseReceived" and params["response"]["url"].startswith(origin):
            files[params["requestId"]] = params["response"]["url"]
        elif message["method"] == "Network.loadingFinished":
            sent[params["requestId"]] = params["encodedDataLength"]
    total = sum(sent.get(r, 0) for r in files)
    print(f"page weight: {total / 1024:.0f} KiB sent for {len(files)} files "
          f"({', '.join(sorted(u[len(origin):] for u in files.values()))})")


def first_render(driver, origin, token, fragment, name, count):
    times = []
    for _ in range(3):
        driver.get(origin + "/")
        driver.execute_script("sessionStorage.setItem('trainerd.token', arguments[0]);", token)
        driver.get(f"{origin}/{fragment}")
        driver.refresh()
        times.append(wait_until(f"{name} for {count}", lambda: mark(driver, name, count), timeout=120, every=0.05))
    return statistics.median(times)


class Follower(threading.Thread):
    """One stream of a job's page, read to the end or until stopped."""

    def __init__(self, port, token, path):
        super().__init__(daemon=True)
        self.port, self.token, self.path, self.bytes, self.error = port, token, path, 0, None

    def run(self):
        try:
            connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
            connection.request("GET", self.path, headers={"Authorization": f"Bearer {self.token}"})
            response = connection.getresponse()
            if response.status != 200:
                self.error = f"{response.status} {response.read()[:200]}"
                return
            while True:
                chunk = response.read1(65536)
                if not chunk:
                    return
                self.bytes += len(chunk)
        except OSError as e:
            self.error = str(e)


def follow_cost(daemon, job, browsers, seconds):
    pid = daemon.process.pid
    cpu0, rss0, threads0 = process_usage(pid)
    time.sleep(seconds)
    cpu1, rss1, threads1 = process_usage(pid)
    idle = (cpu1 - cpu0) / seconds
    status, metrics = daemon.api(f"/api/v1/jobs/{job}/metrics?name=loss")
    offset = metrics["stored_points"]
    followers = []
    for _ in range(browsers):
        followers.append(Follower(daemon.http_port, daemon.admin_token,
                                  f"/api/v1/jobs/{job}/events?metrics_offset={offset}"))
        followers.append(Follower(daemon.http_port, daemon.admin_token,
                                  f"/api/v1/jobs/{job}/logs?follow=true&tail=500"))
    for f in followers:
        f.start()
    time.sleep(2)  # every stream connected and past its first page
    cpu2, rss2, threads2 = process_usage(pid)
    time.sleep(seconds)
    cpu3, rss3, threads3 = process_usage(pid)
    busy = (cpu3 - cpu2) / seconds
    errors = [f.error for f in followers if f.error]
    received = sum(f.bytes for f in followers) / 1024 / 1024
    print(f"{browsers} browsers following one training job ({len(followers)} streams, {received:.1f} MB sent, "
          f"{len(errors)} refused{': ' + errors[0] if errors else ''}):")
    print(f"  trainerd CPU {100 * busy:.1f}% vs {100 * idle:.1f}% with nobody following "
          f"(+{100 * (busy - idle):.1f} points); resident {rss3:.0f} MB vs {rss1:.0f} MB; "
          f"threads {threads3} vs {threads1}")
    return followers


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("build")
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--points", type=int, default=100000)
    parser.add_argument("--browsers", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=20)
    args = parser.parse_args()
    daemon = Trainerd(os.path.abspath(args.build), ["--cpu-slots", "1"])
    driver = browser()
    try:
        page_weight(driver, daemon.origin)
        # One job logs every step until it holds the points; it is cancelled before the
        # pages are measured, so that no training shares the two cores with the browser.
        dense = daemon.submit(daemon.admin_token, 10_000_000, "dense", spec=DENSE_SPEC)
        started = time.monotonic()
        stored = lambda: int(daemon.api(f"/api/v1/jobs/{dense}/metrics?name=loss")[1]["stored_points"])
        wait_until(f"{args.points} points", lambda: stored() >= args.points, timeout=3600, every=1)
        print(f"the job logged {stored()} points in {time.monotonic() - started:.0f} s")
        cancel_and_wait(daemon, dense)
        started = time.monotonic()
        status, metrics = daemon.api(f"/api/v1/jobs/{dense}/metrics")
        points = len(metrics["points"])
        print(f"GetMetrics over HTTP: {points} points in {1000 * (time.monotonic() - started):.0f} ms")
        charted = first_render(driver, daemon.origin, daemon.admin_token, f"#/jobs/{dense}", "charts-rendered",
                               points)
        print(f"job page with {points} metric points charted {charted:.0f} ms after navigation (median of 3)")
        # The list: the other jobs are submitted and cancelled at once (queued jobs end
        # at once), so that none runs while the page is measured.
        for k in range(args.jobs - 1):
            queued = daemon.submit(daemon.admin_token, 100, f"queued-{k}")
            daemon.api(f"/api/v1/jobs/{queued}:cancel", method="POST")
        listed = first_render(driver, daemon.origin, daemon.admin_token, "#/", "jobs-rendered", args.jobs)
        print(f"jobs list of {args.jobs} jobs on the page {listed:.0f} ms after navigation (median of 3)")
        followed = daemon.submit(daemon.admin_token, 10_000_000, "followed")
        wait_until("the followed job running", lambda: daemon.api(f"/api/v1/jobs/{followed}")[1]["state"] == "RUNNING")
        driver.get("about:blank")
        followers = follow_cost(daemon, followed, args.browsers, args.seconds)
        daemon.api(f"/api/v1/jobs/{followed}:cancel", method="POST")
        for f in followers:
            f.join(timeout=60)
        assert not any(f.is_alive() for f in followers), "every stream ends with the job"
    finally:
        driver.quit()
        daemon.stop()


if __name__ == "__main__":
    main()
