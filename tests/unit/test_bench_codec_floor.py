"""bench/codec's encode floor reads every field the generated Dag encode reads, so the floor it
reports is not understated by a field the schema gained since."""

from __future__ import annotations

import ast
import inspect

from bench.codec import floor
from bench.codec.workload import dag
from qmtl.dag.v1 import dag_pb2, node_pb2, node_spec_pb2


def _names_read() -> set[str]:
    tree = ast.parse(inspect.getsource(floor))
    names = {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "has_field":
            argument = node.args[1]
            assert isinstance(argument, ast.Constant)
            assert isinstance(argument.value, str)
            names.add(argument.value)
    return names


def test_every_field_of_the_dag_types_is_read() -> None:
    read = _names_read()
    for cls in (dag_pb2.Dag, dag_pb2.Edge, dag_pb2.DagMeta, node_pb2.Node, node_spec_pb2.NodeSpec):
        missing = {fd.name for fd in cls.DESCRIPTOR.fields} - read
        assert not missing, f"bench/codec/floor.py does not read {cls.DESCRIPTOR.name}.{missing}"


def test_reads_the_bench_dag() -> None:
    floor.read_fields(dag())
