"""QMTL NextGen code generators.

Each generator is a protoc plugin: it reads a CodeGeneratorRequest and writes files. This
package imports nothing from the runtime, the services or the generated messages, so it can
run before any of them exist.
"""

__version__ = "0.1.0"
