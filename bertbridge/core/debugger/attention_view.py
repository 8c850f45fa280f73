"""Render attention, recorded by a debugger run or computed by a model on one input: an
interactive head view (one offline HTML file) and a static per-layer heatmap grid (PNG).

A trial is read through ``smdebug.trials`` (imports no framework) and the
``bertbridge-debug.json`` side file for tokens and step numbers; a model folder is run by
its backend's :meth:`~bertbridge.core.backend.InferenceModel.attentions`::

    bertbridge attention outputs/model-debug --step 0 --out view.html --png grid.png
    bertbridge attention outputs/sentiment --text "An absolute joy." --out view.html --png grid.png

The HTML embeds its data and script (no CDN, no network): choose a layer, tick
heads (one colour each), and hover a token to see where it attends; line opacity
is the attention weight.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from bertbridge.core.debugger.capture import Report
from bertbridge.core.errors import DataError
from bertbridge.core.text.batching import encode_batch

HEAD_COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
                "#bcbd22", "#17becf", "#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173", "#3182bd"]


@dataclass
class AttentionData:
    tokens: list  # word pieces of the example, padding dropped
    attention: np.ndarray  # [layers, heads, tokens, tokens]
    step: Optional[int]  # the trial's optimizer step; None for a model run on one input
    example: int
    text: object
    trial: str  # the trial or model folder

    @property
    def caption(self) -> str:
        if self.step is None:
            return f"model {Path(self.trial).name}"
        return f"step {self.step}, example {self.example}"


def from_model(predictor, text: str, text_pair: Optional[str] = None) -> AttentionData:
    """The attention of ``predictor``'s model (a loaded model folder) on one input, tokenized as it
    predicts (the manifest's ``max_seq_length``; a pair is cut from its second text first)."""
    from bertbridge.core.debugger.explain import check_one_window

    check_one_window(predictor, text, text_pair, "attention")
    features, batch = encode_batch(predictor.encoder, [(text, text_pair)], predictor.manifest.max_seq_length)
    attention = np.asarray(predictor.model.attentions(batch))[0].astype(np.float32)
    tokens = predictor.encoder.id_tokens(features.input_ids[0])
    shown = text if text_pair is None else [text, text_pair]
    return AttentionData(tokens, attention, None, 0, shown, str(predictor.path))


def load(trial_dir: str, step: int, example: int = 0) -> AttentionData:
    """The attention of probe example ``example`` at optimizer step ``step``."""
    report = Report.read(Path(trial_dir))
    record = report.record_for(step)
    if not 0 <= example < len(report.tokens):
        raise DataError(f"example {example} is out of range: the trial recorded {len(report.tokens)} examples (0..{len(report.tokens) - 1}).")
    try:
        from smdebug.core.modes import ModeKeys
        from smdebug.trials import create_trial
    except ImportError:
        raise DataError(
            "reading a debugger trial needs smdebug, which lives in the mxnet environment: run this command with "
            ".venv-mxnet/bin/bertbridge (make mxnet-env), or set BERTBRIDGE_MXNET_PYTHON."
        ) from None
    trial = create_trial(str(trial_dir))
    tokens = report.tokens[example]
    layers = []
    for name in report.tensors["attention"]:
        value = trial.tensor(name).value(record.trial_step, mode=ModeKeys.EVAL)
        layers.append(np.asarray(value)[example, :, : len(tokens), : len(tokens)])
    return AttentionData(tokens, np.stack(layers).astype(np.float32), step, example, report.texts[example], str(trial_dir))


def render_html(data: AttentionData) -> str:
    payload = {
        "tokens": data.tokens,
        "attention": np.round(data.attention, 4).tolist(),
        "colours": HEAD_COLOURS,
    }
    # </script> cannot appear inside the JSON: escape the slash of every "</".
    blob = json.dumps(payload, ensure_ascii=False).replace("</", "<\\/")
    title = f"Attention head view, {data.caption}"
    text = data.text if isinstance(data.text, str) else " / ".join(map(str, data.text))
    return _TEMPLATE.format(title=html.escape(title), text=html.escape(text), trial=html.escape(data.trial), blob=blob)


def render_png(data: AttentionData, path: Path) -> Path:
    """A grid of heatmaps, one row per layer, one column per head."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    layers, heads, n, _ = data.attention.shape
    fig, axes = plt.subplots(layers, heads, figsize=(2.2 * heads + 1, 2.2 * layers + 1), squeeze=False)
    for layer in range(layers):
        for head in range(heads):
            ax = axes[layer][head]
            ax.imshow(data.attention[layer, head], vmin=0.0, vmax=float(data.attention[layer, head].max()) or 1.0, cmap="viridis")
            ax.set_xticks([])
            ax.set_yticks([])
            if layer == 0:
                ax.set_title(f"head {head}", fontsize=8)
            if head == 0:
                ax.set_ylabel(f"layer {layer}", fontsize=8)
    fig.suptitle(f"attention, {data.caption} ({n} tokens; each map scaled to its maximum)", fontsize=9)
    fig.tight_layout()
    tmp = Path(path).with_name(Path(path).name + ".tmp.png")
    fig.savefig(tmp, dpi=80)
    plt.close(fig)
    tmp.replace(path)
    return Path(path)


def write(trial_dir: str, step: int, out: Path, *, example: int = 0, png: Optional[Path] = None) -> AttentionData:
    return write_data(load(trial_dir, step, example), out, png=png)


def write_data(data: AttentionData, out: Path, *, png: Optional[Path] = None) -> AttentionData:
    """Write the HTML head view to ``out`` (and the PNG grid to ``png``), each through a rename."""
    out = Path(out)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(render_html(data), encoding="utf-8")
    tmp.replace(out)
    if png is not None:
        render_png(data, Path(png))
    return data


_TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: sans-serif; margin: 16px; color: #222; }}
#controls {{ margin: 8px 0; }} #controls label {{ margin-right: 10px; }}
.head {{ display: inline-block; padding: 1px 6px; margin: 2px; border-radius: 3px; color: #fff; cursor: pointer; }}
.head.off {{ opacity: 0.25; }}
text.token {{ font-size: 13px; cursor: default; }} text.token.active {{ font-weight: bold; }}
#note {{ color: #666; font-size: 12px; }}
</style></head>
<body>
<h2>{title}</h2>
<p id="sentence">{text}</p>
<div id="controls"><label>Layer <select id="layer"></select></label> Heads: <span id="heads"></span></div>
<p id="note">Lines go from each token (left) to the tokens it attends to (right); opacity is the attention weight.
Hover a token to see only its attention. Source: {trial}</p>
<svg id="view" xmlns="http://www.w3.org/2000/svg"></svg>
<script id="data" type="application/json">{blob}</script>
<script>
(function () {{
  "use strict";
  window.addEventListener("error", function (e) {{ document.body.setAttribute("data-error", String(e.message)); }});
  var data = JSON.parse(document.getElementById("data").textContent);
  var tokens = data.tokens, att = data.attention, colours = data.colours;
  var nLayers = att.length, nHeads = att[0].length;
  var svg = document.getElementById("view"), NS = "http://www.w3.org/2000/svg";
  var rowH = 22, leftX = 150, rightX = 450, top = 20;
  svg.setAttribute("width", "620");
  svg.setAttribute("height", String(top + rowH * tokens.length + 10));
  var layerSel = document.getElementById("layer"), headsBox = document.getElementById("heads");
  var on = [], hover = -1;
  for (var l = 0; l < nLayers; l++) {{
    var o = document.createElement("option"); o.value = String(l); o.textContent = String(l); layerSel.appendChild(o);
  }}
  for (var h = 0; h < nHeads; h++) {{
    on.push(true);
    var b = document.createElement("span"); b.className = "head"; b.textContent = String(h);
    b.style.background = colours[h % colours.length]; b.setAttribute("data-head", String(h));
    b.addEventListener("click", function (ev) {{
      var k = Number(ev.target.getAttribute("data-head")); on[k] = !on[k];
      ev.target.className = on[k] ? "head" : "head off"; draw();
    }});
    headsBox.appendChild(b);
  }}
  layerSel.addEventListener("change", draw);
  function el(name, attrs) {{
    var e = document.createElementNS(NS, name);
    for (var k in attrs) e.setAttribute(k, String(attrs[k]));
    return e;
  }}
  function draw() {{
    while (svg.firstChild) svg.removeChild(svg.firstChild);
    var layer = Number(layerSel.value), lines = 0;
    for (var h = 0; h < nHeads; h++) {{
      if (!on[h]) continue;
      var w = att[layer][h], active = [];
      for (var i = 0; i < tokens.length; i++) {{
        if (hover >= 0 && i !== hover) continue;
        for (var j = 0; j < tokens.length; j++) {{
          if (w[i][j] < 0.01) continue;
          svg.appendChild(el("line", {{x1: leftX + 5, y1: top + rowH * i - 4, x2: rightX - 5, y2: top + rowH * j - 4,
            stroke: colours[h % colours.length], "stroke-width": 2, "stroke-opacity": w[i][j] / Math.max(1, nHeads / 4)}}));
          lines++;
        }}
      }}
    }}
    for (var side = 0; side < 2; side++) {{
      for (var t = 0; t < tokens.length; t++) {{
        var txt = el("text", {{x: side === 0 ? leftX : rightX, y: top + rowH * t,
          "text-anchor": side === 0 ? "end" : "start", "class": "token" + (t === hover && side === 0 ? " active" : "")}});
        txt.textContent = tokens[t];
        txt.setAttribute("data-index", String(t));
        if (side === 0) {{
          txt.addEventListener("mouseenter", function (ev) {{ hover = Number(ev.target.getAttribute("data-index")); draw(); }});
          txt.addEventListener("mouseleave", function () {{ hover = -1; draw(); }});
        }}
        svg.appendChild(txt);
      }}
    }}
    document.body.setAttribute("data-rendered", String(tokens.length));
    document.body.setAttribute("data-lines", String(lines));
  }}
  draw();
}})();
</script>
</body></html>
"""
