"""The three QMTL NextGen services. Their names stay clear of the generated proto packages
(qmtl.gateway.v1, qmtl.dagmanager.v1), which share the `qmtl` namespace."""
