"""The agent's logic without a reader: what it queues for each change, and ``bind`` beside a running agent."""

from __future__ import annotations

import threading
import uuid
from pathlib import Path
from typing import Any

import pytest
from support.wait import wait_until

from gateway.card import watcher as w
from gateway.card.agent import Agent, AgentConfig, AgentConfigError, State, bind, load_config
from gateway.card.atr import CardKind, Classification
from gateway.card.spool import Delivery, Spool, _locked

MATRICULE = "279035121518989"


class FakeClient:
    """Stands for the gateway: records what it is sent and answers ``reply``."""

    def __init__(self, reply: Delivery = Delivery.DELIVERED, message: str = "") -> None:
        self.reply = reply
        self.last_message = message
        self.sent: list[dict[str, Any]] = []

    def send(self, event: dict[str, Any]) -> Delivery:
        self.sent.append(event)
        return self.reply

    def close(self) -> None:
        pass


def config(tmp_path: Path) -> AgentConfig:
    return AgentConfig("https://gateway.test:8443", "consultation-1", "dr.house@pro.gateway.test",
                       tmp_path / "a.crt", tmp_path / "a.key", tmp_path / "ca.crt", tmp_path / "data")


def agent(tmp_path: Path, client: FakeClient | None = None) -> Agent:
    return Agent(config(tmp_path), client or FakeClient())  # type: ignore[arg-type]


def queued(a: Agent) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    a.spool.flush(lambda e: events.append(e) or Delivery.DELIVERED)
    return events


VITALE = Classification(CardKind.VITALE, "Vitale 2", "atr")


def test_insertion_and_removal_become_events_naming_the_workstation_and_mailbox(tmp_path: Path):
    a = agent(tmp_path)
    a.started()
    a.handle(w.ReaderChange("Reader 0", True))
    a.handle(w.CardInserted("Reader 0", bytes.fromhex("3b751300004509ea9000"), VITALE))
    assert State(a.config.data_dir / "state.json").read()["Reader 0"]["kind"] == "vitale"
    a.handle(w.CardRemoved("Reader 0", "removed"))
    events = queued(a)
    assert [e["type"] for e in events] == ["agent_started", "inserted", "removed"]
    inserted, removed = events[1], events[2]
    assert inserted["insertion"] == removed["insertion"]
    assert (inserted["kind"], inserted["model"], inserted["atr"]) == ("vitale", "Vitale 2", "3b751300004509ea9000")
    assert {e["workstation"] for e in events} == {"consultation-1"}
    assert {e["professional"] for e in events} == {"dr.house@pro.gateway.test"}
    assert State(a.config.data_dir / "state.json").read() == {}


def test_removal_of_a_card_never_reported_queues_nothing(tmp_path: Path):
    a = agent(tmp_path)
    a.handle(w.CardRemoved("Reader 0", "reader_gone"))
    assert queued(a) == []


def test_unknown_card_is_reported_as_unknown(tmp_path: Path):
    a = agent(tmp_path)
    a.handle(w.CardInserted("Reader 0", b"\x3b\x00", Classification(CardKind.UNKNOWN, None, "unrecognised-atr")))
    [event] = queued(a)
    assert event["kind"] == "unknown" and "model" not in event


def test_a_new_run_forgets_the_cards_of_the_last_one(tmp_path: Path):
    a = agent(tmp_path)
    a.handle(w.CardInserted("Reader 0", b"\x3b\x00", VITALE))
    agent(tmp_path).started()
    assert State(a.config.data_dir / "state.json").read() == {}


def test_bind_sends_the_choice_for_the_inserted_vitale_card(tmp_path: Path):
    a = agent(tmp_path)
    a.handle(w.CardInserted("Reader 0", b"\x3b\x00", VITALE))
    client = FakeClient()
    code, message = bind(a.config, MATRICULE, actor="secretary", client=client)  # type: ignore[arg-type]
    assert code == 0 and "presence window is open" in message
    assert [e["type"] for e in client.sent] == ["inserted", "bound"]
    assert client.sent[1]["matricule"] == MATRICULE and client.sent[1]["actor"] == "secretary"


def test_bind_shows_the_gateways_refusal(tmp_path: Path):
    a = agent(tmp_path)
    a.handle(w.CardInserted("Reader 0", b"\x3b\x00", VITALE))
    queued(a)
    client = FakeClient(Delivery.REJECTED, "No identity of the repository has this matricule.")
    code, message = bind(a.config, MATRICULE, client=client)  # type: ignore[arg-type]
    assert code == 1 and "repository" in message


def test_bind_without_a_vitale_card_says_what_to_do(tmp_path: Path):
    a = agent(tmp_path)
    a.handle(w.CardInserted("Reader 0", b"\x3b\x00", Classification(CardKind.CPS, "CPS", "atr+aid")))
    code, message = bind(a.config, MATRICULE, client=FakeClient())  # type: ignore[arg-type]
    assert code == 2 and "insert the patient's card" in message


def test_bind_with_two_vitale_cards_asks_for_the_reader(tmp_path: Path):
    a = agent(tmp_path)
    a.handle(w.CardInserted("Reader 0", b"\x3b\x00", VITALE))
    a.handle(w.CardInserted("Reader 1", b"\x3b\x00", VITALE))
    code, message = bind(a.config, MATRICULE, client=FakeClient())  # type: ignore[arg-type]
    assert code == 2 and "--reader" in message
    client = FakeClient()
    assert bind(a.config, MATRICULE, reader="Reader 1", client=client)[0] == 0  # type: ignore[arg-type]
    assert client.sent[-1]["insertion"] == State(a.config.data_dir / "state.json").read()["Reader 1"]["insertion"]


def test_bind_while_the_running_agent_is_sending_waits_for_it(tmp_path: Path):
    """The agent's sender holds the queue: bind's event leaves with it, and bind reports the outcome."""
    a = agent(tmp_path)
    a.handle(w.CardInserted("Reader 0", b"\x3b\x00", VITALE))
    queued(a)
    spool = Spool(a.config.data_dir / "spool")
    result: list[tuple[int, str]] = []
    with _locked(spool.folder / ".send.lock") as held:
        assert held
        thread = threading.Thread(target=lambda: result.append(
            bind(a.config, MATRICULE, client=FakeClient(Delivery.RETRY))))  # type: ignore[arg-type]
        thread.start()
        item = wait_until(spool.oldest, 10, "bind to queue its event", interval=0.01)
        assert item.event["type"] == "bound"
        spool.done(item)  # the running agent delivered it
    thread.join(20)
    assert result and result[0][0] == 0


def test_bind_when_the_gateway_is_away_is_queued(tmp_path: Path):
    a = agent(tmp_path)
    a.handle(w.CardInserted("Reader 0", b"\x3b\x00", VITALE))
    code, message = bind(a.config, MATRICULE, client=FakeClient(Delivery.RETRY))  # type: ignore[arg-type]
    assert code == 3 and "queued" in message
    assert [e["type"] for e in queued(a)] == ["inserted", "bound"]


def test_sender_keeps_events_while_the_gateway_is_away_then_delivers_in_order(tmp_path: Path):
    client = FakeClient(Delivery.RETRY)
    a = Agent(AgentConfig(**{**config(tmp_path).__dict__, "retry_initial": 0.01, "retry_max": 0.02}),
              client)  # type: ignore[arg-type]
    stop = threading.Event()
    for n in range(3):
        a.handle(w.CardInserted(f"Reader {n}", b"\x3b\x00", VITALE))
    sender = threading.Thread(target=a.send_loop, args=(stop,))
    sender.start()
    wait_until(lambda: len(client.sent) >= 3, 10, "three attempts at the first event", interval=0.01)
    assert {e["reader"] for e in client.sent} == {"Reader 0"}, "nothing is sent past an undelivered event"
    client.reply = Delivery.DELIVERED
    wait_until(lambda: not len(a.spool), 10, "the queue emptied once the gateway came back", interval=0.01)
    stop.set()
    a._wake.set()
    sender.join(10)
    readers = [e["reader"] for e in client.sent]
    assert readers[-3:] == ["Reader 0", "Reader 1", "Reader 2"]
    assert set(readers[:-3]) == {"Reader 0"}, "retries were of the head of the queue only"


def test_configuration_file_paths_are_relative_to_it(tmp_path: Path):
    for name in ("a.crt", "a.key", "ca.crt"):
        (tmp_path / name).write_text("x")
    (tmp_path / "agent.toml").write_text(
        '[card_agent]\ngateway_url = "https://gw.test:8443"\nworkstation = "w"\nprofessional = "Dr@Pro.Test"\n'
        'certificate = "a.crt"\nprivate_key = "a.key"\ntrust_anchors = "ca.crt"\ndata_dir = "data"\n')
    loaded = load_config(tmp_path / "agent.toml")
    assert loaded.data_dir == tmp_path / "data" and loaded.professional == "dr@pro.test"


@pytest.mark.parametrize("text, key", [
    ('gateway_url = "http://gw.test"', "gateway_url"),
    ('gateway_url = "https://gw.test"\nsurprise = 1', "surprise"),
    ('gateway_url = "https://gw.test"\nworkstation = "w"\nprofessional = "p"\ncertificate = "missing.crt"',
     "certificate"),
])
def test_configuration_errors_name_the_setting(tmp_path: Path, text: str, key: str):
    (tmp_path / "agent.toml").write_text(text)
    with pytest.raises(AgentConfigError, match=key):
        load_config(tmp_path / "agent.toml")


def test_insertion_identifiers_are_uuids(tmp_path: Path):
    a = agent(tmp_path)
    a.handle(w.CardInserted("Reader 0", b"\x3b\x00", VITALE))
    [event] = queued(a)
    assert str(uuid.UUID(event["insertion"])) == event["insertion"]
