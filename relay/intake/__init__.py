"""Intake: what the shop sends, checked against the wire protocol (protocol) and recorded (ingest, woocommerce).

The two-way flow adds its marketplace sales intake beside these.
"""
