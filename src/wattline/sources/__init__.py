"""Sources of telemetry: vendor adapters (pull), MQTT devices and HTTP ingest (push).

A source only turns what it received into normalized readings plus the untouched raw
payload and hands them to the pipeline; it never writes tables itself.
"""
