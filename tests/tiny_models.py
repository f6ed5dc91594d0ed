"""Tiny causal LMs built inside the test session: nothing is downloaded.

``build_tiny_model(out_dir)`` trains a byte-level BPE tokenizer on a few sentences (so any
text, CJK included, tokenizes), builds a 2-layer Llama with random weights and saves both as a
plain Hugging Face folder with a ChatML chat template. Variants cover the special-token cases
in ../shared/cases/CASES.md (pad == eos, no chat template, disagreeing eos ids).
"""

from __future__ import annotations

import json
from pathlib import Path

CHATML = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
SPECIALS = ["<s>", "</s>", "<pad>", "<|im_start|>", "<|im_end|>"]
CORPUS = [
    "Hello, how are you today? I am fine, thank you.",
    "What is your name? My name is Tunesmith, a helpful assistant.",
    "The quick brown fox jumps over the lazy dog.",
    "Please reset my password. Sure, I can help with that.",
    "你好，世界！我们今天学习机器学习。 🙂",
    "User: hi\n### Assistant: hello",
    "system user assistant model",
]


def build_tokenizer(*, pad_is_eos: bool = False, chat_template: str | None = CHATML):
    """A fast byte-level BPE tokenizer (vocab ~400) with BOS ``<s>``, EOS ``</s>``, ChatML tokens."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=SPECIALS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(CORPUS * 5, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>",
        pad_token="</s>" if pad_is_eos else "<pad>",
        additional_special_tokens=["<|im_start|>", "<|im_end|>"],
    )
    if chat_template is not None:
        fast.chat_template = chat_template
    return fast


def build_tiny_model(out_dir: str | Path, *, pad_is_eos: bool = False,
                     chat_template: str | None = CHATML, seed: int = 0,
                     generation_eos: list[str] | None = None) -> Path:
    """Save a tiny random Llama + tokenizer as an HF folder and return its path.

    Args:
        out_dir: folder to create.
        pad_is_eos: make the tokenizer's pad token equal its EOS token (CASES C06).
        chat_template: Jinja chat template to store, or ``None`` for a base model without one.
        seed: torch seed for the random weights.
        generation_eos: token strings for ``generation_config.eos_token_id`` (a list), e.g.
            ``["</s>", "<|im_end|>"]`` to make config and generation config disagree (C07).
    """
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    out = Path(out_dir)
    tokenizer = build_tokenizer(pad_is_eos=pad_is_eos, chat_template=chat_template)
    ids = tokenizer.convert_tokens_to_ids
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
        bos_token_id=ids("<s>"), eos_token_id=ids("</s>"), pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    if generation_eos is not None:
        gen = GenerationConfig(bos_token_id=ids("<s>"), eos_token_id=[ids(t) for t in generation_eos],
                               pad_token_id=tokenizer.pad_token_id)
        gen.save_pretrained(out)
    return out


def read_json(path: Path) -> dict:
    """Read a JSON file as UTF-8."""
    return json.loads(Path(path).read_text(encoding="utf-8"))
