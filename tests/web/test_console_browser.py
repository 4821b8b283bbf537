"""The console in a real browser (Debian's Chromium driven by Selenium, headless; nothing is downloaded).

One gateway process (two workers sharing the console's socket) with filing and the console, one PSC
simulator, one browser for the whole module. A lab report whose birth name disagrees with the qualified
identity arrives by SMTP, waits in *À classer* with 904, a secretary logged in with password + TOTP files it to
the right patient, it appears in *Dossiers*, and the trail names her; she cannot open *Boîtes*; the admin reads
the trail; a professional logs in through Pro Santé Connect. Screenshots of each page go to
$GATEWAY_TEST_ARTIFACTS (or the test's temporary folder).
"""

from __future__ import annotations

import email.policy
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pyotp
import pytest
from support.dmp_simulator import SimulatorProcess
from support.pki import PKIFiles
from support.process import GatewayProcess, accepts, free_port
from support.store import Store

from gateway.documents.cda_body import non_xml_body
from gateway.ins_matching.record import list_reviews
from gateway.samples import samples_dir

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
#: Every test here starts gateway processes (or other programs): not in make test-fast.
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not (CHROMIUM.exists() and CHROMEDRIVER.exists()),
                                 reason="Chromium and chromium-driver are not installed (.ci/setup.d/50-chromium.sh)")]

LAB = "laboratoire@pro.gateway.test"
RESULTS = "resultats@pro.gateway.test"
PASSWORD = "mot-de-passe-du-secretariat"
SAMPLE = samples_dir() / "cda" / "BIO-CR-BIO_2024.01_TSH_1.xml"
SAMPLE_ID = "1.2.250.1.213.1.1.1.55.2024.9.1"
REPORT_ID = "1.2.250.1.999.7.1.1"  # the mismatched report's own id
#: A readable copy the lab attaches beside its CDA (the PDF a sample level-1 CDA wraps).
READABLE = non_xml_body((samples_dir() / "cda" / "DOC_NON_STRUCTURE_CDA-R2-N1.xml").read_bytes()) or b""
MARCEL = "801234534765"  # a built-in professional of the PSC simulator, and the lab report's author
BIOLOGIST = "marcel.camparini@pro.gateway.test"
PATIENT = "279035121518989@patient.gateway.test"  # the test patient, whose DMP the simulator starts closed
WAIT = 30.0


def mismatched_report() -> bytes:
    """The TSH lab report with its birth name misspelt: the INS is the qualified test patient's, a trait is not;
    a document of its own (id and setId), whose author is not one of the structure's professionals (R12)."""
    text = SAMPLE.read_text(encoding="utf-8")
    assert text.count(">PAT-TROIS<") >= 1 and text.count(f'<id root="{SAMPLE_ID}"/>') == 1
    text = text.replace(f'<id root="{SAMPLE_ID}"/>', f'<id root="{REPORT_ID}"/>')
    text = text.replace('<setId root="1.2.250.1.213.1.1.1.55.2024.9"/>', '<setId root="1.2.250.1.999.7.1"/>')
    text = text.replace(MARCEL, "899700000019")  # another lab's biologist
    return text.replace(">PAT-TROIS<", ">PAT-TROIX<").encode("utf-8")


def report_mail(cda: bytes) -> bytes:
    message = EmailMessage(policy=email.policy.SMTP)
    message["From"] = LAB
    message["To"] = RESULTS
    message["Subject"] = "XDM/1.0/DDM+Compte rendu de biologie"
    message["Message-ID"] = f"<{time.monotonic_ns()}@lab.test>"
    message.set_content("Veuillez trouver le compte rendu.")
    message.add_attachment(cda, maintype="text", subtype="xml", filename="CR-BIO.xml")
    message.add_attachment(READABLE, maintype="application", subtype="pdf", filename="CR-BIO.pdf")
    return message.as_bytes()


def dmp_section(folder: Path, pki: PKIFiles, port: int) -> str:
    """[dmp] towards the simulator, the biologist as the structure's professional (gateway/dmp_bridge)."""
    pki.pki.server("localhost").write(folder / "dmp.crt", folder / "dmp.key")
    pki.pki.software("structure-tls").write(folder / "client.crt", folder / "client.key")
    pki.pki.signing("structure-signing").write(folder / "signing.crt", folder / "signing.key")
    return f"""
[dmp]
repository_url = "https://localhost:{port}/repository"
registry_url = "https://localhost:{port}/registry"
ca_file = "{pki.ca_bundle}"
client_certificate = "{folder / 'client.crt'}"
client_key = "{folder / 'client.key'}"
signing_certificate = "{folder / 'signing.crt'}"
signing_key = "{folder / 'signing.key'}"
structure_id = "1120459876"
structure_name = "Laboratoire des charmes"
source_id = "1.2.250.1.999.42"
default_mode = "systematic"

[[dmp.professional]]
national_id = "{MARCEL}"
family = "CAMPARINI"
given = "Marcel"
mailbox = "{BIOLOGIST}"
role = "21"
specialty = "SM03"
"""


def to_the_patient(cda: bytes) -> bytes:
    message = EmailMessage(policy=email.policy.SMTP)
    message["From"], message["To"], message["Subject"] = BIOLOGIST, PATIENT, "Votre compte rendu"
    message["Message-ID"] = f"<{time.monotonic_ns()}@lgc.test>"
    message.set_content("Bonjour, voici votre compte rendu d'examens.")
    message.add_attachment(cda, maintype="text", subtype="xml", filename="CR-BIO.xml")
    return message.as_bytes()


def console_user(config: Path, *args: str, password: str | None = None) -> str:
    """``gateway console-user ...`` as an operator runs it; returns what it printed."""
    done = subprocess.run([sys.executable, "-m", "gateway.cli", "console-user", *args, "--config", str(config),
                           "--actor", "installateur"], input=(password + "\n") if password else None,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


def wait_for(probe: Any, timeout: float = WAIT) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("timed out")


class Stack:
    def __init__(self, gateway: GatewayProcess, store: Store, url: str, secrets: dict[str, str],
                 shots: Path, dmp_url: str, dmp_folder: Path) -> None:
        self.gateway, self.store, self.url, self.secrets, self.shots = gateway, store, url, secrets, shots
        self.dmp_url, self.dmp_folder = dmp_url, dmp_folder


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, pki: PKIFiles) -> Iterator[Stack]:
    folder = tmp_path_factory.mktemp("console")
    url = f"sqlite+aiosqlite:///{folder / 'gateway.sqlite3'}"
    store = Store(url)
    store.add_mailbox(LAB, "ORG")
    store.add_mailbox(RESULTS, "ORG")
    store.add_mailbox(BIOLOGIST, "PER")
    store.add_mailbox(PATIENT, "PAT")
    store.add_identity()  # the samples' test patient, qualifiée
    psc_port, web_port, dmp_port = free_port(), free_port(), free_port()
    dmp_folder = folder / "dmp"
    dmp_folder.mkdir()
    dmp_config = dmp_section(dmp_folder, pki, dmp_port)
    dmp = SimulatorProcess(dmp_folder, pki.ca_bundle, port=dmp_port, closed=(PATIENT.split("@")[0],),
                           state_file=False).start()
    psc = subprocess.Popen([sys.executable, "-m", "gateway.cli", "psc-simulator", "--listen", f"127.0.0.1:{psc_port}",
                            "--certificate", str(pki.server_cert), "--key", str(pki.server_key)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    issuer = f"https://127.0.0.1:{psc_port}/auth/realms/esante-wallet"
    extra = f"""
[documents]
filing_mailboxes = ["{RESULTS}"]

[web]
listen = "127.0.0.1:{web_port}"
session_secret = "secret-de-session-du-test-navigateur-0123456789"

[web.oidc]
issuer = "{issuer}"
client_id = "web-console"
client_secret = "web-console-dev-secret"
public_url = "https://127.0.0.1:{web_port}"
ca_file = "{pki.ca_bundle}"
subject_claim = "preferred_username"
"""
    gateway = GatewayProcess(folder / "gw", pki, url, message_size=5_000_000, extra_config=extra + dmp_config)
    try:
        wait_for(lambda: accepts(psc_port) and accepts(dmp_port))
        secrets = {}
        people = (("secretaire", "secretariat", "Sophie Secrétaire"), ("admin", "admin", "Alice Admin"))
        for name, role, label in people:
            printed = console_user(gateway.config_path, "add", name, "--role", role, "--name", label,
                                   "--password-stdin", password=PASSWORD)
            found = re.search(r"TOTP secret[^:]*: ([A-Z2-7]+)", printed)
            assert found and "otpauth://totp/" in printed
            secrets[name] = found.group(1)
        console_user(gateway.config_path, "add", "marcel", "--role", "dmp", "--name", "Marcel Camparini",
                     "--psc-id", MARCEL)
        gateway.start()
        wait_for(lambda: accepts(web_port))
        shots = Path(os.environ.get("GATEWAY_TEST_ARTIFACTS") or folder / "screenshots") / "console"
        shots.mkdir(parents=True, exist_ok=True)
        with gateway.smtp(BIOLOGIST) as client:  # deposited at once, refused: the patient's DMP is closed (R17)
            client.sendmail(BIOLOGIST, [PATIENT], to_the_patient(SAMPLE.read_bytes()))
        yield Stack(gateway, store, f"https://127.0.0.1:{web_port}", secrets, shots, f"https://localhost:{dmp_port}",
                    dmp_folder)
    finally:
        gateway.stop()
        psc.terminate()
        psc.wait(20)
        dmp.stop()
        print("\n".join(gateway.log_lines[-40:]))


@pytest.fixture(scope="module")
def browser(stack: Stack) -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     "--window-size=1400,1000", "--ignore-certificate-errors", "--lang=fr-FR"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    driver.implicitly_wait(0)
    yield driver
    driver.quit()


def until(driver: Any, condition: Any, timeout: float = WAIT) -> Any:
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(driver, timeout).until(condition)
    except TimeoutException:
        page = driver.page_source[:3000]
        raise AssertionError(f"the page at {driver.current_url} never got there:\n{page}") from None


def shot(stack: Stack, driver: Any, name: str) -> None:
    driver.save_screenshot(str(stack.shots / f"{name}.png"))


def text_of(driver: Any) -> str:
    from selenium.webdriver.common.by import By

    return str(driver.find_element(By.TAG_NAME, "body").text)


def log_in(stack: Stack, driver: Any, name: str) -> None:
    from selenium.webdriver.common.by import By

    driver.get(stack.url + "/connexion")
    driver.find_element(By.ID, "identifiant").send_keys(name)
    driver.find_element(By.ID, "mot_de_passe").send_keys(PASSWORD)
    driver.find_element(By.ID, "code").send_keys(pyotp.TOTP(stack.secrets[name]).now())
    driver.find_element(By.CSS_SELECTOR, "#connexion button[type=submit]").click()
    until(driver, lambda d: "Se déconnecter" in d.page_source)


def log_out(driver: Any) -> None:
    from selenium.webdriver.common.by import By

    driver.find_element(By.CSS_SELECTOR, "form.deconnexion button").click()
    until(driver, lambda d: d.current_url.endswith("/connexion"))


def test_local_login_with_password_and_totp(stack: Stack, browser: Any) -> None:
    browser.get(stack.url + "/a-classer")
    until(browser, lambda d: d.current_url.endswith("/connexion"))
    shot(stack, browser, "01-connexion")
    log_in(stack, browser, "secretaire")
    assert browser.current_url.endswith("/a-classer")
    assert "Sophie Secrétaire" in text_of(browser)
    shot(stack, browser, "02-a-classer-vide")


def test_r10_a_mismatched_lab_report_waits_with_904_and_the_secretary_files_it(stack: Stack, browser: Any) -> None:
    from selenium.webdriver.common.by import By

    with stack.gateway.smtp(LAB) as client:
        client.sendmail(LAB, [RESULTS], report_mail(mismatched_report()))
    review = wait_for(lambda: stack.store.run(lambda s: list_reviews(s)))[0]
    assert review.code == 904
    browser.get(stack.url + "/a-classer")
    row = browser.find_element(By.CSS_SELECTOR, "#file tbody tr")
    assert "904" in row.text and LAB in row.text and "discordants" in row.text
    shot(stack, browser, "03-a-classer")
    row.find_element(By.LINK_TEXT, review.title).click()
    until(browser, lambda d: d.find_elements(By.ID, "traits"))
    mismatch = browser.find_elements(By.CSS_SELECTOR, "#traits tr.ecart")
    assert [r.find_element(By.TAG_NAME, "th").text.split(" ")[0:3] for r in mismatch] == [["Nom", "de", "naissance"]]
    assert "PAT-TROIX" in mismatch[0].text and "PAT-TROIS" in mismatch[0].text
    assert "Thyréostimuline" in browser.find_element(By.ID, "narratif").text  # our own rendering of the body
    frame = browser.find_element(By.CSS_SELECTOR, "iframe.pdf")  # the lab's PDF, shown beside
    assert frame.get_attribute("src").endswith(f"/a-classer/{review.id}/piece/1")
    assert "CR-BIO.pdf" in browser.find_element(By.ID, "pieces").text
    shot(stack, browser, "04-document")
    choice = browser.find_element(By.CSS_SELECTOR, "#classer input[name=identite]")
    assert choice.is_enabled()  # the candidate is qualifiée
    choice.click()
    browser.find_element(By.ID, "motif-classer").send_keys("Faute de frappe du laboratoire sur le nom")
    browser.find_element(By.CSS_SELECTOR, "#classer button[type=submit]").click()
    until(browser, lambda d: "Document classé" in d.page_source)
    shot(stack, browser, "05-classe")
    assert "Aucun document" in text_of(browser)

    browser.get(stack.url + "/dossiers")
    browser.find_element(By.ID, "q").send_keys("pat-trois")
    browser.find_element(By.CSS_SELECTOR, "form[role=search] button").click()
    until(browser, lambda d: d.find_elements(By.ID, "patients"))
    shot(stack, browser, "06-dossiers")
    browser.find_element(By.LINK_TEXT, "PAT-TROIS").click()
    until(browser, lambda d: d.find_elements(By.ID, "documents"))
    documents = browser.find_element(By.ID, "documents").text
    assert review.title in documents and "console:secretaire" in documents
    assert browser.find_element(By.ID, "statut").text == "qualifiée"
    shot(stack, browser, "07-dossier")
    resolved = stack.store.events("document.review_resolved")
    assert [(e.actor, e.outcome) for e in resolved] == [("console:secretaire", "resolved")]
    assert stack.store.events("document.filed")[-1].actor == "console:secretaire"


def test_a_secretary_cannot_open_boites(stack: Stack, browser: Any) -> None:
    from selenium.webdriver.common.by import By

    assert not browser.find_elements(By.CSS_SELECTOR, "nav a[href='/boites']")
    browser.get(stack.url + "/boites")
    assert "Accès refusé" in text_of(browser)
    shot(stack, browser, "08-boites-refusees")


def test_the_admin_reads_the_trail_naming_the_secretary_and_every_page_opens(stack: Stack, browser: Any) -> None:
    from selenium.webdriver.common.by import By

    log_out(browser)
    log_in(stack, browser, "admin")
    browser.get(stack.url + "/journal")
    browser.find_element(By.ID, "acteur").send_keys("secretaire")
    browser.find_element(By.ID, "type").send_keys("document.review")
    browser.find_element(By.CSS_SELECTOR, "form[role=search] button").click()
    until(browser, lambda d: "acteur=secretaire" in d.current_url)
    rows = browser.find_elements(By.CSS_SELECTOR, "#evenements tbody tr")
    assert len(rows) == 1 and "document.review_resolved" in rows[0].text and "console:secretaire" in rows[0].text
    shot(stack, browser, "09-journal")
    for number, (path, probe) in enumerate([("/boites", RESULTS), ("/tableau-de-bord", "documents à classer"),
                                            ("/dmp", "DMP"), ("/identites", "PAT-TROIS"),
                                            ("/conversations", "Conversations"),
                                            ("/a-classer?statut=resolved", "904"),
                                            ("/reglages", "Comptes de la console")], start=10):
        browser.get(stack.url + path)
        assert probe in text_of(browser), path
        if path == "/tableau-de-bord":  # the chart is drawn by the server: bars for the report of today
            assert browser.find_elements(By.CSS_SELECTOR, "svg.graphique rect.serie-revue")
        shot(stack, browser, f"{number}-{path.strip('/').split('?')[0]}")


def test_a_professional_logs_in_through_pro_sante_connect(stack: Stack, browser: Any) -> None:
    from selenium.webdriver.common.by import By

    log_out(browser)
    browser.find_element(By.ID, "psc").click()
    button = until(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "button[value=marcel]"))[0]
    shot(stack, browser, "16-psc-simulateur")
    button.click()
    until(browser, lambda d: d.current_url.endswith("/dmp"))
    assert "Marcel Camparini" in text_of(browser)
    shot(stack, browser, "17-psc-connecte")
    logins = stack.store.events("console.login")
    assert logins[-1].detail["method"] == "psc" and logins[-1].actor == "console:marcel"


def deposits(store: Store) -> list[Any]:
    from sqlalchemy import select

    from gateway.dmp_bridge.outbox import DmpDeposit

    async def work(session: Any) -> list[Any]:
        return list((await session.execute(select(DmpDeposit).order_by(DmpDeposit.id))).scalars())
    return store.run(work)


def test_r17_a_deposit_refused_by_the_dmp_is_retried_from_the_dmp_page(stack: Stack, browser: Any,
                                                                       pki: PKIFiles) -> None:
    import json
    import ssl
    import urllib.request

    from selenium.webdriver.common.by import By

    refused = wait_for(lambda: [d for d in deposits(stack.store) if d.state == "refused"], timeout=90)[0]
    browser.get(stack.url + "/dmp?etat=refused")  # Marcel, logged in through PSC, has the dmp role
    rows = browser.find_elements(By.CSS_SELECTOR, "#depots tbody tr")
    assert len(rows) == 1 and "refusé" in rows[0].text and refused.title in rows[0].text
    shot(stack, browser, "18-dmp-refuse")
    rows[0].find_element(By.LINK_TEXT, str(refused.id)).click()
    until(browser, lambda d: d.find_elements(By.ID, "relancer"))
    assert browser.find_element(By.ID, "etat").text == "refusé"
    assert refused.result_code and refused.result_code in text_of(browser)  # the ITI-41 answer, shown
    shot(stack, browser, "19-depot-refuse")
    # The patient reopens the DMP; the secretary retries the deposit.
    context = ssl.create_default_context(cafile=str(pki.ca_bundle))
    context.load_cert_chain(stack.dmp_folder / "client.crt", stack.dmp_folder / "client.key")  # mutual TLS
    opened = urllib.request.Request(  # noqa: S310 -- a fixed https URL
        stack.dmp_url + "/admin/patients", method="POST",
        data=json.dumps({"matricule": PATIENT.split("@")[0], "state": "open"}).encode(),
        headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(opened, context=context, timeout=10) as answer:  # noqa: S310
        assert answer.status == 200
    browser.find_element(By.ID, "relancer").click()
    until(browser, lambda d: "relancé" in d.page_source)
    wait_for(lambda: [d for d in deposits(stack.store) if d.id == refused.id and d.state == "accepted"], timeout=90)
    browser.refresh()
    until(browser, lambda d: d.find_element(By.ID, "etat").text == "accepté")
    shot(stack, browser, "20-depot-accepte")
    retried = stack.store.events("dmp.deposit.retry_requested")
    assert [(e.actor, e.detail["job_id"]) for e in retried] == [("console:marcel", refused.id)]


def test_r12_r14_a_professional_confirms_authorship_of_the_filed_report_with_a_title(stack: Stack,
                                                                                     browser: Any) -> None:
    """The report names another structure's author, so the bridge did not deposit it (R12); the structure's
    biologist confirms it as his own from *DMP* with the title a manual deposit needs (R14), and the DMP takes it."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    assert not [d for d in deposits(stack.store) if d.unique_id == REPORT_ID]
    browser.get(stack.url + "/dmp")
    browser.find_element(By.ID, "document").send_keys(REPORT_ID)
    browser.find_element(By.ID, "titre").send_keys("Bilan thyroïdien (confirmé)")
    Select(browser.find_element(By.ID, "auteur")).select_by_value(MARCEL)
    shot(stack, browser, "21-dmp-confirmer")
    browser.find_element(By.CSS_SELECTOR, "#confirmer button[type=submit]").click()
    until(browser, lambda d: "mis en file pour le DMP" in d.page_source)
    job = wait_for(lambda: [d for d in deposits(stack.store) if d.unique_id == REPORT_ID and d.state == "accepted"],
                   timeout=90)[0]
    assert job.title == "Bilan thyroïdien (confirmé)"
    shot(stack, browser, "22-dmp-confirme")
