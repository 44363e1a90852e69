#!/usr/bin/env python3
"""The web console in a real browser (Debian's headless chromium through its WebDriver,
chromium-driver, from python3-selenium) against a real trainerd running real jobs.

Signs in with a token; the job appears in the list and its progress moves; its page,
reached with Tab and Enter alone, is shot light and dark (the list at a phone's width
too); its charts hold as many points as GetMetrics returns and its log view shows the
last line the worker wrote; Cancel ends the job; a second user sees only their jobs and is refused
another's; a revoked token returns to sign-in; no request leaves for another origin and
the page breaks no rule of its Content-Security-Policy (the browser's own logs). Saves a
screenshot of each page under BUILD_DIR/test-output/web-console/.

Usage: web_console_test.py SOURCE_DIR BUILD_DIR
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

FASHION = "/usr/share/datasets/fashion-mnist"
SPEC = f"""training_args: {{per_device_train_batch_size: 32, logging_steps: 5, learning_rate: 0.002,
                 max_steps: {{steps}}, save_steps: 50, eval_strategy: steps, eval_steps: 50}}
model: {{type: mlp, hidden_sizes: [32]}}
data: {{train: {{path: {FASHION}/train-images-idx3-ubyte.gz, labels_path: {FASHION}/train-labels-idx1-ubyte.gz,
        limit: 1000}}, mean: 0.286, std: 0.353, eval_split: 0.2}}
metrics: [accuracy]
"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(what, predicate, timeout=60.0, every=0.2):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(every)


class Trainerd:
    """A real trainerd on free loopback ports, with its own data root."""

    def __init__(self, build, extra_args=()):
        self.build = build
        self.root = tempfile.mkdtemp(prefix="web-console-")
        self.port, self.http_port = free_port(), free_port()
        self.log = open(os.path.join(self.root, "trainerd.log"), "w")
        self.process = subprocess.Popen(
            [f"{build}/server/trainerd", "--listen", f"127.0.0.1:{self.port}", "--metrics-port", "0",
             "--http-port", str(self.http_port), "--data-root", self.root, "--grace-period", "10", *extra_args],
            stdout=self.log, stderr=subprocess.STDOUT)
        self.origin = f"http://127.0.0.1:{self.http_port}"
        wait_until("trainerd's HTTP side", lambda: self.api("/api/v1/whoami", token="")[0] == 401, timeout=30)
        with open(os.path.join(self.root, "admin.token")) as f:
            self.admin_token = f.read().split()[0]

    def api(self, path, token=None, method="GET", body=None):
        """(HTTP status, JSON body) of an API call as `token` (default: the admin's)."""
        request = urllib.request.Request(self.origin + path, method=method,
                                         data=None if body is None else json.dumps(body).encode())
        token = self.admin_token if token is None else token
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, json.load(response)
        except urllib.error.HTTPError as e:
            return e.code, json.load(e)
        except (urllib.error.URLError, ConnectionError):
            return 0, None

    def user(self, verb, name):
        out = subprocess.run([f"{self.build}/server/trainerd", "user", verb, "--data-root", self.root, name],
                             capture_output=True, text=True, check=True).stdout
        return next((w for w in out.split() if w.startswith("trd_")), "")

    def submit(self, token, steps, name, spec=SPEC):
        path = os.path.join(self.root, f"{name}.yaml")
        with open(path, "w") as f:
            f.write(spec.replace("{steps}", str(steps)))
        env = dict(os.environ, TRAINER_SERVER=f"127.0.0.1:{self.port}", TRAINER_TOKEN=token)
        out = subprocess.run([f"{self.build}/client/trainer-cli", "submit", path, "--name", name], env=env,
                             capture_output=True, text=True, check=True).stdout
        return out.strip().split()[-1]

    def stop(self):
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()


def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for arg in ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1280,1000", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync"]:
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    return webdriver.Chrome(service=Service(shutil.which("chromedriver") or "/usr/bin/chromedriver"), options=options)


class Console:
    """The page, driven as a person would: by its form, links and buttons."""

    def __init__(self, driver, origin, shots):
        self.driver, self.origin, self.shots = driver, origin, shots
        self.requests = []  # every URL the browser asked for

    def find(self, css):
        found = self.driver.find_elements(By.CSS_SELECTOR, css)
        return found[0] if found else None

    # The page redraws what changed as events arrive: an element found a moment ago may be
    # gone, so each read looks it up again (and a wait_until polls once more).
    def text(self, css):
        try:
            element = self.find(css)
            return element.text if element else ""
        except StaleElementReferenceException:
            return ""

    def attr(self, css, name):
        try:
            element = self.find(css)
            return element.get_attribute(name) if element else None
        except StaleElementReferenceException:
            return None

    def click(self, css):
        def clicked():
            try:
                self.find(css).click()
                return True
            except (StaleElementReferenceException, AttributeError):
                return False
        wait_until(f"a click on {css}", clicked)

    def sign_in(self, token):
        self.driver.get(self.origin + "/")
        wait_until("the sign-in form", lambda: self.find("#token"))
        self.find("#token").send_keys(token)
        self.click("#signin button[type=submit]")

    def shot(self, name):
        self.driver.save_screenshot(os.path.join(self.shots, f"{name}.png"))

    def collect_network(self):
        for entry in self.driver.get_log("performance"):
            message = json.loads(entry["message"])["message"]
            if message["method"] == "Network.requestWillBeSent":
                self.requests.append(message["params"]["request"]["url"])

    def csp_violations(self):
        return [e["message"] for e in self.driver.get_log("browser")
                if "Content Security Policy" in e["message"] or "Refused to" in e["message"]]


def main(source, build):
    shots = os.path.join(build, "test-output", "web-console")
    os.makedirs(shots, exist_ok=True)
    daemon = Trainerd(build)
    driver = browser()
    try:
        run(daemon, Console(driver, daemon.origin, shots))
    finally:
        driver.quit()
        daemon.stop()
    print(f"screenshots in {shots}")


def run(daemon, page):
    bob = daemon.user("add", "bob")
    long_job = daemon.submit(daemon.admin_token, 100000, "long")
    bobs_job = daemon.submit(bob, 20, "bobs")

    # Sign in; the jobs appear, and the running one's progress moves.
    page.sign_in(daemon.admin_token)
    wait_until("the signed-in user", lambda: page.text("#whoami") == "admin (admin)")
    row = f'tr[data-job="{long_job}"]'
    wait_until("the job in the list", lambda: page.find(row))
    assert page.find(f'tr[data-job="{bobs_job}"]'), "an admin sees every job"
    progress = lambda: int(float(page.attr(f"{row} progress", "value") or 0))
    first = wait_until("progress", progress, timeout=90)
    wait_until("progress that moves", lambda: progress() > first, timeout=90)
    page.shot("jobs")
    page.driver.set_window_size(390, 844)  # a phone
    page.shot("jobs-phone")
    page.driver.set_window_size(1280, 1000)

    # The job's page, reached from the keyboard alone: Tab to its link, Enter.
    link = f"#/jobs/{long_job}"
    for _ in range(20):
        page.driver.switch_to.active_element.send_keys(Keys.TAB)
        if (page.driver.switch_to.active_element.get_attribute("href") or "").endswith(link):
            break
    assert (page.driver.switch_to.active_element.get_attribute("href") or "").endswith(link), "no link by Tab"
    page.driver.switch_to.active_element.send_keys(Keys.ENTER)
    wait_until("the job's page", lambda: page.text("#job-state") in ("RUNNING", "STARTING"))
    wait_until("points on its charts", lambda: int(page.attr("#charts", "data-points") or 0) > 0, timeout=60)
    wait_until("log lines", lambda: page.find("#logs div"), timeout=60)
    page.shot("job-running")
    page.driver.execute_cdp_cmd("Emulation.setEmulatedMedia",
                                {"features": [{"name": "prefers-color-scheme", "value": "dark"}]})
    page.shot("job-running-dark")
    page.driver.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": []})
    page.click("#cancel")
    wait_until("the cancelled job", lambda: page.text("#job-state") == "CANCELLED", timeout=60)
    status, metrics = daemon.api(f"/api/v1/jobs/{long_job}/metrics")
    assert status == 200, metrics
    expected = len(metrics["points"])
    wait_until(f"{expected} points on the charts (as GetMetrics returns)",
               lambda: page.attr("#charts", "data-points") == str(expected), timeout=30)
    names = {p["name"] for p in metrics["points"]}
    shown = {e.get_attribute("data-metric") for e in page.driver.find_elements(By.CSS_SELECTOR, "#charts figure")}
    assert names == shown, (names, shown)
    for name in ("loss", "learning_rate", "grad_norm"):
        assert name in shown, f"no {name} chart: {shown}"
    status, last = daemon.api(f"/api/v1/jobs/{long_job}/logs?tail=1")
    assert status == 200 and last["lines"], last
    last_line = last["lines"][-1]
    wait_until("the worker's last log line in the log view",
               lambda: page.attr("#logs div:last-child", "data-seq") == str(last_line["seq"]), timeout=30)
    assert last_line["text"] in page.text("#logs div:last-child")
    assert page.find("#checkpoints tr"), "its checkpoints are listed"
    assert '"max_steps"' in page.text("#spec")
    page.shot("job-cancelled")
    page.collect_network()

    # A sweep: its row in the sweeps' list, and its page with its trials by objective and
    # each one's latest decision (docs/sweeps.md).
    import yaml
    job = yaml.safe_load(SPEC.replace("{steps}", "8"))
    status, submitted = daemon.api("/api/v1/sweeps", method="POST", body={"name": "web", "spec": {
        "job": job, "n_trials": 3, "max_concurrent_trials": 2, "seed": 1,
        "search_space": [{"field": "training_args.learning_rate", "type": "log_uniform", "min": 1e-4, "max": 0.1}],
        "objective": {"metric": "eval_loss"}, "searcher": {"name": "asha", "max_length": 8, "divisor": 2,
                                                           "max_rungs": 2}}})
    assert status == 200, submitted
    sweep = submitted["sweep_id"]
    page.click("#nav-sweeps")
    wait_until("the sweep in the list", lambda: page.find(f'tr[data-sweep="{sweep}"]'))
    page.click(f'tr[data-sweep="{sweep}"] a')
    wait_until("the ended sweep", lambda: page.text("#sweep-state") == "COMPLETED", timeout=120)
    wait_until("its three trials", lambda: len(page.driver.find_elements(By.CSS_SELECTOR, "#trials tr")) == 3)
    assert "rung" in page.text("#trials tr:first-child td.decision"), page.text("#trials")
    assert "trial " in page.text("#sweep-facts"), page.text("#sweep-facts")
    page.shot("sweep")
    page.click("#nav-jobs")
    wait_until("the jobs again", lambda: page.find(row))
    page.collect_network()

    # A second user sees only their own jobs, and is refused another's.
    page.click("#signout")
    wait_until("the sign-in form", lambda: page.find("#token"))
    page.sign_in(bob)
    wait_until("bob's job", lambda: page.find(f'tr[data-job="{bobs_job}"]'))
    assert not page.find(row), "bob must not see the admin's job"
    assert page.text("#jobs-status") == "1 job", page.text("#jobs-status")
    page.driver.get(f"{daemon.origin}/#/jobs/{long_job}")
    wait_until("the refusal", lambda: "belongs to another user" in page.text("#job-error"))
    assert page.find("#cancel") is None or not page.find("#cancel").is_enabled()
    page.shot("job-refused")
    page.driver.get(f"{daemon.origin}/#/")
    wait_until("bob's list", lambda: page.find(f'tr[data-job="{bobs_job}"]'))

    # Revoked: the next refresh returns to sign-in, saying why.
    daemon.user("revoke", "bob")
    wait_until("the sign-in form after the revoke", lambda: page.find("#token"), timeout=15)
    assert "not valid" in page.text("#signin-error"), page.text("#signin-error")
    page.shot("signin-revoked")
    page.collect_network()

    foreign = [u for u in page.requests if not u.startswith(daemon.origin + "/") and not u.startswith("data:")]
    assert not foreign, f"requests to another origin: {foreign}"
    assert any(u.endswith("/chart.min.js") for u in page.requests), "the chart library comes from trainerd"
    violations = page.csp_violations()
    assert not violations, violations
    print(f"web console: {len(page.requests)} requests, all to {daemon.origin}; charts hold {expected} points")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
