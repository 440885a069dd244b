"""The MX's check pipeline: steps the listener calls, in order, on each accepted message before it is stored.

A step gets the message bytes as the previous step left them and the session facts (the
``InboundMessage`` the listener built: envelope sender and recipients, client address, HELO name,
protocol, queue id, arrival time; its ``content`` is the message as received) and returns the bytes
to store. A step that only looks (bounce linking) returns the bytes unchanged. A step decides its
own failure policy; an exception that escapes it makes the listener answer 451, so the client keeps
the message and tries again, and nothing is lost.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Sequence

from coldrelay.mta.store.message import InboundMessage

PipelineStep = Callable[[bytes, InboundMessage], Awaitable[bytes]]


async def run_pipeline(steps: Sequence[PipelineStep], message: InboundMessage) -> InboundMessage:
    """The message as the store should receive it, after every step."""
    content = message.content
    for step in steps:
        content = await step(content, message)
    return message if content is message.content else dataclasses.replace(message, content=content)
