"""SageMaker Debugger attention capture for the MXNet backend (``debugger.attention: true``).

An ``smdebug.mxnet.Hook`` is registered on two blocks:

* the hybridized training network, whose forward passes advance the trial's
  training-mode steps (one per micro-batch) and whose loss block's output is saved
  in the ``losses`` collection at each of them;
* an imperative twin of the network that shares its parameters (the *probe*),
  run in evaluation mode on the probe batch at each capture. Its GluonNLP
  ``DotProductSelfAttentionCell`` blocks save their input (hidden states,
  ``[length, batch, units]``) and their second output, the attention weights
  ``[batch, heads, length, length]``; two projection blocks per layer save the
  query and key vectors (``[length, batch, units]``) a neuron view needs; the probe's
  own input is the token ids.

Forward passes made for evaluation run in PREDICT mode, which saves nothing.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional

import numpy as np

from bertbridge.core.debugger.capture import DebugSession, Probe, Record
from bertbridge.core.errors import BackendUnavailableError

from .bert import BertClassifier, mx
from .model import MXClassifier

try:
    import smdebug.mxnet as smd
    from smdebug.core.modes import ModeKeys
    from smdebug.core.save_config import SaveConfigMode
except ImportError:  # pragma: no cover - the message names the fix
    smd = None

NEVER = {"end_step": 0}  # a SaveConfigMode that saves no step
ATTENTION_PATTERNS = (
    r".*dotproductselfattentioncell\d+_output_1",  # attention weights
    r".*dotproductselfattentioncell\d+_input_0",  # the cell's input (hidden states)
    r"probe_layer\d+_(query|key)_output_0",  # query / key projections
    r"probe_input_0",  # token ids
)


class _Projection(mx.gluon.Block):
    """``x @ W.T + b`` with a layer's query or key parameters (referenced, not owned)."""

    def __init__(self, weight, bias, units: int, prefix: str) -> None:
        super().__init__(prefix=prefix)
        self._refs = (weight, bias)
        self._units = units

    def forward(self, x):
        weight, bias = self._refs
        return mx.nd.FullyConnected(x, weight.data(), bias.data(), num_hidden=self._units, flatten=False)


class _AttentionProbe(mx.gluon.Block):
    def __init__(self, net: BertClassifier, units: int) -> None:
        super().__init__(prefix="probe_")
        self.net = net
        self.projections = mx.gluon.nn.Sequential(prefix="probe_projections_")
        cells = [layer.attention_cell for layer in net.bert.encoder.transformer_cells]
        for i, cell in enumerate(cells):
            query = _Projection(cell.query_weight, cell.query_bias, units, f"probe_layer{i}_query_")
            key = _Projection(cell.key_weight, cell.key_bias, units, f"probe_layer{i}_key_")
            self.projections.add(query, key)
            cell.register_forward_pre_hook(lambda block, inputs, q=query, k=key: (q(inputs[0]), k(inputs[0])))

    def forward(self, input_ids, token_type_ids, valid_length):
        return self.net(input_ids, token_type_ids, valid_length)


class SmdebugSession(DebugSession):
    def __init__(self, model: MXClassifier, config, probe: Probe, out_dir: Path) -> None:
        if smd is None:
            raise BackendUnavailableError(
                "debugger.attention needs smdebug in the mxnet environment: pip install 'bertbridge[mxnet,debugger]' "
                "(make mxnet-env installs it)."
            )
        logging.getLogger("smdebug").setLevel(logging.WARNING)
        self.model, self.probe_data, self.config = model, probe, config
        self.num_layers, self.num_heads = model.block.num_layers, model.block.num_heads
        units = int(model.block.config["hidden_size"])
        # The probe: the same parameters (shared by name), never hybridized, so child hooks fire.
        twin = BertClassifier(model.block.config, model.setup.num_labels, params=model.block.collect_params())
        self.probe = _AttentionProbe(twin, units)
        save = smd.SaveConfig(mode_save_configs={
            ModeKeys.TRAIN: SaveConfigMode(save_interval=1),
            ModeKeys.EVAL: SaveConfigMode(save_interval=1),
            ModeKeys.PREDICT: SaveConfigMode(**NEVER),
        })
        self.hook = smd.Hook(out_dir=str(out_dir), save_config=save, include_collections=["attention", "losses"])
        attention = self.hook.get_collection("attention")
        attention.include(list(ATTENTION_PATTERNS))
        attention.save_config = {ModeKeys.TRAIN: SaveConfigMode(**NEVER), ModeKeys.EVAL: SaveConfigMode(save_interval=1)}
        self.hook.register_block(model.block)
        self.hook.register_block(model.loss_block)
        self.hook.register_block(self.probe)
        self.hook.set_mode(ModeKeys.TRAIN)
        model.debug_hook = self

    # -- called by the model -------------------------------------------
    def predicting(self):
        hook = self.hook

        class _Predict:
            def __enter__(self_inner):
                self_inner.mode = hook.mode
                hook.set_mode(ModeKeys.PREDICT)

            def __exit__(self_inner, *exc):
                hook.set_mode(self_inner.mode)

        return _Predict()

    # -- the session contract --------------------------------------------
    def tensor_names(self) -> dict:
        """Trial tensor names (per layer where it applies), from the probe's block names."""
        cells = [layer.attention_cell.name for layer in self.probe.net.bert.encoder.transformer_cells]
        projections = [block.name for block in self.probe.projections]
        return {
            "attention": [c + "_output_1" for c in cells],
            "cell_input": [c + "_input_0" for c in cells],
            "query": [q + "_output_0" for q in projections[0::2]],
            "key": [k + "_output_0" for k in projections[1::2]],
            "token_ids": self.probe.name + "_input_0",
            "layout": "attention [batch, heads, query, key]; cell_input/query/key [length, batch, units]",
        }

    def capture(self, step: int, validation_loss: Optional[float]) -> Record:
        self.hook.set_mode(ModeKeys.EVAL)
        try:
            if validation_loss is not None:
                self.hook.save_tensor("validation_loss", np.array([validation_loss], np.float32), "losses")
            self.probe(*self.model._inputs(self.probe_data.batch))
            mx.nd.waitall()
            trial_step = int(self.hook.mode_steps[ModeKeys.EVAL])
        finally:
            self.hook.set_mode(ModeKeys.TRAIN)
        return Record(trial_step=trial_step, train_step=int(step), validation_loss=validation_loss)

    def close(self) -> dict:
        from bertbridge.core.debugger.rules import run_rules

        self.model.debug_hook = None
        self.hook.close()
        return run_rules(self.hook.out_dir, self.config.rules)
