"""Splitting (core.markdown) and interim text (core.interim): exact, bounded, stable, safe."""

from __future__ import annotations

import itertools
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.interim import interim_text
from core.markdown import (
    INTERIM_DECORATION_MAX_CHARS,
    MIN_MAX_CHARS,
    Part,
    fence_closer,
    fence_reopener,
    find_open_fence,
    parts_from,
    split_text,
)

DISCORD_MAX_CHARS = 2000

WORDS = [
    "the",
    "model",
    "answer",
    "streams",
    "into",
    "Discord",
    "édition",
    "日本語",
    "🙂",
    "👨‍👩‍👧",
]
SENTENCES = [
    "This is a short sentence.",
    "Does it keep **bold text** and `inline code` intact?",
    "See [the docs](https://example.com/docs) for more!",
    "Mentions like <@123456> and <#98765> must stay whole.",
    "Unicode: café, naïve, 日本語のテキスト, 🇩🇪🇫🇷 flags and 👩🏽‍💻.",
]
CODE_LINES = ["def f(x):", "    return x * 2  # double", "", "for i in range(10):", "    print(i)"]


def _paragraph(rng: random.Random, sentences: int) -> str:
    return " ".join(rng.choice(SENTENCES) for _ in range(sentences))


def _fence(rng: random.Random, lines: int) -> str:
    marker = rng.choice(["```", "```", "~~~", "````"])
    lang = rng.choice(["python", "", "js", "bash"])
    body = "\n".join(rng.choice(CODE_LINES) for _ in range(lines))
    return f"{marker}{lang}\n{body}\n{marker}"


def realistic_answer(seed: int, blocks: int, *, newline: str = "\n") -> str:
    rng = random.Random(seed)
    out: list[str] = []
    for _ in range(blocks):
        kind = rng.choice(["para", "para", "list", "fence", "nested"])
        if kind == "para":
            out.append(_paragraph(rng, rng.randint(1, 6)))
        elif kind == "list":
            out.append("\n".join(f"- {_paragraph(rng, 1)}" for _ in range(rng.randint(2, 4))))
        elif kind == "fence":
            out.append(_fence(rng, rng.randint(2, 30)))
        else:
            code = "\n".join(f"   {line}" for line in _fence(rng, 4).split("\n"))
            out.append(f"1. Install it:\n{code}\n2. Run it.")
    return ("\n\n".join(out) + "\n").replace("\n", newline)


def long_python_answer() -> str:
    code = "".join(
        f"def step_{i}(value):\n    return value + {i}  # add {i}\n\n" for i in range(90)
    )
    assert len(code) > 2000
    intro = "Here is the full script. " * 20
    outro = "Run it with `python script.py`. " * 40
    text = f"{intro}\n\n```python\n{code}```\n\n{outro}"
    assert len(text) >= 6000
    return text


def assert_valid(text: str, max_chars: int) -> list[Part]:
    parts = split_text(text, max_chars)
    assert "".join(p.body for p in parts) == text
    assert all(p.body for p in parts)
    assert all(len(p.rendered) <= max_chars for p in parts)
    for part in parts:
        assert part.rendered == part.prefix + part.body + part.suffix
    for before, after in itertools.pairwise(parts):
        assert not (before.body.endswith("\r") and after.body.startswith("\n"))
        assert not ("\ud800" <= before.body[-1] <= "\udbff")
        assert before.suffix == "" or after.prefix != ""  # a closed fence is reopened
    return parts


def assert_stable(short: str, longer: str, max_chars: int) -> None:
    early = split_text(short, max_chars)
    final = max(len(early) - 1, 0)
    assert split_text(longer, max_chars)[:final] == early[:final]


# --------------------------------------------------------------------------- split_text


def test_empty_text_has_no_parts() -> None:
    assert split_text("", 100) == []


def test_short_text_is_one_plain_part() -> None:
    assert split_text("Hello **world**.", 100) == [Part("Hello **world**.", "", "")]


def test_too_small_limit_is_refused() -> None:
    with pytest.raises(ValueError, match="max_chars"):
        split_text("x", MIN_MAX_CHARS - 1)


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("max_chars", [64, 150, 500, DISCORD_MAX_CHARS, 3900])
def test_parts_concatenate_exactly_and_fit(seed: int, max_chars: int) -> None:
    assert_valid(realistic_answer(seed, 25), max_chars)


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("max_chars", [150, 500, DISCORD_MAX_CHARS])
def test_every_rendered_part_has_balanced_fences(seed: int, max_chars: int) -> None:
    for part in assert_valid(realistic_answer(seed, 25), max_chars):
        assert find_open_fence(part.rendered) is None, part


def test_long_python_block_is_closed_and_reopened_with_its_language() -> None:
    text = long_python_answer()
    parts = assert_valid(text, DISCORD_MAX_CHARS)
    assert len(parts) >= 4
    for part in parts:
        assert find_open_fence(part.rendered) is None
    inside = [p for p in parts if p.prefix]
    assert inside and all(p.prefix == "```python\n" for p in inside)
    assert all(p.suffix == "```" for p in parts if p.suffix)  # split at line ends in code
    assert parts[0].body.endswith("\n\n") and parts[1].body.startswith("```python\n")


def test_last_part_closes_a_fence_the_model_left_open() -> None:
    parts = assert_valid("```py\n" + "x = 1\n" * 100, 200)
    assert parts[-1].prefix == "```py\n" and parts[-1].suffix == "```"
    assert all(find_open_fence(p.rendered) is None for p in parts)


def test_closing_fence_without_final_newline_is_not_closed_twice() -> None:
    parts = assert_valid("```py\n" + "x = 1\n" * 100 + "```", 200)
    assert parts[-1].suffix == "" and parts[-1].body.endswith("```")
    assert all(find_open_fence(p.rendered) is None for p in parts)


def test_tilde_and_long_fences_close_with_their_own_marker() -> None:
    for marker in ("~~~", "````"):
        code = "".join(f"line {i} ```\n" for i in range(40))
        parts = assert_valid(f"{marker}sh\n{code}{marker}\n", 200)
        assert all(p.suffix == marker for p in parts[:-1])
        assert all(p.prefix == f"{marker}sh\n" for p in parts[1:])
        assert all(find_open_fence(p.rendered) is None for p in parts)


def test_fence_inside_a_list_item_keeps_its_indentation() -> None:
    code = "".join(f"   echo {i}\n" for i in range(40))
    parts = assert_valid(f"1. Run:\n   ```bash\n{code}   ```\n2. Done.\n", 150)
    assert all(p.suffix == "   ```" for p in parts if p.suffix)
    assert all(p.prefix == "   ```bash\n" for p in parts if p.prefix)
    assert all(find_open_fence(p.rendered) is None for p in parts)


def test_code_lines_keep_their_indentation_in_the_next_part() -> None:
    code = "".join(f"if x:\n    y = {i}\n" for i in range(40))
    parts = assert_valid(f"```python\n{code}```\n", 120)
    assert all(not p.body.endswith(" ") for p in parts)


def test_paragraph_break_beats_later_line_break() -> None:
    first = "a" * 60 + " first paragraph."
    text = f"{first}\n\nsecond paragraph line one\nline two goes on and on and on and on"
    assert split_text(text, 100)[0].body == first + "\n\n"


def test_line_break_beats_later_sentence_end() -> None:
    first = "word " * 14 + "line"
    text = f"{first}\nNext line has a sentence. And another one that runs long enough."
    assert split_text(text, 100)[0].body == first + "\n"


def test_sentence_end_beats_later_word_boundary() -> None:
    first = "word " * 12 + "done."
    text = f"{first} Then a long run of words without any end in sight at all here"
    assert split_text(text, 100)[0].body == first + " "


def test_word_boundary_and_whitespace_stays_with_earlier_part() -> None:
    parts = assert_valid("alpha beta gamma delta " * 20, 100)
    assert all(p.body.endswith(" ") for p in parts[:-1])
    assert all(not p.body[0].isspace() for p in parts)


def test_tiny_early_paragraph_yields_to_a_fuller_line_break() -> None:
    text = "Sure!\n\n" + "\n".join(f"line number {i} of the answer" for i in range(20))
    assert len(split_text(text, 200)[0].body) > 100


def test_split_before_a_fence_that_does_not_fit() -> None:
    code = "".join(f"print({i})\n" for i in range(300))
    text = "Intro words here. " * 30 + f"\n\n```python\n{code}```\n"
    parts = assert_valid(text, DISCORD_MAX_CHARS)
    assert parts[0].suffix == "" and parts[1].body.startswith("```python\n")


def test_split_after_a_fence_closes_rather_than_inside_the_next_text() -> None:
    text = "```\n" + "x = 1\n" * 20 + "```\n\n" + "More prose and more words. " * 10
    parts = assert_valid(text, 200)
    assert parts[0].body.endswith("```\n\n") and parts[0].suffix == ""


def test_single_huge_word_is_hard_cut() -> None:
    parts = assert_valid("x" * 5000, DISCORD_MAX_CHARS)
    assert [len(p.body) for p in parts] == [1988, 1988, 1024]


def test_hard_cut_keeps_emoji_sequences_and_flags_whole() -> None:
    for unit in ("👨‍👩‍👧‍👦", "👍🏽", "🇩🇪", "é", "1️⃣"):
        text = unit * 400
        for part in assert_valid(text, 100):
            assert len(part.body) % len(unit) == 0, (unit, part.body[-3:])


def test_crlf_text_is_split_at_lines_without_breaking_pairs() -> None:
    text = realistic_answer(3, 30, newline="\r\n")
    parts = assert_valid(text, 300)
    assert len(parts) > 5
    assert all(p.body.endswith("\r\n") or p.body.endswith(" ") for p in parts[:-1])
    assert all(find_open_fence(p.rendered) is None for p in parts)


def test_multibyte_text_is_counted_in_characters() -> None:
    text = "日本語のテキスト。" * 500
    parts = assert_valid(text, DISCORD_MAX_CHARS)
    assert max(len(p.rendered) for p in parts) > 1900


# --------------------------------------------------------------------------- stability


@pytest.mark.parametrize(("seed", "max_chars"), [(1, 120), (4, 200), (7, 64), (9, 300)])
def test_stable_for_every_prefix_of_a_realistic_answer(seed: int, max_chars: int) -> None:
    # Consecutive prefixes suffice: finality then carries over to every longer prefix.
    text = realistic_answer(seed, 6)
    for n in range(len(text)):
        assert_stable(text[:n], text[: n + 1], max_chars)


def test_stable_for_crlf_answer() -> None:
    text = realistic_answer(5, 5, newline="\r\n")
    for n in range(len(text)):
        assert_stable(text[:n], text[: n + 1], 150)


FRAGMENTS = st.sampled_from(
    [
        *WORDS,
        " ",
        " ",
        "  ",
        ". ",
        "! ",
        "? ",
        "\n",
        "\n",
        "\n\n",
        "\r\n",
        "\r",
        "```",
        "```python\n",
        "~~~\n",
        "````\n",
        "   ```\n",
        "> ",
        "- ",
        "1. ",
        "**",
        "`",
        "    ",
        "<@12>",
        "[a](http://x.y)",
        "x" * 70,
    ]
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    fragments=st.lists(FRAGMENTS, max_size=120),
    max_chars=st.integers(MIN_MAX_CHARS, 260),
    data=st.data(),
)
def test_stable_under_any_extension(
    fragments: list[str], max_chars: int, data: st.DataObject
) -> None:
    text = "".join(fragments)
    cut = data.draw(st.integers(0, len(text)))
    assert_valid(text[:cut], max_chars)
    assert_valid(text, max_chars)
    assert_stable(text[:cut], text, max_chars)


# --------------------------------------------------------------------------- interim_text


@pytest.mark.parametrize(
    ("tail", "shown"),
    [
        ("Hello wor", "Hello "),
        ("Hello world ", "Hello world "),
        ("Hello", ""),
        ("Ping <@12", "Ping "),
        ("Ping <@!123", "Ping "),
        ("Channel <#12", "Channel "),
        ("Emoji <:party:12", "Emoji "),
        ("Slack <!chan", "Slack "),
        ("Slack <https://x.com|the docs", "Slack "),
        ("Read [the docs](https://exa", "Read "),
        ("Read [x](http://exa", "Read "),
        ("Some **bold text", "Some **bold**"),
        ("Some **bold ", "Some **bold**"),
        ("a __b ~~c ||d e", "a __b ~~c ||d||~~__"),
        ("call `foo bar", "call `foo`"),
        ("call ``foo ` bar", "call ``foo ` ``"),
        ("nested **a *b c", "nested **a *b***"),
        ("snake_case and more", "snake_case and "),
        ("2 * 3 * 4 is", "2 * 3 * 4 "),
        ("- item *one two", "- item *one*"),
        ("dangling ** ", "dangling"),
        ("```python\nx = 1\ny", "```python\nx = 1\n```"),
        ("```python\nprint('**hi `x <@1 ')\n", "```python\nprint('**hi `x <@1 ')\n```"),
        ("~~~~\ncode here\n", "~~~~\ncode here\n~~~~"),
        ("1. Run:\n   ```sh\n   echo hi\n   ec", "1. Run:\n   ```sh\n   echo hi\n   ```"),
        ("text\n``", "text\n"),
        ("```js\ncode\n`", "```js\ncode\n```"),
        ("**done** and `x` ok ", "**done** and `x` ok "),
        ("**old\n\nnew para ", "**old\n\nnew para "),
        ("`code <@1 ", "`code <@1`"),
    ],
)
def test_interim_word_mode(tail: str, shown: str) -> None:
    assert interim_text(tail) == shown


@pytest.mark.parametrize(
    ("tail", "shown"),
    [
        ("One. Two is typ", "One."),
        ("Nothing ended yet", ""),
        ("Line one\nline tw", "Line one\n"),
        ("Is it? Yes! Mayb", "Is it? Yes!"),
        ("**Bold sentence.** Next", "**Bold sentence.**"),
        ("He said **wow.** More", "He said **wow.**"),
        ("Pi is 3.14 and more", ""),
        ("Ping <@12. ", "Ping <@12."),
        ("```py\nx = 1\ny =", "```py\nx = 1\n```"),
        ("Start **bold. more", "Start **bold.**"),
    ],
)
def test_interim_sentence_mode(tail: str, shown: str) -> None:
    assert interim_text(tail, unit="sentence") == shown


def test_interim_is_a_prefix_plus_bounded_decoration() -> None:
    text = realistic_answer(2, 30)
    rng = random.Random(0)
    for _ in range(150):
        tail = text[: rng.randrange(len(text))]
        for unit in ("word", "sentence"):
            shown = interim_text(tail, unit=unit)
            pairs = enumerate(zip(tail, shown, strict=False))
            kept = next((i for i, (a, b) in pairs if a != b), min(len(tail), len(shown)))
            assert len(shown) - kept <= INTERIM_DECORATION_MAX_CHARS
            assert find_open_fence(shown) is None


def test_interim_on_a_reopened_part_closes_its_fence() -> None:
    parts = split_text(long_python_answer(), DISCORD_MAX_CHARS)
    middle = parts[2]
    shown = interim_text(middle.prefix + middle.body[:500])
    assert shown.startswith("```python\n") and shown.endswith("\n```")


# --------------------------------------------------------------------------- find_open_fence


@pytest.mark.parametrize(
    ("text", "info"),
    [
        ("", None),
        ("plain", None),
        ("```", ""),
        ("```python\nx", "python"),
        ("```python\nx\n```", None),
        ("```python\nx\n```\n\nafter", None),
        ("~~~ js \ncode\n", "js"),
        ("````\n```\n", ""),
        ("````\n```\n````", None),
        ("~~~\n```\n", ""),
        ("   ```sh\nx\n", "sh"),
        ("    ```sh\nindented code\n", None),
        ("> ```py\n> x\n", "py"),
        ("- ```py\n  x\n  ```\n", None),
        ("inline ```code``` here", None),
        ("```py\r\nx\r\n```\r\n", None),
        ("```py\r\nx\r\n", "py"),
    ],
)
def test_find_open_fence(text: str, info: str | None) -> None:
    assert find_open_fence(text) == info


@pytest.mark.parametrize(
    ("text", "closer", "reopener"),
    [
        ("```python\nx", "\n```", "```python\n"),
        ("~~~ js \ncode\n", "\n~~~", "~~~js\n"),  # backticks would not close a ~~~ fence
        ("````\n```\n", "\n````", "````\n"),
        ("> ```py\n> x\n", "\n> ```", "> ```py\n"),
        ("```py\nx\n```\n", "", ""),
    ],
)
def test_an_open_fence_closes_and_reopens_with_its_own_marker(
    text: str, closer: str, reopener: str
) -> None:
    assert (fence_closer(text), fence_reopener(text)) == (closer, reopener)


def test_the_unseen_rest_of_a_tilde_fence_reopens_as_one() -> None:
    """The rest posted anew from inside a ~~~ block (edits kept failing) stays code, and
    the code ends where the source's block does."""
    text = "Intro.\n\n~~~sh\necho one\necho two\n~~~\n\nAfter the code."
    offset = text.index("echo two")
    (part,) = parts_from(text, offset, DISCORD_MAX_CHARS)
    assert part.rendered == "~~~sh\necho two\n~~~\n\nAfter the code."
