"""Repair: making channels and the shop agree again: reconciliation against the shop's snapshot, read-back of what
each channel shows, replay of chosen deliveries, and waking the shop's outbox.
"""
