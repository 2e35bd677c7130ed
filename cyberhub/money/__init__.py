"""Every money move: wallet and ledger, operation records, idempotency,
openings, sales, payments, reversals.
"""
