#!/usr/bin/env python3
"""Drive the administrators' console in a real browser (Debian's chromium, through chromedriver and
Selenium) the way an administrator and an auditor would.

usage: console_test.py SCENARIO CONSOLE_URL HUB_URL SCREENSHOTS_DIR

SCENARIO is `main` (sign-in, overview with live numbers, language, resources and an XSS attempt,
pausing and resuming an adapter, sign-out, the auditor) or `expiry` (a session that ends sends the
person to sign in and back to the page wanted). Environment: MEKONG_TEST_CHROMIUM and
MEKONG_TEST_CHROMEDRIVER (the binaries); MEKONG_TEST_ADMIN and MEKONG_TEST_ADMIN_KEY (the admin
client and its key), MEKONG_TEST_ADAPTER (the adapter to pause), MEKONG_TEST_DOSSIER (the MaHoSo it publishes). Exits non-zero with the failed check on stderr; saves a
screenshot of every page it checks in SCREENSHOTS_DIR.
"""
import json
import os
import sys
import time
import urllib.error
import urllib.request

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

ADMIN = os.environ.get("MEKONG_TEST_ADMIN", "ops")
ADMIN_KEY = os.environ.get("MEKONG_TEST_ADMIN_KEY", "admin-key")
AUDITOR_KEY, PUBLISHER_KEY = "auditor-key", "q1-key"
ADAPTER = os.environ.get("MEKONG_TEST_ADAPTER", "portal-sandbox")
DOSSIER = os.environ.get("MEKONG_TEST_DOSSIER", "H29-CONSOLE-1")


def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = os.environ["MEKONG_TEST_CHROMIUM"]
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-extensions", "--no-first-run",
                 "--window-size=1280,900", "--lang=vi"):
        options.add_argument(flag)
    service = Service(executable_path=os.environ["MEKONG_TEST_CHROMEDRIVER"])
    driver = webdriver.Chrome(service=service, options=options)
    driver.set_page_load_timeout(30)
    return driver


class Check:
    def __init__(self, driver, shots):
        self.driver, self.shots = driver, shots

    def shot(self, name):
        self.driver.save_screenshot(os.path.join(self.shots, f"{name}.png"))

    def text(self, css):
        return self.driver.find_element(By.CSS_SELECTOR, css).text

    def all(self, css):
        return self.driver.find_elements(By.CSS_SELECTOR, css)

    def text_now(self, css):
        """The first element's text, or None (none yet, or it went with its page)."""
        try:
            found = self.all(css)
            return found[0].text if found else None
        except Exception:
            return None

    def wait_until(self, css, ok, what, timeout=15):
        """Waits until the element's text satisfies `ok` (a click's page may still be loading,
        or be replacing another); the last text seen."""
        deadline = time.monotonic() + timeout
        got = None
        while time.monotonic() < deadline:
            got = self.text_now(css)
            if got is not None and ok(got):
                return got
            time.sleep(0.1)
        self.true(False, f"{what}: the text was {got!r}")

    def wait_text(self, css, expected, what, timeout=15):
        self.wait_until(css, lambda t: t == expected, f"{what} (expected {expected!r})", timeout)

    def wait_contains(self, css, needle, what, timeout=15):
        self.wait_until(css, lambda t: needle in t, f"{what} (expected {needle!r} in it)", timeout)

    def wait_for(self, css, what, timeout=15):
        self.wait_until(css, lambda _: True, what, timeout)

    def equal(self, got, expected, what):
        if got != expected:
            self.shot("failed")
            sys.exit(f"console_test: {what}: got {got!r}, expected {expected!r} (at {self.driver.current_url})")

    def true(self, ok, what):
        if not ok:
            self.shot("failed")
            sys.exit(f"console_test: {what} (at {self.driver.current_url})")


def sign_in(driver, console, key):
    driver.find_element(By.ID, "key").send_keys(key)
    driver.find_element(By.ID, "sign-in").click()


def post_from_page(driver, url, fields):
    """A form POST made by the page (with its cookies), as a forged or hand-made form would be;
    the page's Content-Security-Policy stops scripts from calling fetch."""
    driver.execute_script(
        "const f = document.createElement('form'); f.method = 'post'; f.action = arguments[0];"
        "for (const [k, v] of Object.entries(arguments[1])) {"
        "  const i = document.createElement('input'); i.type = 'hidden'; i.name = k; i.value = v;"
        "  f.appendChild(i); }"
        "document.body.appendChild(f); f.submit();", url, fields)


def edit_route(driver, c, description):
    """Sets the description of the route in the editor, previews it, and checks the plan."""
    area = driver.find_element(By.ID, "yaml-text")
    text = "\n".join(l for l in area.get_attribute("value").splitlines() if not l.startswith("description:"))
    area.clear()
    area.send_keys(text + f"\ndescription: {description}\n")
    driver.find_element(By.ID, "preview").click()
    c.wait_for("#verdict", "the dry run's verdict")
    c.equal(c.text("#verdict"), "được chấp nhận", "the edit is accepted")
    c.equal(c.text(".change .outcome"), "updated", "one route updated")
    c.true(f"+ description: {description}" in c.text("pre.diff"), "the diff shows the change")
    c.true(c.all("#preview-note"), "nothing is written by the dry run")


def wait_lag(driver, c, console, row, ok, what, timeout=60):
    """Reloads the adapters page until the adapter's total lag is what `ok` wants."""
    deadline = time.monotonic() + timeout
    lag = None
    while time.monotonic() < deadline:
        driver.get(f"{console}/adapters")
        found = c.all(f"{row} td.lag .total")
        lag = int(found[0].text) if found else None
        if lag is not None and ok(lag):
            return
        time.sleep(0.5)
    c.true(False, f"{what}: the lag stayed {lag}")


def publish(hub, payload, expect=201):
    request = urllib.request.Request(
        f"{hub}/v1/records/dossier.sync", data=json.dumps(payload).encode(), method="POST",
        headers={"Authorization": f"Bearer {PUBLISHER_KEY}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            status = response.status
    except urllib.error.HTTPError as e:
        status = e.code
    assert status == expect, f"published: {status}, expected {expect}"


def main_scenario(driver, c, console, hub):
    # Not signed in: the sign-in page, in Vietnamese.
    driver.get(f"{console}/adapters")
    c.true("/console/sign-in" in driver.current_url, "sent to sign in")
    c.equal(driver.find_element(By.TAG_NAME, "html").get_attribute("lang"), "vi", "Vietnamese first")
    c.equal(c.text("h1"), "Đăng nhập", "the sign-in title")
    c.shot("sign-in")

    # A wrong key says so, and keeps the page wanted.
    sign_in(driver, console, "not-a-key")
    c.wait_contains("#sign-in-message", "Khóa không đúng", "a wrong key is named")
    c.shot("sign-in-wrong-key")
    # A publisher's key is no console key.
    sign_in(driver, console, PUBLISHER_KEY)
    c.wait_contains("#sign-in-message", "admin", "a publisher is refused")

    # The admin lands where it wanted to go.
    sign_in(driver, console, ADMIN_KEY)
    c.wait_text("#who", ADMIN, "signed in as the admin client")
    c.true(driver.current_url.endswith("/console/adapters"), "back to the page wanted")
    cookies = {k["name"]: k for k in driver.get_cookies()}
    session = cookies["mekong_console"]
    c.true(session["httpOnly"] and session["sameSite"] == "Strict", f"the session cookie: {session}")

    # The overview, with live numbers after publishing.
    driver.get(console)
    c.equal(c.text("#ready"), "Sẵn sàng", "the instance is ready")
    before = int(c.text("#accepted-total"))
    publish(hub, {"MaHoSo": DOSSIER, "LoaiDoiTuong": 1, "NgayTiepNhan": "20261202090000",
                  "SoDienThoai": "0901234567", "Email": "an.nguyen@example.vn"})
    driver.refresh()
    c.equal(int(c.text("#accepted-total")), before + 1, "the accepted count follows the hub")
    # A refused record: counted, and its reason among the top ones, by type and client.
    refused = int(c.text("#rejected-total"))
    publish(hub, {"MaHoSo": f"{DOSSIER}-bad", "LoaiDoiTuong": 9}, expect=422)
    driver.refresh()
    c.equal(int(c.text("#rejected-total")), refused + 1, "the refused count follows the hub")
    c.true("SCHEMA_VIOLATION" in c.text("#refusals") and "q1" in c.text("#refusals"),
           f"the top refusals: {c.text('#refusals')}")
    c.shot("overview")

    # English, one click away; and back.
    driver.find_element(By.ID, "lang").click()
    c.wait_text("h1", "Overview", "the English title")
    c.equal(driver.find_element(By.TAG_NAME, "html").get_attribute("lang"), "en", "English")
    c.shot("overview-en")
    driver.find_element(By.ID, "lang").click()
    c.wait_text("h1", "Tổng quan", "Vietnamese again")

    # Resources: markup in a description is text, never run.
    driver.get(f"{console}/resources?q=xss")
    description = c.text("td.description")
    c.true("<script>" in description and "onerror" in description, f"the description as text: {description!r}")
    c.equal(driver.execute_script("return typeof window.__xss"), "undefined", "no script ran")
    c.shot("resources")
    driver.find_element(By.LINK_TEXT, "dossier.xss").click()
    c.wait_for("#yaml", "the resource's page")
    c.true("<script>window.__xss=1</script>" in c.text("#yaml"), "the YAML as text")
    c.equal(driver.execute_script("return typeof window.__xss"), "undefined", "no script ran")
    c.shot("resource")

    # Test a record: refused with its violations by JSON pointer, then accepted with its copies.
    driver.get(f"{console}/test-record")
    Select(driver.find_element(By.ID, "test-type")).select_by_value("dossier.sync")
    Select(driver.find_element(By.ID, "test-client")).select_by_value("q1")
    driver.find_element(By.ID, "test-payload").send_keys('{"MaHoSo": "H1", "LoaiDoiTuong": 7}')
    driver.find_element(By.ID, "test-run").click()
    c.wait_for("#test-verdict", "the test's verdict")
    c.equal(c.text("#test-verdict"), "Sẽ bị từ chối", "an invalid record would be refused")
    c.true("/LoaiDoiTuong" in c.text("#test-violations"), "the violation's pointer")
    c.true("/NgayTiepNhan" in c.text("#test-violations"), "the missing field's pointer")
    area = driver.find_element(By.ID, "test-payload")
    area.clear()
    area.send_keys('{"MaHoSo": "H1", "LoaiDoiTuong": 1, "NgayTiepNhan": "20261202090000", '
                   '"SoDienThoai": "0901234567"}')
    driver.find_element(By.ID, "test-run").click()
    c.wait_text("#test-verdict", "Sẽ được nhận", "a valid record would be accepted")
    copies = [e.text for e in c.all("#test-copies td.topic")]
    c.equal(len(copies), 2, f"two copies: {copies}")
    c.true("matches" in c.text("#test-routes") or "khớp" in c.text("#test-routes"), "routes matched")
    c.shot("test-record")

    # Edit a route in the page: a dry run first (the plan and the diff), then the apply.
    driver.get(f"{console}/resources/Route/city")
    driver.find_element(By.ID, "edit").click()
    c.wait_for("#yaml-text", "the editor")
    edit_route(driver, c, "Tuyến về kho dữ liệu thành phố")
    c.shot("edit-preview")
    driver.find_element(By.ID, "apply").click()
    c.wait_for("#applied", "the change is applied")
    c.true("Tuyến về kho dữ liệu thành phố" in c.text("#yaml"), "the stored route has the change")
    c.true(ADMIN in c.text("#history") and "apply" in c.text("#history"), "its history names the change")

    # An edit made from an older version is refused, with the diff against the newer one: this
    # tab opens the editor, another tab changes the route meanwhile.
    driver.find_element(By.ID, "edit").click()
    c.wait_for("#yaml-text", "the editor again")
    stale = driver.current_window_handle
    driver.switch_to.new_window("tab")
    driver.get(f"{console}/resources/Route/city/edit")
    c.wait_for("#yaml-text", "a second editor")
    edit_route(driver, c, "Sửa lần hai")
    driver.find_element(By.ID, "apply").click()
    c.wait_for("#applied", "the second change is applied")
    driver.close()
    driver.switch_to.window(stale)
    driver.find_element(By.ID, "yaml-text").send_keys("# a stale edit\n")
    driver.find_element(By.ID, "preview").click()
    c.wait_for("#verdict", "the stale edit is judged")
    c.true("xung đột" in c.text("#verdict"), f"a stale edit is a conflict: {c.text('#verdict')}")
    c.true("Sửa lần hai" in c.text("pre.diff"), "the diff is against the newer version")
    c.shot("edit-stale")

    # A record type still routed to cannot be deleted, and the page says why.
    driver.get(f"{console}/resources/RecordType/dossier.sync")
    driver.find_element(By.CSS_SELECTOR, "input[name=confirm]").click()
    driver.find_element(By.ID, "delete").click()
    c.wait_for("#verdict", "the delete is judged")
    c.true("city" in c.text("#problems"), f"the routes that refer to it are named: {c.text('#problems')}")
    c.shot("delete-refused")

    # The dossier published above was refused by the target for good: a dead letter. Replay it.
    driver.get(f"{console}/adapters")
    driver.find_element(By.CSS_SELECTOR, f"#adapter-{ADAPTER} a.dead-letters").click()
    c.wait_for("#reason", "the dead letters page")
    deadline = time.monotonic() + 30
    while not c.all("#dead-letters tr.letter") and time.monotonic() < deadline:
        time.sleep(0.5)
        driver.refresh()
    c.true(c.all("#dead-letters tr.letter"), "the dead letter is listed")
    c.true("HTTP 400" in c.text("#dead-letters td.reason"), "with its reason")
    c.shot("dead-letters")
    # Filtered by time: none dead-lettered before 2000.
    driver.get(driver.current_url.split("?")[0] + "?until=2000-01-01T00:00:00Z")
    c.wait_for("#no-letters", "a time filter that keeps none")
    driver.back()
    c.wait_for("#dead-letters tr.letter", "the dead letter again")
    driver.find_element(By.CSS_SELECTOR, "#dead-letters input[name=record]").click()
    driver.find_element(By.CSS_SELECTOR, "input[name=confirm]").click()
    driver.find_element(By.ID, "replay-selected").click()
    c.wait_for("#replayed-count", "the replay is done")
    c.true(c.text("#replayed-count").endswith("1"), "one record replayed")
    c.true("đã gửi lại" in c.text("#dead-letters td.state"), "and shown as replayed")
    c.shot("dead-letters-replayed")

    # The dossier by its number: its timeline, then a copy with the personal data masked.
    deadline = time.monotonic() + 30
    events = []
    while time.monotonic() < deadline:
        driver.get(f"{console}/records?q={DOSSIER}")
        events = [e.text for e in c.all(".timeline td.event")]
        if "delivery.delivered" in events:
            break
        time.sleep(0.5)
    for wanted in ("record.accepted", "record.placed", "delivery.dead_lettered", "delivery.replayed",
                   "delivery.delivered"):
        c.true(wanted in events, f"{wanted} in the timeline: {events}")
    c.true("+07" in c.text(".timeline td"), "times in Asia/Ho_Chi_Minh")
    c.shot("record")
    # This hub runs no notary: the proof cannot be made, and the page says why.
    proof = driver.find_element(By.CSS_SELECTOR, "a.proof").get_attribute("href")
    driver.get(proof)
    c.wait_contains("#refusal", "checkpoint", "no proof without a checkpoint")
    driver.get(f"{console}/records?q={DOSSIER}")
    copies = [a.get_attribute("href") for a in c.all("a.show-copy")]
    c.equal(len(copies), 2, "a link to each copy")
    for href in copies:
        driver.get(href)
        c.wait_for("#payload", "a copy's payload")
        c.true("0901234567" not in c.text("#payload"), "personal data is masked, or redacted")
        if c.all("#redacted-here"):
            c.true("/SoDienThoai" in c.text("#redacted-here"), "the redacted fields are named")
            continue
        c.true("đã che" in c.text("#payload"), "masked fields are marked")
        c.shot("copy-masked")
        driver.find_element(By.ID, "reveal").click()
        c.wait_contains("#payload", "0901234567", "revealed to an admin")
        c.shot("copy-revealed")

    # The adapter's recent outcomes: the refusal with its reason, then the replayed delivery.
    driver.get(f"{console}/adapters")
    driver.find_element(By.CSS_SELECTOR, f"#adapter-{ADAPTER} a.outcomes").click()
    c.wait_for("#outcomes", "the adapter's recent outcomes")
    outcomes = [e.text for e in c.all("#outcomes td.event")]
    for wanted in ("delivery.delivered", "delivery.replayed", "delivery.dead_lettered"):
        c.true(wanted in outcomes, f"{wanted} among the outcomes: {outcomes}")
    c.true("HTTP 400" in c.text("#outcomes"), "with the refusal's status")
    c.shot("adapter-outcomes")

    # Pausing an adapter needs the confirmation, then it is paused on every instance.
    driver.get(f"{console}/adapters")
    row = f"#adapter-{ADAPTER}"
    c.equal(c.text(f"{row} .state"), "đang chạy", "the adapter runs")
    driver.find_element(By.CSS_SELECTOR, f"{row} button.action").click()
    c.true(driver.current_url.endswith("/console/adapters"), "not sent without the confirmation")
    driver.find_element(By.CSS_SELECTOR, f"{row} input[name=confirm]").click()
    driver.find_element(By.CSS_SELECTOR, f"{row} button.action").click()
    c.wait_for("#done", "the change is done")
    c.equal(c.text(f"{row} .state"), "tạm dừng", "the adapter is paused")
    # Records published while it is paused wait in Kafka: its lag grows. (Every instance stops its
    # engine when it sees the change, within a moment: a record published in that moment may still
    # go out.)
    time.sleep(2)
    publish(hub, {"MaHoSo": f"{DOSSIER}-2", "LoaiDoiTuong": 2, "NgayTiepNhan": "20261202100000"})
    wait_lag(driver, c, console, row, lambda n: n >= 1, "the lag grows while paused")
    c.shot("adapters-paused")
    driver.find_element(By.CSS_SELECTOR, f"{row} input[name=confirm]").click()
    driver.find_element(By.CSS_SELECTOR, f"{row} button.action").click()
    c.wait_text(f"{row} .state", "đang chạy", "the adapter runs again")
    wait_lag(driver, c, console, row, lambda n: n == 0, "and drains once resumed")

    # A forged form (no CSRF token of this session) changes nothing.
    post_from_page(driver, f"{console}/adapters/{ADAPTER}/pause", {"csrf": "forged", "confirm": "yes"})
    c.wait_for("#refusal", "a forged form is refused")
    c.true("CSRF" in c.text("#refusal"), "and says why")
    driver.get(f"{console}/adapters")
    c.wait_text(f"{row} .state", "đang chạy", "a forged form changes nothing")

    # The audit log shows what was done, by whom, linked to what it changed.
    driver.get(f"{console}/audit?kind=resource&actor={ADMIN}")
    c.wait_for("#audit", "the audit log")
    actions = [e.text for e in c.all("#audit td.event")]
    outcomes = [e.text for e in c.all("#audit td.outcome")]
    c.true(actions[:5] == ["resume", "pause", "delete", "apply", "apply"],
           f"the pause and resume, the refused delete, the route's edits, newest first: {actions}")
    c.equal(outcomes[2], "rejected", "the refused delete is audited as rejected")
    driver.find_element(By.LINK_TEXT, "Route/city").click()
    c.wait_for("#yaml", "the audit entry links to what it changed")
    c.shot("audit")
    driver.get(f"{console}/audit?kind=replay")
    c.wait_for("#audit", "the replays in the audit log")
    c.equal(c.text("#audit td.actor"), ADMIN, "the replay's actor")

    # Signing out ends the session.
    driver.find_element(By.ID, "sign-out").click()
    c.wait_for("#key", "signed out: the sign-in form")
    driver.get(f"{console}/adapters")
    c.true("/console/sign-in" in driver.current_url, "the old session no longer opens pages")

    # The auditor sees and cannot change: no buttons, and the POST itself is refused.
    sign_in(driver, console, AUDITOR_KEY)
    c.wait_text("#role", "auditor", "signed in as auditor")
    driver.get(f"{console}/adapters")
    c.true(c.all("#read-only"), "told it is read-only")
    c.equal(len(c.all("button.action")), 0, "no buttons for an auditor")
    csrf = driver.find_element(By.CSS_SELECTOR, "header form input[name=csrf]").get_attribute("value")
    post_from_page(driver, f"{console}/adapters/{ADAPTER}/pause", {"csrf": csrf, "confirm": "yes"})
    c.wait_for("#refusal", "an auditor's change is refused")
    c.shot("auditor-refused")
    driver.get(f"{console}/adapters")
    c.equal(c.text(f"#adapter-{ADAPTER} .state"), "đang chạy", "nothing changed")
    c.shot("adapters-auditor")
    driver.get(f"{console}/records?q={DOSSIER}")
    c.wait_for(".timeline", "the auditor sees the timeline")
    c.equal(len(c.all("a.show-copy")), 0, "but no payloads")


def expiry_scenario(driver, c, console, hub):
    driver.get(console)
    sign_in(driver, console, ADMIN_KEY)
    c.wait_text("#who", ADMIN, "signed in")
    time.sleep(3)  # the hub of this scenario keeps sessions 2 s
    driver.get(f"{console}/resources")
    c.true("/console/sign-in" in driver.current_url, "an ended session goes to sign-in")
    c.true(c.all("#sign-in-message"), "and says why")
    c.shot("session-expired")
    sign_in(driver, console, ADMIN_KEY)
    c.wait_for("#resources", "back to the resources")
    c.true(driver.current_url.endswith("/console/resources"), "back to the page wanted")


def deadlines_scenario(driver, c, console, hub):
    # Three dossiers late in two units, one not due yet.
    for suffix, unit, due in [("1", "Q1", "20260101080000"), ("2", "Q1", "20260102080000"),
                              ("3", "Q3", "20260103080000"), ("4", "Q3", "20991231080000")]:
        publish(hub, {"MaHoSo": f"{DOSSIER}-{suffix}", "LoaiDoiTuong": 1,
                      "NgayTiepNhan": "20251201080000", "NgayHenTra": due, "DonViXuLy": unit})
    # An auditor reads it.
    driver.get(f"{console}/deadlines")
    sign_in(driver, console, AUDITOR_KEY)
    c.wait_text("#role", "auditor", "signed in as auditor")
    deadline = time.monotonic() + 60
    while True:
        driver.get(f"{console}/deadlines")
        c.wait_for("main h1", "the late dossiers page")
        if len(c.all("#overdue tr.dossier")) == 3:
            break
        c.true(time.monotonic() < deadline, "three late dossiers within 60 s")
        time.sleep(1)
    c.equal(c.text("main h1"), "Hồ sơ trễ hạn", "the page's title, in Vietnamese")
    units = {r.find_element(By.CSS_SELECTOR, "td.name").text: r.find_element(By.CSS_SELECTOR, "td.count").text
             for r in c.all("#by-unit tr.unit")}
    c.equal(units, {"Q1": "2", "Q3": "1"}, "late dossiers counted by unit")
    keys = [e.text for e in c.all("#overdue td.key")]
    c.equal(keys, [f"{DOSSIER}-1", f"{DOSSIER}-2", f"{DOSSIER}-3"], "longest overdue first, the one not due left out")
    c.shot("deadlines")
    driver.find_element(By.LINK_TEXT, "Q3").click()
    c.wait_for("#overdue", "one unit's late dossiers")
    c.equal([e.text for e in c.all("#overdue td.key")], [f"{DOSSIER}-3"], "the unit's link shows its dossiers")
    driver.find_element(By.LINK_TEXT, f"{DOSSIER}-3").click()
    c.wait_for(".timeline", "a late dossier links to its timeline")


def main():
    if len(sys.argv) != 5:
        sys.exit(__doc__)
    scenario, console, hub, shots = sys.argv[1:5]
    os.makedirs(shots, exist_ok=True)
    driver = browser()
    try:
        c = Check(driver, shots)
        {"main": main_scenario, "expiry": expiry_scenario, "deadlines": deadlines_scenario}[scenario](driver, c, console, hub)
    finally:
        driver.quit()
    print(f"console_test: {scenario}: every check passed")


if __name__ == "__main__":
    main()
