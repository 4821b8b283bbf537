"""Smart-card readers: the workstation's card agent and the gateway's presence windows (R14, R18).

``atr`` recognises cards, ``watcher`` follows PC/SC readers (pyscard), ``spool`` and ``client`` carry the agent's
events to the gateway in order, ``agent`` is the ``gateway card-agent`` command, ``endpoint`` is the gateway's
mutual-TLS HTTPS receiver and ``presence`` the windows the DMP bridge consults (``patient_present``).
"""
