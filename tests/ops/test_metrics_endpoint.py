"""/metrics over a real store: queue gauges read at scrape time, counters of the event trail, safe labels."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from ops.ops_support import make_config, running, sample
from sqlalchemy import insert
from support.pki import PKIFiles

from gateway.dmp_bridge import outbox
from gateway.dmp_bridge.outbox import DmpDeposit
from gateway.filing.models import FilingJob
from gateway.ops import metrics
from gateway.store import mailstore
from gateway.store.events import record
from gateway.store.models import Message, OutboundRecipient

MATRICULE = "279035121518989"


async def _fill_queues(sessions: object) -> None:
    """Two queued outbound recipients (the older 300 s old), a pending and a failed filing job, DMP jobs."""
    now = datetime.now(UTC)
    async with sessions() as s, s.begin():  # type: ignore[operator]
        mailbox_id = await mailstore.create_mailbox(s, "dr.metrics@pro.gateway.test", "PER")
        message_id = (await s.execute(insert(Message).values(
            received_at=now, sender_mailbox_id=mailbox_id, mail_from="dr.metrics@pro.gateway.test",
            rcpt_to=["x@b.example"], size=3, raw=b"x\r\n").returning(Message.id))).scalar_one()
        common = dict(message_id=message_id, sender_mailbox_id=mailbox_id, mail_from="dr.metrics@pro.gateway.test",
                      domain="b.example", attempts=0, next_attempt_at=now)
        await s.execute(insert(OutboundRecipient), [
            dict(common, recipient="a@b.example", state="queued", created_at=now - timedelta(seconds=300)),
            dict(common, recipient="b@b.example", state="queued", created_at=now - timedelta(seconds=10)),
            dict(common, recipient="c@b.example", state="sent", created_at=now - timedelta(seconds=9000)),
            dict(common, recipient="d@b.example", state="failed", created_at=now)])
        await s.execute(insert(FilingJob), [
            dict(kind="file", message_id=message_id, mailbox_id=mailbox_id, state="pending", attempts=0,
                 next_attempt_at=now, created_at=now - timedelta(seconds=60)),
            dict(kind="deposit", message_id=message_id, mailbox_id=mailbox_id, state="failed", attempts=5,
                 next_attempt_at=now, created_at=now)])
        base = dict(submission_uid="1.2.3", matricule=MATRICULE, author_id="810001234567", title="CR",
                    type_code="11488-4", visibility=[], cda=b"<x/>", size=4, attempts=0, next_attempt_at=now)
        await s.execute(insert(DmpDeposit), [
            dict(base, unique_id="1.2.3.1", state=outbox.RETRY, created_at=now - timedelta(seconds=3600)),
            dict(base, unique_id="1.2.3.2", state=outbox.ACCEPTED, created_at=now - timedelta(days=3)),
            dict(base, unique_id="1.2.3.3", state=outbox.REFUSED, created_at=now)])


async def test_queue_depth_and_oldest_age_are_read_from_the_store_at_scrape_time(
        tmp_path: Path, pki: PKIFiles, migrated_url: str) -> None:
    config = make_config(pki, migrated_url, tmp_path)
    async with running(config) as gw:
        text = await gw.metrics()
        assert sample(text, "gateway_store_up") == 1
        assert sample(text, "gateway_queue_depth", queue="outbound") == 0
        await _fill_queues(gw.sessions)
        text = await gw.metrics()
    assert sample(text, "gateway_queue_depth", queue="outbound") == 2  # "sent" and "failed" do not wait
    assert 290 <= (sample(text, "gateway_queue_oldest_seconds", queue="outbound") or 0) < 400
    assert sample(text, "gateway_queue_jobs", queue="outbound", state="failed") == 1
    assert sample(text, "gateway_queue_depth", queue="filing") == 1
    assert 50 <= (sample(text, "gateway_queue_oldest_seconds", queue="filing") or 0) < 200
    assert sample(text, "gateway_queue_jobs", queue="filing", state="failed") == 1
    assert sample(text, "gateway_queue_depth", queue="dmp") == 1  # retry waits; accepted and refused do not
    assert 3500 <= (sample(text, "gateway_queue_oldest_seconds", queue="dmp") or 0) < 3700
    assert sample(text, "gateway_queue_jobs", queue="dmp", state="refused") == 1
    assert MATRICULE not in text and "@" not in text


async def test_rule_decisions_dmp_states_and_document_codes_are_counted_from_the_event_trail(
        tmp_path: Path, pki: PKIFiles, migrated_url: str) -> None:
    config = make_config(pki, migrated_url, tmp_path)
    async with running(config) as gw:
        before = await gw.metrics()
        async with gw.sessions() as s, s.begin():
            await record(s, "patient.refused", "refused", rule="R1", matricule=MATRICULE)
            await record(s, "patient.refused", "refused", rule="R1")
            await record(s, "dmp.deposit.accepted", outbox.ACCEPTED, rule="R18")
            await record(s, "document.review_opened", "904", rule="R10", address="x@pro.gateway.test")
            await record(s, "document.filed", "filed", rule="R10")
        after = await gw.metrics()

    def grew(name: str, **labels: str) -> float:
        return (sample(after, name, **labels) or 0) - (sample(before, name, **labels) or 0)

    assert grew("gateway_rule_decisions_total", rule="R1", outcome="refused") == 2
    assert grew("gateway_rule_decisions_total", rule="R10", outcome="904") == 1
    assert grew("gateway_dmp_deposits_total", state="accepted") == 1
    assert grew("gateway_documents_total", code="904") == 1
    assert grew("gateway_documents_total", code="filed") == 1
    assert MATRICULE not in after and "x@pro" not in after


async def test_listener_helpers_fill_smtp_imap_and_login_series_with_latency_histograms(
        tmp_path: Path, pki: PKIFiles, migrated_sqlite: str) -> None:
    config = make_config(pki, migrated_sqlite, tmp_path)
    async with running(config) as gw:
        before = await gw.metrics()
        metrics.smtp_transaction("submission", 250, 0.03)
        metrics.smtp_transaction("submissions", 550)
        metrics.smtp_transaction("relay", None)
        metrics.login("smtp", "plain", "ok")
        metrics.login("imap", "LOGIN", "invalid")
        metrics.imap_session("imaps", +1)
        metrics.imap_command("uid  fetch", "ok", 0.002)
        metrics.imap_command("SELECT", "NO", 0.01)
        after = await gw.metrics()

    def grew(name: str, **labels: str) -> float:
        return (sample(after, name, **labels) or 0) - (sample(before, name, **labels) or 0)

    assert grew("gateway_smtp_transactions_total", listener="submission", outcome="accepted") == 1
    assert grew("gateway_smtp_transactions_total", listener="submissions", outcome="refused") == 1
    assert grew("gateway_smtp_transactions_total", listener="relay", outcome="aborted") == 1
    assert grew("gateway_smtp_data_seconds_count", listener="submission") == 1
    assert grew("gateway_smtp_data_seconds_bucket", listener="submission", le="0.05") == 1
    assert grew("gateway_logins_total", protocol="smtp", mechanism="PLAIN", outcome="ok") == 1
    assert grew("gateway_logins_total", protocol="imap", mechanism="LOGIN", outcome="invalid") == 1
    assert grew("gateway_imap_sessions", listener="imaps") == 1
    assert grew("gateway_imap_commands_total", command="UID FETCH", status="OK") == 1
    assert grew("gateway_imap_command_seconds_count", command="SELECT") == 1
    assert sample(after, "process_cpu_seconds_total") is not None  # one process: its own figures too
    metrics.imap_session("imaps", -1)


def test_labels_never_carry_an_ins_an_address_or_free_text() -> None:
    assert metrics.outcome_label(MATRICULE) == "other"
    assert metrics.outcome_label("2790351215189") == "other"
    assert metrics.outcome_label("dr.martin@pro.gateway.test") == "other"
    assert metrics.outcome_label("refused because of MARTIN Jean") == "other"
    assert metrics.outcome_label("qualifiée") == "qualifiée"
    assert metrics.outcome_label("902") == "902"
    assert metrics.pick("XYZZY", metrics.IMAP_COMMAND_NAMES, upper=True) == "other"
    assert metrics.pick(MATRICULE, metrics.LISTENERS) == "other"
    assert metrics.pick("r7", metrics.RULES, upper=True) == "R7"
    assert metrics.pick("R19", metrics.RULES, upper=True) == "other"


def test_dmp_state_vocabulary_is_the_outbox_states() -> None:
    assert metrics.DMP_STATES == outbox.STATES


async def test_store_down_gives_store_up_zero_and_the_scrape_still_answers(tmp_path: Path, pki: PKIFiles) -> None:
    config = make_config(pki, "postgresql+asyncpg://gateway@127.0.0.1:9/none", tmp_path)
    async with running(config) as gw:
        text = await gw.metrics()
    assert sample(text, "gateway_store_up") == 0
    assert sample(text, "gateway_queue_depth", queue="outbound") is None


class _ObservedHandler:
    """An aiosmtpd handler decorated as the gateway's are: 250 for one recipient, 554 for another."""

    listener = "submissions"

    @metrics.observe_data()
    async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
        if "refuse@" in envelope.rcpt_tos[0]:  # type: ignore[attr-defined]
            return "554 5.7.1 Refused"
        return "250 2.0.0 Accepted"


def test_observe_data_counts_real_smtp_transactions_by_reply_and_times_the_accepted_ones() -> None:
    import smtplib

    from aiosmtpd.controller import Controller
    from ops.ops_support import free_port

    def value(name: str, **labels: str) -> float:
        return metrics.REGISTRY.get_sample_value(name, labels) or 0.0

    accepted = dict(listener="submissions", outcome="accepted")
    refused = dict(listener="submissions", outcome="refused")
    before = (value("gateway_smtp_transactions_total", **accepted), value("gateway_smtp_transactions_total", **refused),
              value("gateway_smtp_data_seconds_count", listener="submissions"))
    controller = Controller(_ObservedHandler(), hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        with smtplib.SMTP("127.0.0.1", controller.port, timeout=30) as client:
            client.sendmail("a@pro.gateway.test", ["b@pro.gateway.test"], b"Subject: x\r\n\r\nx\r\n")
            try:
                client.sendmail("a@pro.gateway.test", ["refuse@pro.gateway.test"], b"Subject: x\r\n\r\nx\r\n")
            except smtplib.SMTPDataError as error:
                assert error.smtp_code == 554
    finally:
        controller.stop()
    after = (value("gateway_smtp_transactions_total", **accepted), value("gateway_smtp_transactions_total", **refused),
             value("gateway_smtp_data_seconds_count", listener="submissions"))
    assert [a - b for a, b in zip(after, before, strict=True)] == [1, 1, 1]
