"""The link fault layer: grammar, selection, and what each action does to frames."""

from __future__ import annotations

import pytest

from lllt import wire as W
from lllt.errors import URLError
from lllt.linkfault import LinkFaults


def frame(msg: W.Message, seq: int = 1) -> bytes:
    return W.encode_message(msg, seq)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("explode", "unknown action"),
        ("drop,to=cloud", "expected device or host"),
        ("drop,type=NOPE", "unknown message type"),
        ("delay", "delay needs a time"),
        ("delay:5", "not a time"),
        ("drop,p=2", "probability"),
        ("drop,n=x", "whole number"),
        ("drop,colour=red", "unknown key"),
        ("drop:3", "takes no argument"),
        (";", "no rules"),
    ],
)
def test_bad_rules_are_refused_naming_the_problem(text: str, says: str) -> None:
    with pytest.raises(URLError, match=says):
        LinkFaults.parse(text)


def test_drop_by_type_direction_and_count() -> None:
    lf = LinkFaults.parse("drop,to=host,type=STARTED,n=1")
    started = frame(W.Started(W.StartResult.STARTED, 7, 0))
    assert lf.process(started, "device", 0.0)[0].data == started  # other direction passes
    assert lf.process(started, "host", 0.0) == []  # the first one is lost
    assert lf.process(started, "host", 0.0)[0].data == started  # n=1: the next passes
    assert lf.process(frame(W.Ack()), "host", 0.0)[0].data == frame(W.Ack())


def test_frames_split_across_writes_are_judged_whole() -> None:
    lf = LinkFaults.parse("drop,type=ABORT")
    data = frame(W.Abort(W.AbortReason.USER)) + frame(W.Heartbeat(), 2)
    out = lf.process(data[:3], "device", 0.0) + lf.process(data[3:], "device", 0.0)
    assert [v.data for v in out] == [frame(W.Heartbeat(), 2)]


def test_window_skip_dup_delay_and_corrupt() -> None:
    hb = frame(W.Heartbeat())
    lf = LinkFaults.parse("dup,at=1s,for=1s;delay:200ms,skip=1,n=1;corrupt,type=HEARTBEAT,at=5s")
    assert lf.process(hb, "device", 0.5)[0].copies == 1  # before the window, first match skipped
    v = lf.process(hb, "device", 1.5)[0]
    assert v.copies == 2 and v.delay_s == pytest.approx(0.2)
    assert lf.process(hb, "device", 2.5)[0].delay_s == 0.0  # n=1 used up, window over
    bad = lf.process(hb, "device", 6.0)[0].data
    assert bad != hb and len(bad) == len(hb) and bad.endswith(b"\x00") and bad.count(0) == 1
    assert W.FrameDecoder().feed(bad) == []  # the CRC catches it


def test_probability_is_seeded_and_cut_fires_once() -> None:
    def lost(seed: int) -> list[bool]:
        lf = LinkFaults.parse("drop,p=0.5", seed=seed)
        return [not lf.process(frame(W.Heartbeat(), i), "device", 0.0) for i in range(64)]

    assert lost(1) == lost(1) and lost(1) != lost(2)
    assert 10 < sum(lost(1)) < 54
    lf = LinkFaults.parse("cut,type=ABORT")
    assert lf.process(frame(W.Abort()), "device", 0.0) == [] and lf.cut
    lf.reset()
    assert lf.process(frame(W.Abort()), "device", 0.0) and not lf.cut


def test_every_transport_takes_the_link_option_and_reports_its_problems() -> None:
    from lllt.transport import make_transport

    t = make_transport("socket://127.0.0.1:9?link=drop,type=ABORT&link_seed=4")
    assert t.link_faults is not None and t.link_faults.seed == 4
    with pytest.raises(URLError, match="unknown action"):
        make_transport("sim://reference-cap?link=melt")
    with pytest.raises(URLError, match="link_seed"):
        make_transport("sim://reference-cap?link=drop&link_seed=x")


def test_a_cut_loses_what_follows_it_in_the_same_write() -> None:
    """Differential seed 1842: the simulator wrote a tick's events one frame per write,
    the firmware all in one; a cut at the first let the rest of the firmware's write
    through (the host saw the FAULT event and decided otherwise). What arrives must not
    depend on how the sender cut its writes into chunks."""
    events = [
        frame(W.Event(85_700, W.EventKind.INTERLOCK, 8, 1, -5500, 0), 1),
        frame(W.Event(85_700, W.EventKind.FAULT, 8, 1, 1, 0), 2),
        frame(W.Event(85_700, W.EventKind.STATE, 4, 2, 8, 0), 3),
    ]
    one_write = LinkFaults.parse("cut,to=host,type=EVENT")
    assert one_write.process(b"".join(events), "host", 1.0) == [] and one_write.cut
    per_frame = LinkFaults.parse("cut,to=host,type=EVENT")
    got = [v for f in events for v in per_frame.process(f, "host", 1.0) if not per_frame.cut]
    assert got == [] and per_frame.cut
    # frames before the cut in the same write still pass
    before = LinkFaults.parse("cut,to=host,type=EVENT")
    hb = frame(W.Ack(), 9)
    assert [v.data for v in before.process(hb + events[0] + events[1], "host", 1.0)] == [hb]
