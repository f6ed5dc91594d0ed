"""The LoRA training configuration: every knob with its help text, validated on creation."""

from __future__ import annotations

from dataclasses import dataclass

from engine.configs import check_choices, check_range, option
from engine.devices import DEVICES, PRECISIONS
from engine.errors import ConfigError

SCHEDULERS = ("linear", "cosine", "constant", "constant_with_warmup")
TRUNCATIONS = ("left", "right", "drop")


@dataclass(frozen=True)
class TrainConfig:
    """Settings of one LoRA fine-tuning run (round-trips through JSON via ``engine.configs``)."""

    learning_rate: float = option(2e-4, "Peak AdamW learning rate for the LoRA weights.")
    num_epochs: float = option(3.0, "Passes over the training rows (fractions allowed, e.g. 0.5).")
    max_steps: int | None = option(None, "Stop after this many optimizer steps; overrides num_epochs "
                                         "when set.")
    batch_size: int = option(4, "Conversations per forward pass (micro-batch).")
    gradient_accumulation_steps: int = option(1, "Micro-batches summed into one optimizer step; the "
                                                 "effective batch is batch_size x this.")
    max_length: int = option(1024, "Longest tokenized conversation, in tokens; longer ones are "
                                   "truncated or dropped (see truncation).")
    warmup_steps: int = option(0, "Optimizer steps of linear learning-rate warm-up from 0.")
    warmup_ratio: float = option(0.0, "Warm-up as a fraction of all optimizer steps (used when "
                                      "warmup_steps is 0).")
    lr_scheduler: str = option("linear", "How the learning rate changes after warm-up.",
                               choices=SCHEDULERS)
    weight_decay: float = option(0.0, "AdamW decoupled weight decay on the LoRA weights.")
    max_grad_norm: float = option(1.0, "Clip the gradient to this L2 norm (0 disables clipping).")
    lora_rank: int = option(16, "LoRA rank r: width of the low-rank update matrices.")
    lora_alpha: float = option(32.0, "LoRA alpha: the update is scaled by alpha / rank.")
    lora_dropout: float = option(0.05, "Dropout probability on the LoRA input during training.")
    target_modules: str | tuple[str, ...] = option(
        "all-linear", "Modules that get LoRA weights: 'all-linear' (every linear layer except the "
                      "output head) or a list of module names such as q_proj, v_proj.")
    adapter_name: str = option("default", "Name of the LoRA adapter inside the PEFT model.")
    seed: int = option(42, "Random seed for LoRA initialisation, dropout and data order.")
    eval_every: int = option(50, "Compute the validation loss every this many optimizer steps "
                                 "(0: only at the end).")
    save_every: int = option(100, "Write a resumable checkpoint every this many optimizer steps "
                                  "(0: none).")
    precision: str = option("auto", "Compute precision: 'auto' picks bf16 where the hardware does it "
                                    "natively, else fp32 (fp16 only on CUDA, with loss scaling).",
                            choices=PRECISIONS)
    device: str = option("auto", "Where to train: 'auto' picks CUDA, then Apple MPS, then CPU.",
                         choices=DEVICES)
    chat_template: str | None = option(None, "Chat template name or Jinja source; empty uses the "
                                             "model's own template, or the default one.")
    truncation: str = option("left", "Conversations longer than max_length: 'left' cuts the oldest "
                                     "turns, 'right' cuts the end, 'drop' skips the row.",
                             choices=TRUNCATIONS)
    group_by_length: bool = option(True, "Batch conversations of similar length together to cut "
                                         "padding (order stays random between batches).")
    load_in_4bit: bool = option(False, "QLoRA: load the base model in 4-bit NF4 (CUDA and "
                                       "bitsandbytes only).")

    def __post_init__(self) -> None:
        check_choices(self)
        self._check_numbers()
        self._check_target_modules()
        if self.warmup_steps and self.warmup_ratio:
            raise ConfigError("warmup_steps and warmup_ratio are both set; set only one of them "
                              f"(got {self.warmup_steps} and {self.warmup_ratio})")
        if self.max_steps is None and self.num_epochs <= 0:
            raise ConfigError(f"num_epochs must be > 0 when max_steps is not set; got {self.num_epochs}")

    def _check_numbers(self) -> None:
        check_range("learning_rate", self.learning_rate, low=0, high=1, low_open=True)
        check_range("num_epochs", self.num_epochs, low=0, high=1000)
        check_range("max_steps", self.max_steps, low=1, allow_none=True)
        for name in ("batch_size", "gradient_accumulation_steps", "lora_rank"):
            _check_int(name, getattr(self, name), low=1)
        _check_int("max_length", self.max_length, low=8)
        for name in ("warmup_steps", "eval_every", "save_every", "seed"):
            _check_int(name, getattr(self, name), low=0)
        if self.max_steps is not None:
            _check_int("max_steps", self.max_steps, low=1)
        check_range("warmup_ratio", self.warmup_ratio, low=0, high=1)
        check_range("weight_decay", self.weight_decay, low=0, high=1)
        check_range("max_grad_norm", self.max_grad_norm, low=0)
        check_range("lora_alpha", self.lora_alpha, low=0, low_open=True)
        check_range("lora_dropout", self.lora_dropout, low=0, high=1)
        if self.lora_dropout >= 1:
            raise ConfigError(f"lora_dropout must be in [0, 1); got {self.lora_dropout}")
        if not isinstance(self.adapter_name, str) or not self.adapter_name.isidentifier():
            raise ConfigError("adapter_name must be a non-empty identifier (letters, digits, _); "
                              f"got {self.adapter_name!r}")

    def _check_target_modules(self) -> None:
        value = self.target_modules
        if isinstance(value, str):
            if value != "all-linear":
                raise ConfigError("target_modules must be 'all-linear' or a list of module names "
                                  f"(e.g. ['q_proj', 'v_proj']); got {value!r}")
            return
        names = tuple(value) if isinstance(value, (list, tuple)) else None
        if not names or not all(isinstance(n, str) and n for n in names):
            raise ConfigError("target_modules must be 'all-linear' or a non-empty list of module "
                              f"names; got {value!r}")
        object.__setattr__(self, "target_modules", names)  # frozen: normalise lists to tuples


def _check_int(name: str, value: object, *, low: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise ConfigError(f"{name} must be a whole number >= {low}; got {value!r}")
