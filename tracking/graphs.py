"""One `torch.export` trace per architecture a process: the pt2 graph of a module that differs from one traced
before only in its weights is that graph with the module's weights.

The demo logs four members of one architecture per run; tracing each took 1-4 s (most of what logging a model
costs), swapping the weights into the first trace takes ~0.01 s. A reused graph is kept only when it answers like
the module on a random batch, so a module whose forward depends on more than its parameters and buffers (a plain
tensor attribute, a branch on a value) is traced afresh.
"""

from __future__ import annotations

import contextlib
import threading
from collections import OrderedDict
from collections.abc import Iterator
from typing import Any

MAX_TRACED = 4  # architectures remembered per process (each holds one module's weights)
_TRACED: OrderedDict[tuple, Any] = OrderedDict()
_LOCK = threading.RLock()


def shape_key(module, args: tuple, dynamic_shapes: Any) -> tuple:
    """What a trace depends on besides the weights' values: the module's code and structure, its state's names,
    shapes and types, the inputs' shapes and types and the dynamic dimensions asked for."""
    state = tuple((name, tuple(t.shape), str(t.dtype)) for name, t in module.state_dict().items())
    inputs = tuple((tuple(a.shape), str(a.dtype), str(a.device)) for a in args)
    kind = f"{type(module).__module__}.{type(module).__qualname__}"
    return kind, repr(module), module.training, state, inputs, repr(dynamic_shapes)


def with_weights(program, module, args: tuple):
    """`program` (an ExportedProgram) with `module`'s parameters and buffers and `args` as its example; None when
    the state's names differ."""
    from torch.export import ExportedProgram

    state = module.state_dict(keep_vars=True)
    buffers = dict(module.named_buffers())
    if set(program.state_dict) - set(state):
        return None
    return ExportedProgram(
        root=program.graph_module,
        graph=program.graph,
        graph_signature=program.graph_signature,
        state_dict={name: state[name] for name in program.state_dict},
        range_constraints=program.range_constraints,
        module_call_graph=program.module_call_graph,
        example_inputs=(tuple(args), {}),
        constants={name: buffers.get(name, value) for name, value in program.constants.items()},  # non-persistent buffers
        verifiers=[program.verifier],
    )


def answers_alike(program, module, args: tuple) -> bool:
    """Whether `program` and `module` give the same outputs on random inputs shaped like `args`."""
    import torch
    from torch.utils._pytree import tree_flatten

    generator = torch.Generator().manual_seed(0)
    batch = tuple(torch.randn(a.shape, generator=generator).to(a.dtype).to(a.device) if a.is_floating_point() else a for a in args)
    with torch.no_grad():
        ours, theirs = tree_flatten(program.module()(*batch))[0], tree_flatten(module(*batch))[0]
    return len(ours) == len(theirs) and all(
        isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.shape == b.shape and torch.allclose(a, b, rtol=1e-4, atol=1e-6)
        for a, b in zip(ours, theirs, strict=True)
    )


def export_reusing(original):
    """`torch.export.export` that re-uses a trace of the same shape_key (see the module docstring)."""
    import torch

    def export(mod, args, kwargs=None, *, dynamic_shapes=None, **options):
        if kwargs or options or not isinstance(mod, torch.nn.Module) or not all(isinstance(a, torch.Tensor) for a in args):
            return original(mod, args, kwargs, dynamic_shapes=dynamic_shapes, **options)
        key = shape_key(mod, args, dynamic_shapes)
        traced = _TRACED.get(key)
        if traced is not None:
            candidate = with_weights(traced, mod, args)
            if candidate is not None and answers_alike(candidate, mod, args):
                _TRACED.move_to_end(key)
                return candidate
        program = original(mod, args, dynamic_shapes=dynamic_shapes)
        _TRACED[key] = program
        while len(_TRACED) > MAX_TRACED:
            _TRACED.popitem(last=False)
        return program

    return export


@contextlib.contextmanager
def traces_reused() -> Iterator[None]:
    """Inside, `torch.export.export` (which MLflow's pt2 `save_model` calls with a module only) re-uses traces."""
    import torch.export

    with _LOCK:
        original = torch.export.export
        torch.export.export = export_reusing(original)
        try:
            yield
        finally:
            torch.export.export = original
