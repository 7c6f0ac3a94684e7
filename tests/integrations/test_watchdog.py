"""The deadline watchdog: it shuts a call's socket at the deadline, and forgets finished calls."""

from __future__ import annotations

import socket
import time

from integrations.watchdog import PRUNE_AT, Watchdog


def test_a_socket_still_in_use_at_the_deadline_is_shut_and_the_watch_says_so() -> None:
    # Given a connected socket pair and a watch 0.2 s from its deadline
    ours, theirs = socket.socketpair()
    watch = Watchdog().watch(time.monotonic() + 0.2)
    watch.attach(ours)
    ours.settimeout(5)
    began = time.monotonic()
    # When we block reading from a peer that never writes
    data = ours.recv(10)
    # Then the read ends at the deadline (EOF: the socket was shut) and the watch is cut
    assert data == b"" and watch.cut
    assert time.monotonic() - began < 1
    ours.close()
    theirs.close()


def test_a_finished_call_is_never_touched_and_finished_watches_are_pruned() -> None:
    # Given a watchdog and a call that finished before its deadline
    dog = Watchdog()
    ours, theirs = socket.socketpair()
    first = dog.watch(time.monotonic() + 0.1)
    first.attach(ours)
    first.finish()
    # When many more short calls finish with long deadlines, and the first deadline passes
    for _ in range(3 * PRUNE_AT):
        dog.watch(time.monotonic() + 3600).finish()
    time.sleep(0.3)
    # Then the finished socket still works, and the heap holds only what it must
    theirs.sendall(b"ok")
    assert ours.recv(2) == b"ok" and not first.cut
    assert len(dog._heap) <= 2 * PRUNE_AT + 1
    ours.close()
    theirs.close()
