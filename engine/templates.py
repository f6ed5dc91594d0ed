"""Chat templates: a data table of known formats, resolution per tokenizer, and rendering.

A chat template is Jinja text, rendered exactly as Hugging Face transformers renders
``tokenizer.chat_template`` (sandboxed environment, ``trim_blocks``/``lstrip_blocks``,
``raise_exception``; see ``transformers/utils/chat_template_utils.py``). The template used for
training is recorded as a :class:`ChatTemplate` (name + source) and travels with the run into
the merged model's ``tokenizer_config.json`` and the GGUF's ``tokenizer.chat_template``
(CASES K5). Adding a format means adding a row to :data:`TEMPLATES`, not a code path.
"""

from __future__ import annotations

import functools
import json
from datetime import datetime
from dataclasses import dataclass
from typing import Any

from engine.errors import ConfigError, DataError

# Format knowledge as data. Each entry starts with ``bos_token`` where that format begins with
# BOS; the answer's end-of-turn text directly follows the assistant content.
TEMPLATES: dict[str, str] = {
    # OpenAI ChatML (Qwen, SmolLM, many fine-tunes).
    "chatml": (
        "{% for message in messages %}"
        "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
        "{% endfor %}"
        "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
    ),
    # Gemma / Gemma 3 (google/gemma-3-*-it, text only): the system message is prepended to the
    # first user turn, the assistant role is called "model", roles must alternate.
    "gemma": (
        "{{ bos_token }}"
        "{%- if messages and messages[0]['role'] == 'system' -%}"
        "{%- set first_user_prefix = messages[0]['content'] + '\n\n' -%}"
        "{%- set loop_messages = messages[1:] -%}"
        "{%- else -%}"
        "{%- set first_user_prefix = '' -%}"
        "{%- set loop_messages = messages -%}"
        "{%- endif -%}"
        "{%- for message in loop_messages -%}"
        "{%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}"
        "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}"
        "{%- endif -%}"
        "{%- set role = 'model' if message['role'] == 'assistant' else message['role'] -%}"
        "{{ '<start_of_turn>' + role + '\n' + (first_user_prefix if loop.first else '') }}"
        "{{ message['content'] | trim }}"
        "{{ '<end_of_turn>\n' }}"
        "{%- endfor -%}"
        "{%- if add_generation_prompt -%}{{ '<start_of_turn>model\n' }}{%- endif -%}"
    ),
    # Llama 3 / 3.1 / 3.2 instruct (without tool calling).
    "llama3": (
        "{{ bos_token }}"
        "{% for message in messages %}"
        "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'"
        " + message['content'] | trim + '<|eot_id|>' }}"
        "{% endfor %}"
        "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
    ),
    # Zephyr (HuggingFaceH4/zephyr-7b-beta): every turn ends with EOS.
    "zephyr": (
        "{% for message in messages %}"
        "{{ '<|' + message['role'] + '|>\n' + message['content'] + eos_token + '\n' }}"
        "{% endfor %}"
        "{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %}"
    ),
    # Llama 2 / Mistral instruct style [INST] blocks; the answer ends with EOS.
    "llama2": (
        "{%- if messages and messages[0]['role'] == 'system' -%}"
        "{%- set system = '<<SYS>>\n' + messages[0]['content'] + '\n<</SYS>>\n\n' -%}"
        "{%- set loop_messages = messages[1:] -%}"
        "{%- else -%}{%- set system = '' -%}{%- set loop_messages = messages -%}{%- endif -%}"
        "{%- for message in loop_messages -%}"
        "{%- if message['role'] == 'user' -%}"
        "{{ bos_token + '[INST] ' + (system if loop.first else '') + message['content'] | trim + ' [/INST]' }}"
        "{%- else -%}{{ ' ' + message['content'] | trim + eos_token }}{%- endif -%}"
        "{%- endfor -%}"
    ),
}

# Vocabulary markers -> the format a model with that vocabulary was most likely trained on;
# first match wins (used only when the tokenizer carries no chat template of its own).
DEFAULT_BY_VOCAB: tuple[tuple[tuple[str, ...], str], ...] = (
    (("<start_of_turn>", "<end_of_turn>"), "gemma"),
    (("<|im_start|>", "<|im_end|>"), "chatml"),
    (("<|start_header_id|>",), "llama3"),
)
FALLBACK_TEMPLATE = "chatml"


@dataclass(frozen=True)
class ChatTemplate:
    """A chat template as recorded with a run.

    Attributes:
        name: a key of :data:`TEMPLATES`, ``"model"`` when taken from the tokenizer, or
            ``"custom"`` for Jinja text given by the user.
        source: the Jinja text (what goes into ``tokenizer_config.json`` and the GGUF
            ``tokenizer.chat_template``).
    """

    name: str
    source: str


def resolve_template(tokenizer: Any, requested: str | None = None) -> ChatTemplate:
    """Pick the chat template for a tokenizer.

    Args:
        tokenizer: a transformers tokenizer (``chat_template`` and the vocabulary are read).
        requested: a key of :data:`TEMPLATES`; ``"model"`` for the tokenizer's own template;
            Jinja text (contains ``{{`` or ``{%``) for a custom template; ``None`` for the
            tokenizer's own template if it has one, else a default chosen from the vocabulary
            (:data:`DEFAULT_BY_VOCAB`, otherwise ``"chatml"``).

    Returns:
        The resolved template; its name and source are what a run records (CASES C11).

    Raises:
        ConfigError: ``requested`` is unknown, or ``"model"`` for a tokenizer without a template.
    """
    if requested is not None and ("{{" in requested or "{%" in requested):
        return ChatTemplate("custom", requested)
    own = _own_template(tokenizer)
    if requested == "model":
        if own is None:
            raise ConfigError("chat_template: this model's tokenizer has no chat template; choose one "
                              f"of {', '.join(sorted(TEMPLATES))}")
        return ChatTemplate("model", own)
    if requested is not None:
        if requested not in TEMPLATES:
            raise ConfigError(f"chat_template must be one of {', '.join(sorted(TEMPLATES))}, "
                              f"'model' or Jinja text; got {requested!r}")
        return ChatTemplate(requested, TEMPLATES[requested])
    if own is not None:
        return ChatTemplate("model", own)
    name = default_template_name(tokenizer)
    return ChatTemplate(name, TEMPLATES[name])


def default_template_name(tokenizer: Any) -> str:
    """The :data:`TEMPLATES` key whose special tokens the tokenizer's vocabulary contains."""
    vocab = tokenizer.get_vocab()
    for markers, name in DEFAULT_BY_VOCAB:
        if all(marker in vocab for marker in markers):
            return name
    return FALLBACK_TEMPLATE


def _own_template(tokenizer: Any) -> str | None:
    """The tokenizer's chat template text; for a dict of named templates, the default one."""
    own = getattr(tokenizer, "chat_template", None)
    if isinstance(own, dict):
        own = own.get("default")
    return own or None


def render(template: ChatTemplate, messages: list[dict], *, bos_token: str | None,
           eos_token: str | None, add_generation_prompt: bool = False) -> str:
    """Render messages with a chat template, as ``tokenizer.apply_chat_template(tokenize=False)``.

    Args:
        template: the template.
        messages: ``[{"role": ..., "content": str}, ...]``.
        bos_token, eos_token: the tokenizer's BOS/EOS text (``None`` renders as empty).
        add_generation_prompt: append the opening of an assistant turn.

    Returns:
        The rendered text (special tokens as text, e.g. ``"<bos>"``).

    Raises:
        ConfigError: the template is not valid Jinja.
        DataError: the template rejected the conversation (``raise_exception``), e.g. roles that
            do not alternate.
    """
    import jinja2

    compiled = _compile(template.source)
    try:
        return compiled.render(messages=messages, add_generation_prompt=add_generation_prompt,
                               bos_token=bos_token or "", eos_token=eos_token or "")
    except jinja2.TemplateError as exc:
        raise DataError(f"chat template {template.name!r} rejected the conversation: {exc}") from exc


def _generation_tag() -> type:
    """A Jinja extension accepting ``{% generation %}...{% endgeneration %}`` as a plain block.

    Templates written for transformers' assistant masks use this tag; masks here come from
    piecewise rendering instead, so the block only has to render its body.
    """
    import jinja2.ext
    import jinja2.nodes

    class GenerationTag(jinja2.ext.Extension):
        tags = {"generation"}

        def parse(self, parser: Any) -> Any:
            lineno = next(parser.stream).lineno
            body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
            return jinja2.nodes.Scope(body).set_lineno(lineno)

    return GenerationTag


def render_for(tokenizer: Any, template: ChatTemplate, messages: list[dict], *,
               add_generation_prompt: bool = False) -> str:
    """:func:`render` with the tokenizer's own BOS/EOS text."""
    return render(template, messages, bos_token=tokenizer.bos_token, eos_token=tokenizer.eos_token,
                  add_generation_prompt=add_generation_prompt)


@functools.lru_cache(maxsize=32)
def _compile(source: str) -> Any:
    """Compile Jinja text in the sandboxed environment transformers uses for chat templates."""
    import jinja2
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message: str) -> None:
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x: Any, ensure_ascii: bool = False, indent: int | None = None,
               separators: Any = None, sort_keys: bool = False) -> str:
        # Jinja's own tojson escapes HTML characters; transformers overrides it the same way.
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators,
                          sort_keys=sort_keys)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[_generation_tag(), "jinja2.ext.loopcontrols"])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
    try:
        return env.from_string(source)
    except jinja2.TemplateSyntaxError as exc:
        raise ConfigError(f"chat template is not valid Jinja (line {exc.lineno}): {exc.message}") from exc
