"""THREAD=ORDEREDSUBJECT and THREAD=REFERENCES (RFC 5256 4) over the thread keys of ``message_anatomy``.

Both algorithms, and the rendering of the answer, walk the messages with loops and explicit stacks: a client
(or a sender crafting References) can make chains as long as the folder, never a deep recursion.

REFERENCES follows RFC 5256 4 steps 1-6 with one simplification in step 5 (subject grouping): the store keeps
the base subject only, not whether the subject was a reply, so two roots with the same base subject are always
gathered under a new dummy parent rather than one becoming the other's child.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.imap.proto.search import SearchKey
from gateway.imap.view import anatomy_link
from gateway.imap.view.errors import NotAllowed
from gateway.imap.view.rows import spans_of, uid_condition
from gateway.imap.view.search import search
from gateway.imap.view.sort import _normal
from gateway.imap.view.store import chunks
from gateway.store.anatomy import MessageAnatomy
from gateway.store.models import Delivery

if TYPE_CHECKING:
    from gateway.imap.view.selected import SelectedView

ALGORITHMS = ("ORDEREDSUBJECT", "REFERENCES")
#: Most references of one message taken into account (the header is bounded anyway).
MAX_REFERENCES = 100


@dataclass(frozen=True)
class ThreadMessage:
    uid: int
    message_id: str | None
    references: tuple[str, ...]
    subject: str
    date: Any


@dataclass(eq=False)
class Node:
    """A message of a thread (``uid``) or a dummy parent (``uid`` None), with its children in order."""

    uid: int | None
    children: list[Node] = field(default_factory=list)
    parent: Node | None = None
    message: ThreadMessage | None = None


def _date_key(node: Node) -> tuple[Any, int]:
    """A node's date, a dummy taking its first child's (children are sorted first), UID as tie-breaker."""
    current = node
    while current.message is None and current.children:
        current = current.children[0]
    if current.message is None:
        return ("", 0)
    return (current.message.date, current.message.uid)


def _sort_children_bottom_up(roots: list[Node]) -> None:
    order: list[Node] = []
    stack = list(roots)
    while stack:
        node = stack.pop()
        order.append(node)
        stack.extend(node.children)
    for node in reversed(order):  # children before parents, so a dummy's first child is already known
        node.children.sort(key=_date_key)
    roots.sort(key=_date_key)


def ordered_subject(messages: Sequence[ThreadMessage]) -> list[Node]:
    """ORDEREDSUBJECT: by base subject, then date; the first of each subject is the parent of the others."""
    threads: dict[str, Node] = {}
    for message in sorted(messages, key=lambda m: (m.subject, m.date, m.uid)):
        node = Node(message.uid, message=message)
        root = threads.get(message.subject)
        if root is None:
            threads[message.subject] = node
        else:
            node.parent = root
            root.children.append(node)
    roots = list(threads.values())
    roots.sort(key=_date_key)
    return roots


def _is_ancestor(candidate: Node, node: Node) -> bool:
    current: Node | None = node
    while current is not None:
        if current is candidate:
            return True
        current = current.parent
    return False


def _link(parent: Node, child: Node) -> None:
    if child.parent is not None:
        child.parent.children.remove(child)
    child.parent = parent
    parent.children.append(child)


def references(messages: Sequence[ThreadMessage]) -> list[Node]:
    """REFERENCES (RFC 5256 4)."""
    table: dict[str, Node] = {}
    for message in sorted(messages, key=lambda m: m.uid):
        # Step 1A: a container per message-id; a duplicate or missing id gets a unique one of its own.
        key = message.message_id
        node = table.get(key) if key else None
        if node is None or node.message is not None:
            key = key if key and key not in table else f"\x00{message.uid}"
            node = Node(None)
            table[key] = node
        node.uid, node.message = message.uid, message
        # Step 1A/1B: chain the references, never making a loop nor changing existing links.
        previous: Node | None = None
        for ref in message.references[-MAX_REFERENCES:]:
            container = table.get(ref)
            if container is None:
                container = table[ref] = Node(None)
            if (previous is not None and container.parent is None and container is not previous
                    and not _is_ancestor(container, previous)):
                _link(previous, container)
            previous = container
        # Step 1C: the message's parent is its last reference (or none), replacing any earlier link.
        if previous is not None and previous is not node and not _is_ancestor(node, previous):
            _link(previous, node)
        elif previous is None and node.parent is not None:
            node.parent.children.remove(node)
            node.parent = None
    roots = [node for node in table.values() if node.parent is None]
    # Step 4: prune dummies, bottom up.
    order: list[Node] = []
    stack = list(roots)
    while stack:
        node = stack.pop()
        order.append(node)
        stack.extend(node.children)
    for node in reversed(order):
        if node.message is not None:
            continue
        parent = node.parent
        if not node.children:
            if parent is not None:
                parent.children.remove(node)
            else:
                roots.remove(node)
        elif parent is not None or len(node.children) == 1:
            kids = list(node.children)
            node.children.clear()
            if parent is not None:
                at = parent.children.index(node)
                parent.children[at:at + 1] = kids
                for kid in kids:
                    kid.parent = parent
            else:
                roots[roots.index(node):roots.index(node) + 1] = kids
                for kid in kids:
                    kid.parent = None
    # Step 5: gather roots of one base subject.
    _sort_children_bottom_up(roots)
    by_subject: dict[str, Node] = {}
    merged: list[Node] = []
    for root in roots:
        subject = _subject_of(root)
        if not subject:
            merged.append(root)
            continue
        first = by_subject.get(subject)
        if first is None:
            by_subject[subject] = root
            merged.append(root)
            continue
        if first.message is not None:  # make a dummy hold both
            dummy = Node(None)
            merged[merged.index(first)] = dummy
            _link(dummy, first)
            by_subject[subject] = first = dummy
        if root.message is None:
            for kid in list(root.children):
                _link(first, kid)
        else:
            _link(first, root)
    _sort_children_bottom_up(merged)
    return merged


def _subject_of(node: Node) -> str:
    if node.message is not None:
        return node.message.subject
    return node.children[0].message.subject if node.children and node.children[0].message else ""


def render(roots: Sequence[Node], number: Callable[[int], int] = lambda uid: uid) -> str:
    """The THREAD response data (RFC 5256 4): ``(2)(3 6 (4 23)(44 7 96))``, built with an explicit stack."""
    out: list[str] = []
    stack: list[Node | str] = []
    for root in reversed(roots):
        stack.extend((")", root, "("))
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            out.append(item)
            continue
        if item.uid is not None:
            out.append(str(number(item.uid)))
        if len(item.children) == 1:
            if item.uid is not None:
                out.append(" ")
            stack.append(item.children[0])
        elif item.children:
            if item.uid is not None:
                out.append(" ")
            for child in reversed(item.children):
                stack.extend((")", child, "("))
    return "".join(out)


async def thread_messages(session: AsyncSession, folder_id: int, uids: Sequence[int]) -> list[ThreadMessage]:
    columns = (Delivery.uid, MessageAnatomy.thread_message_id, MessageAnatomy.thread_references,
               MessageAnatomy.sort_subject, func.coalesce(MessageAnatomy.sent_at, Delivery.internal_date))
    source: Any = Delivery.__table__.outerjoin(anatomy_link.anatomy_table,
                                               MessageAnatomy.message_id == Delivery.message_id)
    wanted = set(uids)
    out: list[ThreadMessage] = []
    for part in chunks(spans_of(uids)):
        for uid, message_id, refs, subject, date in await session.execute(
                select(*columns).select_from(source).where(Delivery.folder_id == folder_id, uid_condition(part))):
            if uid in wanted:
                date = _normal(date)
                out.append(ThreadMessage(int(uid), message_id or None, tuple((refs or "").split()), subject or "",
                                         date if isinstance(date, datetime) else str(date)))
    return out


async def thread(view: SelectedView, algorithm: str, key: SearchKey,
                 saved: Sequence[int] | None = None) -> list[Node]:
    """THREAD: the threads of the messages ``key`` matches (nodes carry UIDs; render with sequence numbers
    for THREAD, UIDs for UID THREAD)."""
    algorithm = algorithm.upper()
    if algorithm not in ALGORITHMS:
        raise NotAllowed(f"Unknown threading algorithm {algorithm}.")
    found = (await search(view, key, saved)).uids
    if not found:
        return []
    folder_id = view.folder_id

    async def work(session: AsyncSession) -> list[ThreadMessage]:
        return await thread_messages(session, folder_id, found)

    messages = await view.store.read(work, "threading")
    return ordered_subject(messages) if algorithm == "ORDEREDSUBJECT" else references(messages)


async def thread_response(view: SelectedView, algorithm: str, key: SearchKey, *, uid: bool,
                          saved: Sequence[int] | None = None) -> str:
    """The thread list of ``* THREAD``: UIDs for UID THREAD, sequence numbers otherwise (RFC 5256 4)."""
    roots = await thread(view, algorithm, key, saved)

    def number(message_uid: int) -> int:
        return message_uid if uid else (view.seq_of(message_uid) or 0)

    return render(roots, number)
