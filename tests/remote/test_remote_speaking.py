"""The server's answer is spoken sentence by sentence while it streams (``SpeaksAhead``).

Through the real Orchestrator (real wake words, segmenter, a recording sink) with the
hybrid brain: conftest's stand-in phrase brain rejects, the real remote brain asks the
scripted loopback server, which streams a long answer a word every ``EVERY_S``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

from assistant.brains.base import SpeaksAhead
from assistant.brains.hybrid import HybridBrain
from assistant.brains.remote.brain import STOPPED_NOTE
from assistant.daemon import unsaid
from assistant.inbox import Stop
from assistant.tts.base import SpeakResult
from assistant.types import BrainTurn, Reply, Utterance
from tests.remote.test_remote_escalation import Serve
from tests.support.chat_server import call_deltas, chunk, drop_after, sse, text_chunks
from tests.support.pipeline import RecordingSink, Segment, espeak16, piper16, silence
from tests.support.remote_house import House, StandInPhrase, remote, spoken
from tests.support.rig import Rig

EVERY_S = 0.04
ANSWER = ("The Eiffel Tower was finished in 1889 for the world fair. "
          "It is three hundred metres tall and was the tallest building of its day. "
          "Today millions of people visit it every year.")
FIRST = "The Eiffel Tower was finished in 1889 for the world fair."


class TimedSink(RecordingSink):
    """A recording sink that notes when each text arrived and takes ``play_s`` to "play" it."""

    def __init__(self, play_s: float = 0.0) -> None:
        super().__init__()
        self.play_s = play_s
        self.times: list[float] = []
        self.ends: list[float] = []

    def speak(self, text: str, cancel: threading.Event) -> SpeakResult:
        self.times.append(time.monotonic())
        result = super().speak(text, cancel)
        cancel.wait(self.play_s)
        self.ends.append(time.monotonic())
        return result


def command() -> bytes:
    words = espeak16("tell me about the tower")
    return silence(0.3) + espeak16("okay nabu") + silence(0.5) + words + silence(1.3)


def hybrid(url: str) -> HybridBrain:
    phrase = StandInPhrase("tell me about the eiffel tower", None)
    return HybridBrain(phrase, remote(url, total_timeout_s=10.0))


def test_the_first_sentence_is_spoken_before_the_server_finished_turn_after_turn(
    tmp_path: Path, house: House, serve: Serve
) -> None:
    server = serve(sse(text_chunks(ANSWER), every_s=EVERY_S))
    sink = TimedSink(play_s=0.5)  # the second sentence still plays when the reply is finished
    rig: Rig | None = None

    def after(runs: int) -> bool:
        return rig is not None and len(rig.log.of("run-end")) >= runs

    rig = Rig(tmp_path, [Segment(command()), Segment(command(), wait_for=lambda: after(1)),
                         Segment(command(), wait_for=lambda: after(2)), Segment(silence(0.2),
                                                                                wait_for=lambda: after(3))],
              hybrid(server.url), router=house.router, tts=sink)
    rig.run()
    assert [e.data["outcome"] for e in rig.log.of("run-end")] == ["ok", "ok", "ok"]
    assert len(server.requests) == 3
    # every turn: the sentences one by one, the first heard while the server still generated
    per_turn = 3  # two sentences said ahead, the last one with the finished reply
    assert len(sink.spoken) == 3 * per_turn
    for n in range(3):
        said = sink.spoken[n * per_turn:(n + 1) * per_turn]
        assert said[0] == FIRST and " ".join(said) == ANSWER
        assert sink.times[n * per_turn] < server.finished[n] - 10 * EVERY_S
    assert [e.data["reply"] for e in rig.log.of("run-end")] == [ANSWER] * 3
    assert all(start >= end for start, end in zip(sink.times[1:], sink.ends, strict=False))  # one at a time


def test_a_stop_mid_answer_speaks_nothing_more_and_the_next_turn_works(
    tmp_path: Path, house: House, serve: Serve
) -> None:
    server = serve(sse(text_chunks(ANSWER), every_s=EVERY_S), sse(text_chunks("Yes.")))
    sink = TimedSink()
    rig: Rig | None = None

    def stop_after_the_first_sentence() -> bool:
        if rig is None or not sink.spoken:
            return False
        rig.orch.inbox.post(Stop())
        return True

    def settled() -> bool:
        # long enough for the rest of the answer to have streamed, had the turn gone on
        return rig is not None and bool(rig.log.of("run-end")) and time.monotonic() - sink.times[0] > 1.5

    rig = Rig(tmp_path, [Segment(command()), Segment(silence(0.2), wait_for=stop_after_the_first_sentence),
                         Segment(command(), wait_for=settled),
                         Segment(silence(0.2), wait_for=lambda: len(rig.log.of("run-end")) >= 2)],
              hybrid(server.url), router=house.router, tts=sink)
    rig.run()
    assert sink.spoken == [FIRST, "Yes."]
    assert [e.data["outcome"] for e in rig.log.of("run-end")] == ["cancelled", "ok"]
    assert server.finished[0] < server.finished[1]  # the cancelled stream was hung up on, not played out


def test_the_stop_word_while_the_first_sentence_plays_drops_the_rest(
    tmp_path: Path, house: House, serve: Serve
) -> None:
    server = serve(sse(text_chunks(ANSWER), every_s=EVERY_S))
    sink = RecordingSink(hold=True)  # "plays" the first sentence until cancelled: the rest queues up
    stop_word = silence(0.3) + piper16("hey mycroft") + silence(1.2)
    rig = Rig(tmp_path, [Segment(command()), Segment(stop_word, wait_for=sink.speaking.is_set, paced=True)],
              hybrid(server.url), router=house.router, tts=sink)
    rig.run()
    assert sink.spoken == [FIRST] and sink.cancelled_at is not None
    (cancel,) = rig.log.of("cancelled")
    assert cancel.data["kind"] == "stop" and rig.log.of("run-end")[0].data["outcome"] == "cancelled"


def test_a_server_that_dies_mid_answer_ends_with_what_was_said_and_the_note(
    tmp_path: Path, house: House, serve: Serve
) -> None:
    server = serve(drop_after(text_chunks(ANSWER)[:28], every_s=EVERY_S))
    rig = Rig(tmp_path, [Segment(command()),
                         Segment(silence(0.2), wait_for=lambda: bool(rig.log.of("run-end")))],
              hybrid(server.url), router=house.router)
    rig.run()
    second = "It is three hundred metres tall and was the tallest building of its day."
    assert rig.sink.spoken == [FIRST, second, STOPPED_NOTE]
    (end,) = rig.log.of("run-end")
    assert end.data["outcome"] == "error" and end.data["reply"] == f"{FIRST} {second} {STOPPED_NOTE}"
    assert rig.earcons.played == ["wake", "error"]


def test_a_confirmation_question_is_still_the_reply_after_text_said_ahead(
    tmp_path: Path, house: House, serve: Serve
) -> None:
    preamble = [chunk({"role": "assistant", "content": ""}), chunk({"content": "Sure. "})]
    after_the_call = [chunk({"content": "Unlocking it now. "}), chunk({"content": "Done"})]
    unlock = sse([*preamble, *call_deltas("unlock_door", "{}"), *after_the_call, chunk({}, "tool_calls")])
    server = serve(unlock)
    rig = Rig(tmp_path, [Segment(command()),
                         Segment(silence(0.2), wait_for=lambda: bool(rig.log.of("confirmation-requested")))],
              hybrid(server.url), router=house.router)
    rig.run()
    question = house.router.pending_confirmation("default")
    assert question is not None and rig.sink.spoken == ["Sure.", question]
    assert rig.log.of("confirmation-requested")[0].data["question"] == question
    assert house.unlocked == [] and len(server.requests) == 1


class Chatterbox:
    """A brain that breaks the SpeaksAhead contract: it goes on saying after the cancel."""

    name = "chatterbox"

    def __init__(self) -> None:
        self.said_late = threading.Event()

    def handle(self, utterance: Utterance, router: object, cancel: threading.Event) -> BrainTurn:
        raise AssertionError("the daemon must call handle_speaking")

    def handle_speaking(self, utterance: Utterance, router: object, cancel: threading.Event,
                        say: Callable[[str], None]) -> BrainTurn:
        say("One.")
        cancel.wait(5)
        say("Two.")
        self.said_late.set()
        return BrainTurn("x", (), (), Reply("One. Two. Three."))


def test_the_daemon_speaks_nothing_a_cancelled_turn_hands_over(tmp_path: Path) -> None:
    sink = RecordingSink()
    brain = Chatterbox()
    rig: Rig | None = None

    def stop_after_one() -> bool:
        if rig is None or not sink.spoken:
            return False
        rig.orch.inbox.post(Stop())
        return True

    rig = Rig(tmp_path, [Segment(command()), Segment(silence(0.2), wait_for=stop_after_one),
                         Segment(silence(0.3), wait_for=brain.said_late.is_set, paced=True)], brain, tts=sink)
    rig.run()
    assert sink.spoken == ["One."]
    assert rig.log.of("run-end")[0].data["outcome"] == "cancelled"


def test_thoughts_and_call_syntax_are_never_said_ahead(house: House, serve: Serve) -> None:
    thought = "<|channel>thought\nThe user wants. Something odd. <channel|>Paris is big. It is old."
    server = serve(sse(text_chunks(thought)))
    said: list[str] = []
    brain = remote(server.url)
    assert isinstance(brain, SpeaksAhead)
    turn = brain.handle_transcript("paris", spoken(), house.router, threading.Event(), say=said.append)
    assert said == [] and turn.reply.text == "Paris is big. It is old."


def test_what_is_left_to_say_after_the_sentences_said_ahead() -> None:
    assert unsaid(["One.", "Two  words."], "One. Two words. Three.") == "Three."
    assert unsaid(["One.", "Two."], "One. Two.") == ""
    assert unsaid(["Sure."], "Unlock the door?") == "Unlock the door?"
    assert unsaid([], "Hello.") == "Hello."
