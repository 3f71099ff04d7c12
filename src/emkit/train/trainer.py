"""TRL's side of local training: the trainer class and its arguments for one run.

Why its own module: these are the two places that follow TRL's and transformers' APIs as they
change (renamed arguments, new hooks), apart from the run itself (:mod:`emkit.train.sft`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from emkit.train.config import TrainConfig


def trainer_class() -> type:
    """TRL's SFTTrainer with emkit's sampler and LM head (a class made on first use: importing
    trl is slow, and only a training run needs it)."""
    from trl import SFTTrainer

    from emkit.train.batching import GroupedSampler
    from emkit.train.lm_head import compact_lm_head

    class EmkitSFTTrainer(SFTTrainer):
        """SFTTrainer with :class:`GroupedSampler` when ``emkit_grouped`` is set, and an LM head that
        projects only the trained positions on every device (:mod:`emkit.train.lm_head`)."""

        emkit_grouped = False
        emkit_seed = 0

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            with compact_lm_head():
                return super().compute_loss(
                    model, inputs, return_outputs=return_outputs, num_items_in_batch=num_items_in_batch
                )

        def _get_train_sampler(self, train_dataset=None):
            dataset = train_dataset if train_dataset is not None else self.train_dataset
            if not self.emkit_grouped or dataset is None or not hasattr(dataset, "__len__"):
                return super()._get_train_sampler(train_dataset)
            if "length" in dataset.column_names:
                lengths = dataset["length"]
            else:
                lengths = [len(ids) for ids in dataset["input_ids"]]
            group = self.args.per_device_train_batch_size * self.args.gradient_accumulation_steps
            return GroupedSampler(lengths, group * max(1, self.args.world_size), self.emkit_seed)

    return EmkitSFTTrainer


def sft_args(
    config: TrainConfig, out: Path, *, use_cpu: bool, bf16: bool, has_eval: bool, fp16: bool = False
) -> Any:
    """TRL's SFTConfig for this run (inputs arrive tokenized and truncated, so max_length=None)."""
    from trl import SFTConfig

    eval_every = config.eval_steps if has_eval and config.eval_steps else None
    micro, accum = config.micro_batching(on_gpu=not use_cpu)
    return SFTConfig(
        output_dir=str(out / "checkpoints"),
        per_device_train_batch_size=micro,
        per_device_eval_batch_size=micro,
        gradient_accumulation_steps=accum,
        learning_rate=config.lr,
        lr_scheduler_type=config.lr_scheduler,
        warmup_steps=config.warmup_steps,
        weight_decay=config.weight_decay,
        num_train_epochs=config.epochs,
        max_steps=config.max_steps or -1,
        optim=config.optim,
        max_grad_norm=config.max_grad_norm,
        seed=config.seed,
        data_seed=config.seed,
        logging_steps=config.logging_steps,
        save_strategy="steps" if config.save_steps else "no",
        save_steps=config.save_steps or 500,
        save_only_model=True,
        eval_strategy="steps" if eval_every else "no",
        eval_steps=eval_every,
        max_length=None,
        padding_free=config.batching == "padding_free",
        gradient_checkpointing=config.checkpointing(on_gpu=not use_cpu),
        bf16=bf16,
        fp16=fp16,
        use_cpu=use_cpu,
        report_to=[],
        disable_tqdm=True,
        dataset_num_proc=None,
    )
