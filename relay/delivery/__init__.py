"""Delivery, shop to channels: the deliveries table's jobs, one worker per channel (dispatch) with its rate budget,
circuit and retry rules, and the one boundary for outbound HTTP (outbound). Connectors live in relay.connectors.
"""
