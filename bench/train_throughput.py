"""Supervised tokens/s of Tunesmith's ``train_lora`` vs a plain transformers ``Trainer`` + PEFT.

Both run one after the other in this process on the same model, the same encoded examples
(assistant-only labels from ``engine.encode``), the same LoRA settings, batch size, sequence
length, optimizer and step count, in fp32 on CPU unless ``--precision`` says otherwise. The
Trainer script is what a typical tutorial writes: default random sampler, full-vocabulary
logits, HF's loss. Not a test: prints numbers. By default
both train exactly one epoch, so they see the same rows and the same supervised tokens.

    .venv/bin/python bench/train_throughput.py                    # built-in Gemma if imported, else tiny
    .venv/bin/python bench/train_throughput.py --model DIR --steps 20
    .venv/bin/python bench/train_throughput.py --tiny --precision-sweep   # bf16 vs fp32 step time
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from engine.progress import Progress  # noqa: E402
from engine.train import TrainConfig, train_lora  # noqa: E402


def default_model(args: argparse.Namespace, scratch: Path) -> Path:
    """``--model``, else the imported built-in Gemma 3 270M, else a tiny model built in ``scratch``."""
    if args.model:
        return Path(args.model)
    if not args.tiny:
        from storage.paths import data_dir

        models = data_dir() / "models"
        if args.import_builtin or (models / "gemma-3-270m" / "config.json").is_file():
            from engine.models import builtin_base_model

            return builtin_base_model(models)
    from tests.tiny_models import build_tiny_model

    return build_tiny_model(scratch / "tiny", generation_eos=["</s>", "<|im_end|>"])


def load_rows(n: int, seed: int) -> tuple[list[dict], str]:
    """``n`` ChatterBot English conversations (``engine.data``), else a synthetic set."""
    try:
        from engine.data.chatterbot import load_chatterbot_corpus

        rows, source = load_chatterbot_corpus("english").examples, "chatterbot-english"
    except Exception:  # noqa: BLE001  (any failure: fall back to synthetic data)
        rng = random.Random(seed)
        words = "the quick brown fox jumps over a lazy dog while we learn to fine tune models".split()
        rows = [{"messages": [{"role": "user", "content": " ".join(rng.choices(words, k=rng.randint(3, 30)))},
                              {"role": "assistant", "content": " ".join(rng.choices(words, k=rng.randint(3, 40)))}]}
                for _ in range(n)]
        source = "synthetic"
    random.Random(seed).shuffle(rows)
    return rows[:n], source


def config_for(args: argparse.Namespace, precision: str) -> TrainConfig:
    return TrainConfig(max_steps=args.steps, batch_size=args.batch_size, max_length=args.max_length,
                       learning_rate=2e-4, lora_rank=args.rank, lora_alpha=2.0 * args.rank,
                       lora_dropout=0.05, eval_every=0, save_every=0, precision=precision,
                       device=args.device, warmup_steps=0, lr_scheduler="linear", seed=0)


def run_ours(config: TrainConfig, model_dir: Path, rows: list[dict], out: Path) -> dict[str, float]:
    started = time.perf_counter()
    result = train_lora(config, model_dir, rows, [], out, report=_quiet)
    return {"tokens": result.tokens_trained, "train_tps": result.tokens_per_second,
            "wall": time.perf_counter() - started}


def _quiet(event: Progress) -> None:
    if event.stage == "prepare":
        print(f"  [ours] {event.message}")


def run_trainer(config: TrainConfig, model_dir: Path, rows: list[dict], out: Path) -> dict[str, float]:
    """A plain Trainer + PEFT script on the same encoded examples."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer, Trainer, TrainingArguments

    from engine.encode import collate, encode_rows
    from engine.templates import resolve_template
    from engine.tokens import prepare_tokenizer, special_tokens_for

    started = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    template = resolve_template(tokenizer, None)
    prepare_tokenizer(tokenizer)
    special = special_tokens_for(model_dir, tokenizer, template)
    examples, _ = encode_rows(tokenizer, rows, template, special, max_length=config.max_length)
    dataset = [{"example": e} for e in examples]
    counted = {"tokens": 0}

    def collator(items: list[dict]) -> dict:
        batch = collate([item["example"] for item in items], special.pad_id)
        counted["tokens"] += int((batch["labels"][:, 1:] != -100).sum())
        return batch

    bf16 = config.precision == "bf16"
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32)
    model = get_peft_model(model, LoraConfig(r=config.lora_rank, lora_alpha=config.lora_alpha,
                                             lora_dropout=config.lora_dropout, target_modules="all-linear",
                                             task_type="CAUSAL_LM"))
    args = TrainingArguments(output_dir=str(out), max_steps=config.max_steps,
                             per_device_train_batch_size=config.batch_size,
                             learning_rate=config.learning_rate, lr_scheduler_type="linear",
                             weight_decay=0.0, max_grad_norm=1.0, seed=0, bf16=bf16,
                             use_cpu=config.device == "cpu", report_to="none", save_strategy="no",
                             logging_steps=10 ** 6, disable_tqdm=True, remove_unused_columns=False,
                             dataloader_pin_memory=False)
    trainer = Trainer(model=model, args=args, train_dataset=dataset, data_collator=collator)
    metrics = trainer.train().metrics
    return {"tokens": counted["tokens"], "train_tps": counted["tokens"] / metrics["train_runtime"],
            "wall": time.perf_counter() - started}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="Hugging Face model folder (default: built-in Gemma if imported)")
    parser.add_argument("--tiny", action="store_true", help="use the tiny test model")
    parser.add_argument("--import-builtin", action="store_true", help="import the built-in Gemma first")
    parser.add_argument("--rows", type=int, default=64)
    parser.add_argument("--steps", type=int, default=None,
                        help="optimizer steps (default: one epoch, so both see the same rows)")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--rank", type=int, default=16)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    parser.add_argument("--precision-sweep", action="store_true", help="our loop in fp32 and bf16 only")
    args = parser.parse_args()
    args.steps = args.steps or -(-args.rows // args.batch_size)
    from engine.devices import set_cpu_threads

    threads = set_cpu_threads()
    with tempfile.TemporaryDirectory() as scratch:
        scratch_dir = Path(scratch)
        model_dir = default_model(args, scratch_dir)
        rows, source = load_rows(args.rows, seed=0)
        print(f"model {model_dir} | data {source} ({len(rows)} rows) | steps {args.steps} | batch "
              f"{args.batch_size} | max_length {args.max_length} | rank {args.rank} | threads {threads}")
        if args.precision_sweep:
            sweep(args, model_dir, rows, scratch_dir)
            return
        config = config_for(args, args.precision)
        ours = run_ours(config, model_dir, rows, scratch_dir / "ours")
        theirs = run_trainer(config, model_dir, rows, scratch_dir / "trainer")
    for name, r in (("tunesmith train_lora", ours), ("transformers Trainer", theirs)):
        print(f"{name:22s} supervised tokens {r['tokens']:7d} | train {r['train_tps']:9.1f} tok/s | "
              f"end-to-end {r['wall']:6.1f} s")
    print(f"speed-up (train tok/s): {ours['train_tps'] / theirs['train_tps']:.2f}x")


def sweep(args: argparse.Namespace, model_dir: Path, rows: list[dict], scratch: Path) -> None:
    """Our loop's step time in fp32 vs bf16 autocast on this machine."""
    for precision in ("fp32", "bf16", "fp32", "bf16"):  # twice, to see warm-up / noise
        result = run_ours(config_for(args, precision), model_dir, rows, scratch / precision)
        print(f"{precision}: {result['train_tps']:9.1f} supervised tok/s")


if __name__ == "__main__":
    main()
