"""The in-process schema fixtures of tests/codegen, shared with the docs tests."""

from tests.codegen.conftest import codegen_request, schema

__all__ = ["codegen_request", "schema"]
