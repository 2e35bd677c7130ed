"""The back office: players, cases, payments, statistics, adjustments, audit
trail.
"""
