"""Tiny ONNX models built by the tests, standing in for downloaded ones on the real code paths."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def brightness_segmenter(path: Path, scale: float = 4.0) -> Path:
    """A U2-Net-shaped model: (1, 3, 320, 320) -> (1, 1, 320, 320), foreground = bright pixels (steeper with `scale`)."""
    x = helper.make_tensor_value_info("input.1", TensorProto.FLOAT, [1, 3, 320, 320])
    y = helper.make_tensor_value_info("mask", TensorProto.FLOAT, [1, 1, 320, 320])
    scale = numpy_helper.from_array(np.array(scale, dtype=np.float32), "scale")
    nodes = [
        helper.make_node("ReduceMean", ["input.1"], ["mean"], axes=[1], keepdims=1),
        helper.make_node("Mul", ["mean", "scale"], ["scaled"]),
        helper.make_node("Sigmoid", ["scaled"], ["mask"]),
    ]
    graph = helper.make_graph(nodes, "brightness_segmenter", [x], [y], initializer=[scale])
    return _save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)


def darkening_age_model(path: Path, factor: float = 0.5) -> Path:
    """An image-to-image model (float RGB 0..1, any size): multiplies every pixel by `factor`."""
    x = helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, None, None])
    y = helper.make_tensor_value_info("aged", TensorProto.FLOAT, [1, 3, None, None])
    k = numpy_helper.from_array(np.array(factor, dtype=np.float32), "k")
    graph = helper.make_graph([helper.make_node("Mul", ["image", "k"], ["aged"])], "darken", [x], [y], initializer=[k])
    return _save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)


def _save(model: onnx.ModelProto, path: Path) -> Path:
    model.ir_version = 8
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path
