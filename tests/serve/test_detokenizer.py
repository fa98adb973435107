"""Incremental detokenization: split characters, stop strings, safe deltas."""

from foundry.llm import build_tiny_tokenizer
from foundry.serve.detokenizer import IncrementalDetokenizer


def feed(text: str, stop: list[str]):
    tok = build_tiny_tokenizer()
    d = IncrementalDetokenizer(tok, tok.encode("prompt "), stop)
    deltas = []
    for t in tok.encode(text):
        d.add(t)
        deltas.append(d.take_delta(finished=d.stopped))
        if d.stopped:
            break
    else:
        d.flush()
        deltas.append(d.take_delta(finished=True))
    return d, deltas


def test_multibyte_characters_appear_only_when_complete():
    d, deltas = feed("aé日", [])
    assert deltas[:6] == ["a", "", "é", "", "", "日"] and d.text == "aé日"


def test_stop_string_is_cut_and_never_leaks_into_deltas():
    d, deltas = feed("hello world", ["lo w"])
    assert d.stopped and d.text == "hel" and "".join(deltas) == "hel"
    assert deltas[:4] == ["h", "e", "", "l"]  # a trailing "l" could begin "lo w": held back a step
    d, deltas = feed("hello world", ["xyz"])
    assert not d.stopped and "".join(deltas) == "hello world"


def test_held_back_prefix_is_released_at_the_end():
    d, deltas = feed("abcx", ["xy"])
    assert not d.stopped and deltas[3] == "" and "".join(deltas) == "abcx"


def test_earliest_of_several_stop_strings_wins():
    d, _ = feed("one two three", ["three", "two"])
    assert d.text == "one "
