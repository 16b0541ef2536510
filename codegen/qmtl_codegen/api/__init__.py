"""One model of the API the schemas declare, read once from descriptors and options.

Every generator (routers, clients, handlers, gRPC adapters, OpenAPI, reference) reads its
services, rpcs and HTTP bindings from here, so a binding rule is checked in one place.
"""
