"""Platform: errors, ids, validation, pages, logs, metrics, rate limits,
OpenAPI, base wire shapes. Imports nothing else of cyberhub.
"""
