"""Sources of telemetry: vendor adapters (pull), CSV files, later MQTT devices and HTTP ingest (push).

The contract (:mod:`wattline.domain.sources`): a source is given a read-only
``SeriesResolver`` (asset + point key -> series id and its configuration) and returns
``ReadingBatch`` es, normalized readings plus the untouched raw payloads, for the
pipeline. It never writes a table and imports no store; points it needs that do not
exist yet it describes (``PointDefinition``, ``PointRegistration``) for
:mod:`wattline.provisioning` to register.
"""
