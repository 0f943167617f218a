"""Cut an arbitrary ``nn.Module`` after a named submodule with ``torch.fx``.

Written for privbench: the module is traced with the named submodule kept as a leaf, the graph is cut
right after that call, and two GraphModules are built — ``front`` (input → the submodule's output) and
``back`` (that output → the model's output). A cut that a skip connection crosses cannot be a split
point of a two-party pipeline, so it is rejected with a clear message.
"""

from __future__ import annotations

import torch
from torch import fx, nn

from privbench.errors import PrivbenchError


class _KeepLeaf(fx.Tracer):
    def __init__(self, leaf: str) -> None:
        super().__init__()
        self.leaf = leaf

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return qualname == self.leaf or super().is_leaf_module(m, qualname)


def module_names(module: nn.Module) -> list[str]:
    return [name for name, _ in module.named_modules() if name]


def fx_split(module: nn.Module, split: str) -> tuple[nn.Module, nn.Module]:
    """Return ``(front, back)`` with ``back(front(x)) == module(x)``."""
    names = module_names(module)
    if split not in names:
        sample = ", ".join(n for n in names if "." not in n)
        raise PrivbenchError(f"unknown split '{split}': not a submodule name (top-level names: {sample})")
    try:
        graph = _KeepLeaf(split).trace(module)
    except Exception as exc:  # tracing failures come from user code; report them as a user error
        raise PrivbenchError(f"cannot trace the model to cut it at '{split}': {exc}") from None
    nodes = list(graph.nodes)
    placeholders = [n for n in nodes if n.op == "placeholder"]
    if len(placeholders) != 1:
        raise PrivbenchError("only models with a single input tensor can be split")
    cut_nodes = [n for n in nodes if n.op == "call_module" and n.target == split]
    if len(cut_nodes) != 1:
        raise PrivbenchError(f"submodule '{split}' is called {len(cut_nodes)} times in forward(); cannot cut there")
    cut = cut_nodes[0]
    position = nodes.index(cut)
    before, after = nodes[: position + 1], nodes[position + 1 :]
    before_set = set(before)

    for node in after:
        for used in node.all_input_nodes:
            if used in before_set and used is not cut and used.op not in ("get_attr",):
                raise PrivbenchError(f"split '{split}' is crossed by a connection from '{used.name}' to "
                                     f"'{node.name}'; choose a cut no skip connection crosses")

    front_graph = fx.Graph()
    env: dict[fx.Node, fx.Node] = {}
    for node in before:
        env[node] = front_graph.node_copy(node, lambda n: env[n])
    front_graph.output(env[cut])

    back_graph = fx.Graph()
    back_env: dict[fx.Node, fx.Node] = {cut: back_graph.placeholder("z")}
    for node in before:  # constants/attributes the back still reads
        if node.op == "get_attr" and any(node in a.all_input_nodes for a in after):
            back_env[node] = back_graph.node_copy(node, lambda n: back_env[n])
    for node in after:
        back_env[node] = back_graph.node_copy(node, lambda n: back_env[n])

    return fx.GraphModule(module, front_graph), fx.GraphModule(module, back_graph)


def check_split(module: nn.Module, front: nn.Module, back: nn.Module, example: torch.Tensor) -> None:
    """Sanity check used in tests: the two halves compose to the original model."""
    module.eval()
    with torch.no_grad():
        torch.testing.assert_close(back(front(example)), module(example))
