"""Chat history checks and fitting a conversation into a fixed context window (CASES C24).

Pure functions over message lists and a token-counting callable, so the policy is testable
without a model: drop the oldest non-system turns (reported, never silent), keep the system
prompt and the newest user message, and cap the reply budget to the room left instead of
failing.
"""

from __future__ import annotations

from typing import Callable

from engine.encode import _check_messages as _check_shape  # noqa: PLC2701 (shared rule)
from engine.errors import DataError

TokenCounter = Callable[[list[dict]], int]


def check_messages(messages: object) -> None:
    """Check a chat history: ``{"role", "content": str}`` dicts ending with a user message.

    Raises:
        DataError: naming the first bad message (1-based) and what is expected.
    """
    # The shape rules are training's (engine.encode); chat adds "ends with a user message".
    _check_shape(messages, need_answer=False)
    if messages[-1]["role"] != "user":
        raise DataError("the conversation must end with a user message to reply to")


def fit_history(messages: list[dict], count_tokens: TokenCounter, n_ctx: int,
                max_tokens: int) -> tuple[list[dict], int, int]:
    """Drop the oldest turns until the prompt leaves room for a reply, then cap the reply.

    The room kept for the reply is ``min(max_tokens, n_ctx // 2)``, so a large ``max_tokens``
    cannot wipe the whole history. Messages are dropped oldest first, skipping system
    messages and never the last message; a dropped user turn takes the assistant answer
    that follows it, so roles still alternate for templates that require it (Gemma).

    Args:
        messages: the checked history (see :func:`check_messages`).
        count_tokens: prompt length in tokens of a history (with the generation prompt).
        n_ctx: the context size in tokens.
        max_tokens: the requested reply budget in tokens.

    Returns:
        ``(kept_messages, trimmed_count, reply_budget)`` with
        ``count_tokens(kept) + reply_budget <= n_ctx``.

    Raises:
        DataError: the system prompt and last message alone fill the context.
    """
    reserve = min(max_tokens, max(1, n_ctx // 2))
    kept, trimmed = list(messages), 0
    used = count_tokens(kept)
    while used + reserve > n_ctx:
        dropped = _drop_oldest_turn(kept)
        if not dropped:
            break
        trimmed += dropped
        used = count_tokens(kept)
    if used >= n_ctx:
        raise DataError(f"the last message (with the system prompt) needs {used} tokens but the "
                        f"context holds {n_ctx}; shorten it or raise the context size")
    return kept, trimmed, min(max_tokens, n_ctx - used)


def _drop_oldest_turn(kept: list[dict]) -> int:
    """Remove the oldest droppable message (and an assistant reply left leading); return count."""
    droppable = [i for i, m in enumerate(kept[:-1]) if m["role"] != "system"]
    if not droppable:
        return 0
    del kept[droppable[0]]
    following = [i for i, m in enumerate(kept[:-1]) if m["role"] != "system"]
    if following and kept[following[0]]["role"] == "assistant":
        del kept[following[0]]
        return 2
    return 1
