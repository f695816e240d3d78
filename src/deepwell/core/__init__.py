"""The request policy between the wire formats and the engines: chat and FIM requests
validated, planned and run as core events, and the gateway every generating route goes
through, which holds, meters and settles what a request costs. Free of HTTP."""
