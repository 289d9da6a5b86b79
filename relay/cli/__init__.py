"""The command line: ``stock-relay`` (main) and its front ends: operator commands, reconcile, credentials, the demo
and the signed test client it drives.
"""
