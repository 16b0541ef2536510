"""Hand-written runtime of QMTL NextGen: configuration, codec, errors, auth and backends.

It imports the generated messages and nothing from the services.
"""
