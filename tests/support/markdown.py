"""What Streamlit's Markdown renderer would make of a string, without a browser: the links, images, raw HTML tags,
directives and math it would draw, and the text a person reads.

Streamlit renders Markdown (st.markdown, captions, alerts, toasts, widget labels and help, radio options, metric
labels and values) with react-markdown, remark-gfm, remark-math and remark-directive (`:red[…]`, `:material/…:`).
Escapes are resolved first; GFM then turns bare `http(s)://…`, `www.…` and e-mail addresses in the resulting text
into links, with the regular expressions below (copied from mdast-util-gfm-autolink-literal, which Streamlit's
frontend bundle carries). markdown-it-py is not installed, so constructs are found with strict patterns instead.
"""

from __future__ import annotations

import re
import string

WORD_JOINER = "\u2060"
_NEUTRAL = "\x00"  # stands for an escaped character where only the structure matters

# Constructs on the source with every backslash escape neutralised (an escaped `[` starts no link).
STRUCTURE = {
    "image or link": re.compile(r"!?\[[^\]]*\]\s*(\([^)]*\)?|\[)"),
    "link definition": re.compile(r"^\s*\[[^\]]+\]:", re.MULTILINE),
    "autolink": re.compile(r"<[a-z][a-z0-9+.-]{1,31}:[^\s<>]*>", re.IGNORECASE),
    "e-mail autolink": re.compile(r"<[^\s<>@]+@[^\s<>]+>"),
    "HTML tag": re.compile(r"<\s*/?\s*[a-z][a-z0-9-]*[\s/>]", re.IGNORECASE),
    "directive": re.compile(r":[a-z][a-z0-9_/-]*[\[:]", re.IGNORECASE),
    "math": re.compile(r"\$[^$\s][^$]*\$"),
}
# GFM autolink literals, found in text after escapes are resolved.
LITERALS = {
    "bare link": re.compile(r"(https?://|www(?=\.))([-.\w]+)([^ \t\r\n]*)", re.IGNORECASE | re.ASCII),
    "bare e-mail": re.compile(r"([-.\w+]+)@([-\w]+(?:\.[-\w]+)+)", re.ASCII),
    "Streamlit logo": re.compile(r":streamlit:"),  # replaced in text by an image
}


def _resolve(source: str) -> tuple[str, str]:
    """(structure, text): the source with each backslash escape neutralised, and the text with escapes resolved."""
    structure, text = [], []
    position = 0
    while position < len(source):
        char = source[position]
        if char == "\\" and position + 1 < len(source) and source[position + 1] in string.punctuation:
            structure.append(_NEUTRAL)
            text.append(source[position + 1])
            position += 2
        else:
            structure.append(char)
            text.append(char)
            position += 1
    return "".join(structure), "".join(text)


def _code_spans(structure: str) -> list[tuple[int, int]]:
    """Where inline code spans are (they draw their content literally); the app draws no fenced code."""
    return [found.span() for found in re.finditer(r"(`+)(?!`).+?(?<!`)\1(?!`)", structure)]


def markup(source: str) -> list[tuple[str, str]]:
    """(kind, matched text) for every link, image, HTML tag, directive or formula `source` would render."""
    structure, text = _resolve(source)  # one character each per source character or escape: positions agree
    for start, end in _code_spans(structure):
        blank = " " * (end - start)
        structure, text = (part[:start] + blank + part[end:] for part in (structure, text))
    found = [(kind, match.group()) for kind, pattern in STRUCTURE.items() for match in pattern.finditer(structure)]
    return found + [(kind, match.group()) for kind, pattern in LITERALS.items() for match in pattern.finditer(text)]


def unescaped_punctuation(source: str) -> str:
    """The ASCII punctuation characters of `source` that are not backslash-escaped: what Markdown could build on."""
    return "".join(char for char in _resolve(source)[0] if char in string.punctuation)


def plain_text(source: str) -> str:
    """The text a person reads: escapes resolved, word joiners dropped."""
    return _resolve(source)[1].replace(WORD_JOINER, "")
