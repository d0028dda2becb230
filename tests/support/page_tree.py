"""What an AppTest page sent to the browser, as text to search: every string of every element (as sent, and as a
person reads it once Markdown escapes are resolved) and every dataframe's cells."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from streamlit.testing.v1 import AppTest
from streamlit.testing.v1.element_tree import Dataframe

from tests.support.markdown import plain_text


def strings(message: Any) -> Iterator[tuple[str, str]]:
    """(field name, text) of every string in a proto message and the messages inside it; a radio button's options
    count as "body" (they are Markdown, unlike a selectbox's)."""
    for field, value in message.ListFields():
        values = list(value) if field.is_repeated else [value]
        if field.type == field.TYPE_MESSAGE:
            for inner in values:
                if hasattr(inner, "ListFields"):
                    yield from strings(inner)
        elif field.type == field.TYPE_STRING:
            markdown_options = message.DESCRIPTOR.name == "Radio" and field.name == "options"
            yield from (("body" if markdown_options else field.name, text) for text in values)


def rendered(at: AppTest) -> str:
    """Everything the page sent: every element's strings (text, labels, options, chart specs), each also as read
    (an escaped secret or name is still found), and every dataframe's cells."""
    parts = []
    for node in at._tree:
        if isinstance(node, Dataframe):
            parts.append(node.value.to_csv())
        proto = getattr(node, "proto", None)
        if proto is not None:
            parts += [piece for _, text in strings(proto) for piece in (text, plain_text(text))]
    return "\n".join(parts)


def connection_mode(at: AppTest) -> Any:
    """The Connection page's "Edit X / Connect a new partner" radio (keyed per partner picked)."""
    return next(radio for radio in at.radio if (radio.key or "").startswith("connection.mode."))
