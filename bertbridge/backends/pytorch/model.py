"""Torch implementation of the core model contract (imported only when used)."""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

if "transformers" not in sys.modules:
    # transformers 4.x imports TensorFlow whenever it is installed (image utilities); this backend
    # needs only torch, so keep TF out of the process unless the user asked for it (5.x has no TF code).
    os.environ.setdefault("USE_TF", "0")

import torch  # noqa: E402
import transformers  # noqa: E402
from transformers import AutoConfig, AutoModelForQuestionAnswering, AutoModelForSequenceClassification  # noqa: E402
from transformers.utils import logging as hf_logging  # noqa: E402

from bertbridge.core.backend import Batch, ModelSetup, TrainableModel  # noqa: E402
from bertbridge.core.errors import ArtifactError, NotSupportedError  # noqa: E402
from bertbridge.core.io.architectures import architecture  # noqa: E402
from bertbridge.core.io.weights import checkpoint_has_pooler, fresh_head  # noqa: E402

_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
_NO_DECAY = ("bias", "LayerNorm.weight", "LayerNorm.bias", "layer_norm.weight", "layer_norm.bias")


def use_threads() -> None:
    """Give inference the intra-op threads ``BERTBRIDGE_THREADS`` asks for (default: torch's, every core)."""
    from bertbridge.core.backend import intra_op_threads

    threads = intra_op_threads()
    if threads:
        torch.set_num_threads(threads)


def _device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


# transformers 5 dropped BERT's relative position embeddings and head pruning, and loads weights
# in the checkpoint's dtype unless told otherwise (4.x: always float32).
_TRANSFORMERS_5 = int(transformers.__version__.split(".")[0]) >= 5


@contextlib.contextmanager
def _quiet_transformers():
    """Hide "newly initialized classifier weights" notices (a fresh head is the point of fine-tuning)
    and transformers 5's per-call "Loading weights" / "Writing model shards" progress bars."""
    level = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    if bars:
        hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if bars:
            hf_logging.enable_progress_bar()
        hf_logging.set_verbosity(level)


def _config(folder: Path):
    with _quiet_transformers():  # e.g. "`torch_dtype` is deprecated" about a hub checkpoint's config.json
        return AutoConfig.from_pretrained(folder)


def _check_supported(folder: Path, config) -> None:
    """transformers 5 would load these BERT variants without error but compute something else."""
    if not _TRANSFORMERS_5:
        return
    position = getattr(config, "position_embedding_type", None) or "absolute"
    if position != "absolute":
        raise NotSupportedError(
            f"{folder}: position_embedding_type {position!r}; transformers {transformers.__version__} implements only "
            "'absolute' for BERT (relative position embeddings were removed in transformers 5). "
            "Use transformers>=4.57,<5 for this model."
        )
    if getattr(config, "pruned_heads", None):
        raise NotSupportedError(
            f"{folder}: config.json lists pruned attention heads, which transformers {transformers.__version__} "
            "cannot build (head pruning was removed in transformers 5). Use transformers>=4.57,<5 for this model."
        )


_MODEL_CLASSES = {"sequence": AutoModelForSequenceClassification, "span": AutoModelForQuestionAnswering}


def _start_from_fresh_head(model: torch.nn.Module, folder: Path, setup: ModelSetup) -> None:
    """Always a fresh head, even when starting from a fine-tuned model, and the one every backend draws
    for this seed (core's ``fresh_head``): one spec and seed start from the same weights everywhere."""
    arch = architecture(model.config.model_type)
    config = arch.encoder_config(model.config.to_dict())
    has_pooler = setup.head == "span" or checkpoint_has_pooler(folder, config)
    fresh = fresh_head(config, setup.num_labels, setup.seed, setup.head, has_pooler=has_pooler)
    with torch.no_grad():
        for name, value in fresh.items():
            model.get_parameter(arch.from_canonical(name)).copy_(torch.from_numpy(value))


def model_inputs(model: torch.nn.Module) -> tuple[str, ...]:
    """The batch arrays the model takes: no ``token_type_ids`` for an architecture without token types (DistilBERT)."""
    config = architecture(model.config.model_type).encoder_config(model.config.to_dict())
    return _INPUTS if config["token_types"] else _INPUTS[:2]


def _load(folder: Path, config, attention: str = "sdpa", head: str = "sequence", **kwargs) -> torch.nn.Module:
    """``from_pretrained`` from safetensors only; damaged files become a clear ArtifactError.

    Always float32 (transformers 5 would keep a float16/bfloat16 checkpoint in half precision;
    mixed precision is autocast's job) and an explicit attention implementation, so the numbers
    do not follow a library default."""
    _check_supported(folder, config)
    try:
        with _quiet_transformers():
            return _MODEL_CLASSES[head].from_pretrained(
                folder, config=config, use_safetensors=True, attn_implementation=attention, dtype=torch.float32, **kwargs
            )
    except (OSError, ValueError, RuntimeError) as exc:
        raise ArtifactError(
            f"{folder}: cannot load the weights ({type(exc).__name__}: {str(exc).splitlines()[0][:200]}). "
            "The folder is damaged or not a checkpoint of its config.json's model_type; retrain or restore it."
        ) from None
    except Exception as exc:  # safetensors' own error type
        if type(exc).__name__ != "SafetensorError":
            raise
        raise ArtifactError(f"{folder}: model.safetensors is damaged ({exc}); retrain or restore it.") from None


def _problem_type(setup: ModelSetup) -> str:
    return "multi_label_classification" if setup.multi_label else "single_label_classification"


class TorchClassifier(TrainableModel):
    """``AutoModelForSequenceClassification`` (or, for the span head, ``AutoModelForQuestionAnswering``)
    driven by the core training loop."""

    def __init__(self, model: torch.nn.Module, setup: ModelSetup) -> None:
        self.device = _device()
        self.model = model.to(self.device)
        self.setup = setup
        self.inputs = model_inputs(model)
        self._optimizer: Any = None
        self._ddp: Any = None  # DistributedDataParallel wrapper of a data-parallel worker
        self._world_size = 1
        use_bf16 = setup.mixed_precision and (self.device.type == "cpu" or torch.cuda.is_bf16_supported())
        self._autocast = (
            (lambda: torch.autocast(self.device.type, dtype=torch.bfloat16)) if use_bf16 else contextlib.nullcontext
        )

    # -- construction -----------------------------------------------------
    @classmethod
    def from_pretrained(cls, folder: Path, setup: ModelSetup) -> "TorchClassifier":
        torch.manual_seed(setup.seed)
        # Set after loading, in the order transformers 4.x applied these keyword arguments (passing
        # num_labels to AutoConfig makes transformers 5 warn when the folder has another label map).
        config = _config(folder)
        if setup.head == "span":
            config.num_labels = 2
        else:
            config.num_labels = setup.num_labels
            config.id2label = {int(k): v for k, v in setup.id2label.items()}
            config.label2id = {v: int(k) for k, v in setup.id2label.items()}
            config.problem_type = _problem_type(setup)
        model = _load(folder, config, head=setup.head, ignore_mismatched_sizes=True)
        _start_from_fresh_head(model, folder, setup)
        return cls(model, setup)

    @classmethod
    def from_artifact(cls, folder: Path, setup: ModelSetup, attention: str = "sdpa") -> "TorchClassifier":
        config = _config(folder)
        if setup.head == "span":
            if not any(a.endswith("ForQuestionAnswering") for a in (config.architectures or [])):
                raise ArtifactError(f"{folder}: config.json describes {config.architectures}, not a question-answering "
                                    "model, but bertbridge.json says question_answering. Retrain or restore the folder.")
            return cls(_load(folder, config, attention=attention, head="span"), setup)
        if config.num_labels != setup.num_labels:
            raise ArtifactError(
                f"{folder}: config.json has {config.num_labels} labels but bertbridge.json lists "
                f"{setup.num_labels}. The folder is inconsistent; retrain or restore it."
            )
        return cls(_load(folder, config, attention=attention), setup)

    # -- contract ----------------------------------------------------------
    def _forward(self, batch: Batch, training: bool = False) -> torch.Tensor:
        inputs = {k: torch.from_numpy(batch[k]).to(self.device) for k in self.inputs}
        net = self._ddp if training and self._ddp is not None else self.model
        with self._autocast():
            out = net(**inputs)
        if self.setup.head == "span":
            return torch.stack([out.start_logits.float(), out.end_logits.float()], dim=-1)
        return out.logits.float()

    def logits(self, batch: Batch) -> np.ndarray:
        self.model.eval()
        with torch.inference_mode():
            return self._forward(batch).cpu().numpy()

    def word_embeddings(self, input_ids: np.ndarray) -> np.ndarray:
        table = self.model.get_input_embeddings()
        with torch.inference_mode():
            return table(torch.from_numpy(np.asarray(input_ids)).to(self.device)).float().cpu().numpy()

    def embedding_gradients(self, batch: Batch, embeddings: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        self.model.eval()
        embeds = torch.tensor(embeddings, dtype=torch.float32, device=self.device, requires_grad=True)
        inputs = {k: torch.from_numpy(batch[k]).to(self.device) for k in self.inputs if k != "input_ids"}
        trainable = [p for p in self.model.parameters() if p.requires_grad]
        for p in trainable:  # only the input's gradient is wanted: keep autograd from saving more for the weights
            p.requires_grad_(False)
        try:
            out = self.model(inputs_embeds=embeds, **inputs)
            logits = torch.stack([out.start_logits, out.end_logits], dim=-1) if self.setup.head == "span" else out.logits
            scores = (logits.float() * torch.from_numpy(weights).to(self.device)).flatten(1).sum(1)
            (grads,) = torch.autograd.grad(scores.sum(), embeds)
        finally:
            for p in trainable:
                p.requires_grad_(True)
        return scores.detach().cpu().numpy(), grads.cpu().numpy()

    def attentions(self, batch: Batch) -> np.ndarray:
        """transformers' ``output_attentions``, from the eager attention (SDPA computes no weights)."""
        inputs = {k: torch.from_numpy(batch[k]).to(self.device) for k in self.inputs}
        current = self.model.config._attn_implementation
        self.model.eval()
        try:
            self.model.set_attn_implementation("eager")
            with torch.inference_mode():
                out = self.model(**inputs, output_attentions=True)
        finally:
            self.model.set_attn_implementation(current)
        return torch.stack([a.float() for a in out.attentions], dim=1).cpu().numpy()

    def accumulate(self, batch: Batch, loss_scale: float) -> float:
        self.model.train()
        logits = self._forward(batch, training=True)
        labels = torch.from_numpy(batch["labels"]).to(self.device)
        if self.setup.head == "span":  # transformers' BertForQuestionAnswering loss
            loss = (torch.nn.functional.cross_entropy(logits[..., 0], labels[:, 0])
                    + torch.nn.functional.cross_entropy(logits[..., 1], labels[:, 1])) / 2
        elif self.setup.multi_label:
            loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, labels.float())
        else:
            loss = torch.nn.functional.cross_entropy(logits, labels)
        (loss * (loss_scale * self._world_size)).backward()  # DDP averages over workers; the contract sums
        return float(loss.detach())

    def distribute(self, collective) -> None:
        """Wrap the model in DistributedDataParallel (which broadcasts rank 0's weights now and
        all-reduces gradient buckets during each synchronised backward pass)."""
        from torch.nn.parallel import DistributedDataParallel

        if collective.rank:  # a dropout stream of its own (rank 0 keeps the single-process one)
            torch.manual_seed(self.setup.seed + 1_000_003 * collective.rank)
        self.device = collective.device
        self.model.to(self.device)
        self._world_size = collective.world_size
        ids = [self.device.index] if self.device.type == "cuda" else None
        # BERT's buffers (position and token-type ids) are constants: no need to sync them every forward.
        import inspect

        quiet = "forward_sync_buffers" if "forward_sync_buffers" in inspect.signature(DistributedDataParallel).parameters else "broadcast_buffers"
        self._ddp = DistributedDataParallel(self.model, device_ids=ids, gradient_as_bucket_view=True, **{quiet: False})

    def no_sync(self):
        return self._ddp.no_sync() if self._ddp is not None else contextlib.nullcontext()

    def step(self, learning_rate: float) -> None:
        if self._optimizer is None:
            self._optimizer = self._make_optimizer()
        if self.setup.max_grad_norm > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.setup.max_grad_norm)
        for group in self._optimizer.param_groups:
            group["lr"] = learning_rate
        self._optimizer.step()
        self._optimizer.zero_grad(set_to_none=True)

    def _make_optimizer(self) -> torch.optim.Optimizer:
        decay, no_decay = [], []
        for name, param in self.model.named_parameters():
            if param.requires_grad:
                (no_decay if name.endswith(_NO_DECAY) else decay).append(param)
        groups = [
            {"params": decay, "weight_decay": self.setup.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ]
        return torch.optim.AdamW(groups, lr=0.0)

    def snapshot(self) -> dict[str, np.ndarray]:
        return {k: v.detach().cpu().numpy().copy() for k, v in self.model.state_dict().items()}

    def restore(self, snapshot) -> None:
        self.model.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in snapshot.items()})

    def training_state(self) -> dict[str, np.ndarray]:
        state = {f"model.{k}": v for k, v in self.snapshot().items()}
        if self._optimizer is not None:
            for name, param in self.model.named_parameters():
                slots = self._optimizer.state.get(param)
                if slots:
                    state[f"adamw.{name}.exp_avg"] = slots["exp_avg"].cpu().numpy().copy()
                    state[f"adamw.{name}.exp_avg_sq"] = slots["exp_avg_sq"].cpu().numpy().copy()
                    state[f"adamw.{name}.step"] = np.array([float(slots["step"])], dtype=np.float32)
        state["rng.torch"] = torch.get_rng_state().numpy().copy()
        if self.device.type == "cuda":  # dropout on the GPU draws from the CUDA generator
            state["rng.cuda"] = torch.cuda.get_rng_state(self.device).numpy().copy()
        return state

    def load_training_state(self, state) -> None:
        self.restore({k[len("model."):]: v for k, v in state.items() if k.startswith("model.")})
        if any(k.startswith("adamw.") for k in state):
            self._optimizer = self._make_optimizer()
            for name, param in self.model.named_parameters():
                if f"adamw.{name}.exp_avg" in state:
                    self._optimizer.state[param] = {
                        "step": torch.tensor(float(state[f"adamw.{name}.step"][0])),
                        "exp_avg": torch.from_numpy(np.array(state[f"adamw.{name}.exp_avg"])).to(self.device),
                        "exp_avg_sq": torch.from_numpy(np.array(state[f"adamw.{name}.exp_avg_sq"])).to(self.device),
                    }
        torch.set_rng_state(torch.from_numpy(np.array(state["rng.torch"], dtype=np.uint8)))
        if "rng.cuda" in state and self.device.type == "cuda":
            torch.cuda.set_rng_state(torch.from_numpy(np.array(state["rng.cuda"], dtype=np.uint8)), self.device)

    def save(self, directory: Path) -> None:
        # transformers 5 always writes safetensors (4.x: safe_serialization, True by default), and by
        # default writes the checkpoint's own names back (e.g. LayerNorm.gamma/.beta of the original
        # bert-base checkpoints): save_original_format=False keeps 4.x's names (LayerNorm.weight/.bias),
        # which core's weight reader, the other backends and older transformers expect.
        options = {"save_original_format": False} if _TRANSFORMERS_5 else {"safe_serialization": True}
        with _quiet_transformers():
            self.model.save_pretrained(directory, **options)
